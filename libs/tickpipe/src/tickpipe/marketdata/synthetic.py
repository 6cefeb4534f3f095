"""A seeded synthetic market: many symbols, trades and quotes realistic enough for load tests.

Per symbol, the mid follows a geometric random walk with Poisson jumps; the spread is a few
ticks, wider for a while after a jump; quote sizes are log-normal around a fixed notional;
trade sizes are Pareto (heavy-tailed), trades cluster by side and walk the book when larger
than the touch, and move the mid a little. Activity across symbols is Zipf-like, as on a
real exchange. Event times are a Poisson process at `rate` per second of exchange time.
Trade ids and quote sequence numbers step by one per symbol, so gap detection applies.

The same seed and start time give the same events; nothing here reads a clock.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from dataclasses import dataclass, field

from tickpipe.marketdata.records import QuoteData, TradeData

SECONDS_PER_YEAR = 365 * 24 * 3600
NS = 1_000_000_000


@dataclass(frozen=True)
class SyntheticConfig:
    exchange: str = "synthetic"
    symbols: tuple[str, ...] = ()
    symbol_count: int = 10  # used when `symbols` is empty: SYN000/USDT, SYN001/USDT, ...
    rate: float = 1_000.0  # events per second of exchange time, all symbols together
    trade_ratio: float = 0.3  # share of events that are trades (the rest are quotes)
    volatility: float = 0.8  # annualised, of the diffusion part
    jumps_per_hour: float = 2.0  # per symbol
    jump_sigma: float = 0.004  # log-return stdev of one jump
    trade_tail: float = 1.3  # Pareto shape of trade sizes: smaller is heavier
    quote_notional: float = 20_000.0  # median size at the touch, in quote currency
    seed: int = 0

    def names(self) -> tuple[str, ...]:
        if self.symbols:
            return self.symbols
        return tuple(f"SYN{i:03d}/USDT" for i in range(self.symbol_count))


@dataclass
class _Symbol:
    name: str
    mid: float
    tick: float
    decimals: int
    lot: float
    lot_decimals: int
    last_ns: int
    trade_id: int
    sequence: int
    widen: float = 1.0  # spread multiplier after a jump, decays back to 1
    last_side: str = "buy"
    bid_size: float = field(default=0.0)
    ask_size: float = field(default=0.0)


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step) + 1e-9))


class SyntheticMarket:
    def __init__(self, config: SyntheticConfig, start_ns: int) -> None:
        if config.rate <= 0:
            raise ValueError("rate must be positive")
        names = config.names()
        if not names:
            raise ValueError("no symbols")
        self.config = config
        self.now_ns = start_ns
        self._rng = random.Random(config.seed)
        self._sigma = config.volatility / math.sqrt(SECONDS_PER_YEAR)
        self._jump_rate = config.jumps_per_hour / 3600
        self._symbols = [self._new_symbol(name, start_ns) for name in names]
        weights = [1 / (rank + 1) ** 0.8 for rank in range(len(names))]
        self._cum = list(itertools.accumulate(weights))

    def _new_symbol(self, name: str, start_ns: int) -> _Symbol:
        rng = self._rng
        mid = math.exp(rng.uniform(math.log(0.05), math.log(60_000)))
        tick = 10.0 ** (math.floor(math.log10(mid)) - 4)
        lot = 10.0 ** math.floor(math.log10(10 / mid))  # about $1-10 per lot
        return _Symbol(
            name=name,
            mid=mid,
            tick=tick,
            decimals=_decimals(tick),
            lot=lot,
            lot_decimals=_decimals(lot),
            last_ns=start_ns,
            trade_id=rng.randrange(1_000_000, 1_000_000_000),
            sequence=rng.randrange(1_000, 1_000_000),
        )

    def __iter__(self) -> SyntheticMarket:
        return self

    def __next__(self) -> TradeData | QuoteData:
        rng = self._rng
        self.now_ns += max(1, int(rng.expovariate(self.config.rate) * NS))
        sym = self._symbols[bisect.bisect(self._cum, rng.random() * self._cum[-1])]
        self._evolve(sym)
        if rng.random() < self.config.trade_ratio:
            return self._trade(sym)
        return self._quote(sym)

    def _evolve(self, sym: _Symbol) -> None:
        rng = self._rng
        dt = (self.now_ns - sym.last_ns) / NS
        sym.last_ns = self.now_ns
        step = self._sigma * math.sqrt(dt) * rng.gauss(0.0, 1.0)
        if rng.random() < self._jump_rate * dt:  # P(jump in dt) for dt much shorter than 1/rate
            step += rng.gauss(0.0, self.config.jump_sigma)
            sym.widen = 5.0
        sym.mid *= math.exp(step)
        if sym.widen > 1.001:
            sym.widen = 1.0 + (sym.widen - 1.0) * math.exp(-dt / 2.0)  # ~2 s to calm down

    def _size(self, sym: _Symbol, median: float) -> float:
        return max(
            sym.lot, round(self._rng.lognormvariate(math.log(median), 1.0), sym.lot_decimals)
        )

    def _book(self, sym: _Symbol) -> tuple[float, float]:
        extra = 0
        while self._rng.random() < 0.3:
            extra += 1
        ticks = max(1, round((1 + extra) * sym.widen))
        bid = max(
            sym.tick, round(math.floor(sym.mid / sym.tick - ticks / 2) * sym.tick, sym.decimals)
        )
        return bid, round(bid + ticks * sym.tick, sym.decimals)

    def _quote(self, sym: _Symbol) -> QuoteData:
        bid, ask = self._book(sym)
        median = self.config.quote_notional / sym.mid
        sym.bid_size, sym.ask_size = self._size(sym, median), self._size(sym, median)
        sym.sequence += 1
        raw = (
            f'{{"s":"{sym.name}","seq":{sym.sequence},"b":{bid},"B":{sym.bid_size},'
            f'"a":{ask},"A":{sym.ask_size},"ts":{self.now_ns}}}'
        ).encode()
        return QuoteData(
            self.config.exchange,
            sym.name,
            bid,
            sym.bid_size,
            ask,
            sym.ask_size,
            self.now_ns,
            raw,
            sym.sequence,
        )

    def _trade(self, sym: _Symbol) -> TradeData:
        rng = self._rng
        side = (
            sym.last_side if rng.random() < 0.65 else ("sell" if sym.last_side == "buy" else "buy")
        )
        sym.last_side = side
        size = round(sym.lot * rng.paretovariate(self.config.trade_tail), sym.lot_decimals)
        size = min(max(sym.lot, size), sym.lot * 1e5)
        bid, ask = self._book(sym)
        touch = sym.ask_size if side == "buy" else sym.bid_size
        walked = min(5, int(size / touch)) if touch > 0 else 0
        sign = 1 if side == "buy" else -1
        price = round((ask if side == "buy" else bid) + sign * walked * sym.tick, sym.decimals)
        sym.mid *= math.exp(sign * 0.5 * sym.tick / sym.mid * min(1.0, size / max(touch, sym.lot)))
        sym.trade_id += 1
        raw = (
            f'{{"s":"{sym.name}","t":{sym.trade_id},"p":{price},"q":{size},'
            f'"side":"{side}","ts":{self.now_ns}}}'
        ).encode()
        return TradeData(
            self.config.exchange, sym.name, str(sym.trade_id), price, size, side, self.now_ns, raw
        )
