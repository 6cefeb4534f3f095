"""Risk benchmark: the risk handler in process, on a realistic mix of inputs.

Three strategies trade four symbols of one account. Per second of market time: one signal
per strategy and symbol (a 1 s bar closing), carrying the touch of a mid that moves about
1,000 times a second (risk prices on the signal's touch, not on a quote stream), an ack and
one or two fills 1-5 ms after every approved order, and now and then a data-quality gap
that heals 100 ms later. The handler runs as in the service (every control on, the default limits
but for the rate throttles, an in-memory cache); no bus, no serialization.

Reports decisions per second (signals decided per second of handler time), all inputs per
second, and p50/p99/max latency of one decision and of one fill; each the median over
repetitions.

    .venv/bin/python bench/risk.py [--events 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import (
    DataQuality,
    Event,
    ExecutionReport,
    FeedStatus,
    OrderRequest,
    OrderStatus,
    QualityIssue,
    Signal,
)
from tickpipe.topics import EXECUTIONS, QUALITY, SIGNALS
from tickpipe_risk.app import RiskSettings
from tickpipe_risk.domain.sizing import SizingConfig
from tickpipe_risk.handlers import RiskHandler

MS = 1_000_000
SECOND = 1_000 * MS
T0 = 1_723_161_254_000_000_000
SYMBOLS = {"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0, "SOL/USDT": 150.0, "BNB/USDT": 500.0}
STRATEGIES = ("trend", "revert", "carry")


@dataclass
class Run:
    decisions: int
    approved: int
    events: int
    seconds: float
    decision_ns: list[int]
    fill_ns: list[int]


def _handler() -> RiskHandler:
    s = RiskSettings(
        _env_file=None,
        exchange_info=None,
        # The stream is denser than one risk service sees per account in practice; the
        # rate controls would refuse most of it and measure only the refusal path.
        max_orders_per_symbol=1_000,
        max_orders_global=1_000,
        fill_throttle_count=1_000,
    )
    clock = SimClock(T0)
    return RiskHandler(
        EventIds(clock, seed=1),
        MemoryCache(clock),
        s.account,
        SizingConfig(capital=s.capital, vol_target=s.vol_target),
        s.limits(),
        {},
        correlation=s.correlation(),
        breaker=s.breaker(),
    )


class Stream:
    """Inputs in market-time order; fills follow approved orders by a few milliseconds."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.mids = dict(SYMBOLS)
        self.now = T0
        self.n = 0
        self.pending: list[tuple[int, tuple[Event, str]]] = []
        self.next_bar = T0
        self.bar_signals: list[tuple[str, str]] = []

    def _id(self) -> str:
        self.n += 1
        return f"01B{self.n:023d}"

    def _base(self, symbol: str) -> dict[str, Any]:
        return {
            "event_id": self._id(),
            "ts_event": self.now,
            "ts_init": self.now,
            "exchange": "binance",
            "symbol": symbol,
        }

    def next(self) -> tuple[Event, str]:
        while True:
            self.now += self.rng.randint(0, 2 * MS)  # the touch moves ~1,000 times a second
            if self.pending and self.pending[0][0] <= self.now:
                event, topic = self.pending.pop(0)[1]
                return event, topic
            if self.now >= self.next_bar:  # a bar closed: every strategy scores every symbol
                self.next_bar += SECOND
                self.bar_signals = [(s, k) for s in STRATEGIES for k in SYMBOLS]
                self.rng.shuffle(self.bar_signals)
            if self.bar_signals:
                strategy, symbol = self.bar_signals.pop()
                return self._signal(strategy, symbol), SIGNALS
            symbol = self.rng.choice(list(SYMBOLS))
            if self.rng.random() < 0.0001:
                return self._quality(symbol), QUALITY
            self.mids[symbol] *= 1 + self.rng.gauss(0, 0.0001)

    def _signal(self, strategy: str, symbol: str) -> Signal:
        p = self.rng.choice([0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95])
        mid = self.mids[symbol]
        return Signal(
            **self._base(symbol),
            strategy_id=strategy,
            model_version="bench:v1",
            direction=1 if p > 0.55 else -1 if p < 0.45 else 0,
            probability=p,
            score=2 * p - 1,
            feature_ts=self.now,
            price=mid,
            volatility=self.rng.choice([0.0002, 0.0005, 0.001]),
            bid=round(mid * (1 - 0.00005), 2),
            ask=round(mid * (1 + 0.00005), 2),
        )

    def _quality(self, symbol: str) -> DataQuality:
        """A gap, and the feed healthy again 100 ms later."""
        healthy = DataQuality(
            **{**self._base(symbol), "ts_init": self.now + 100 * MS},
            source="bench",
            stream="trades",
            status=FeedStatus.HEALTHY,
        )
        self._schedule(self.now + 100 * MS, healthy, QUALITY)
        return DataQuality(
            **self._base(symbol),
            source="bench",
            stream="trades",
            status=FeedStatus.DEGRADED,
            issue=QualityIssue.GAP,
        )

    def _schedule(self, at: int, event: Event, topic: str) -> None:
        self.pending.append((at, (event, topic)))
        self.pending.sort(key=lambda x: x[0])

    def reports(self, order: OrderRequest) -> None:
        """Ack, then one or two fills at the touch, 1-5 ms later."""
        at = self.now + self.rng.randint(1, 5) * MS
        common = {
            "exchange": order.exchange,
            "symbol": order.symbol,
            "client_order_id": order.client_order_id,
            "account": order.account,
            "strategy_id": order.strategy_id,
            "side": order.side,
            "quantity": order.quantity,
            "ts_event": at,
            "ts_init": at,
        }
        out = [
            ExecutionReport(event_id=self._id(), status=OrderStatus.ACKNOWLEDGED,
                            cum_qty=Decimal(0), leaves_qty=order.quantity, **common)
        ]  # fmt: skip
        parts = [order.quantity] if self.rng.random() < 0.7 else [order.quantity / 2] * 2
        cum = Decimal(0)
        for i, part in enumerate(parts):
            cum += part
            price = order.reference_price
            out.append(
                ExecutionReport(
                    event_id=self._id(),
                    status=OrderStatus.FILLED if cum == order.quantity
                    else OrderStatus.PARTIALLY_FILLED,
                    cum_qty=cum, leaves_qty=order.quantity - cum, last_qty=part,
                    last_price=price, fee=(part * price * Decimal("0.0001")).quantize(
                        Decimal("1e-8")),
                    trade_id=f"{order.client_order_id}-{i}", **common,
                )
            )  # fmt: skip
        for r in out:
            self._schedule(at, r, EXECUTIONS)


def run_once(events: int, seed: int) -> Run:
    handler = _handler()
    stream = Stream(seed)
    decision_ns: list[int] = []
    fill_ns: list[int] = []
    approved = 0
    total = 0
    clock = time.perf_counter_ns
    for _ in range(events):
        event, topic = stream.next()
        started = clock()
        out = handler.handle(event, topic, stream.now)
        took = clock() - started
        total += took
        if isinstance(event, Signal) and out:
            decision_ns.append(took)
            order = out[-1].event
            if isinstance(order, OrderRequest):
                approved += 1
                stream.reports(order)
        elif isinstance(event, ExecutionReport) and event.is_fill:
            fill_ns.append(took)
    return Run(len(decision_ns), approved, events, total / 1e9, decision_ns, fill_ns)


def _pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    run_once(2_000, seed=99)  # warm-up: imports, caches
    runs = [run_once(args.events, seed=i) for i in range(args.repeat)]

    def med(f: Any) -> float:
        return float(statistics.median(f(r) for r in runs))

    table = Table(
        title=f"risk handler, in process — {args.events:,} inputs × {args.repeat} runs (median)"
    )
    for col in ("measure", "value"):
        table.add_column(col, justify="left" if col == "measure" else "right")
    rows = [
        ("decisions per run (approved)", f"{med(lambda r: r.decisions):,.0f} "
         f"({med(lambda r: r.approved):,.0f})"),
        ("fills per run", f"{med(lambda r: len(r.fill_ns)):,.0f}"),
        ("decisions / s (handler time)",
         f"{med(lambda r: r.decisions / (sum(r.decision_ns) / 1e9)):,.0f}"),
        ("all inputs / s (handler time)", f"{med(lambda r: r.events / r.seconds):,.0f}"),
        ("decision p50 µs", f"{med(lambda r: _pct(r.decision_ns, 0.50)):.1f}"),
        ("decision p99 µs", f"{med(lambda r: _pct(r.decision_ns, 0.99)):.1f}"),
        ("decision max µs", f"{med(lambda r: _pct(r.decision_ns, 1.0)):.1f}"),
        ("fill p50 µs", f"{med(lambda r: _pct(r.fill_ns, 0.50)):.1f}"),
        ("fill p99 µs", f"{med(lambda r: _pct(r.fill_ns, 0.99)):.1f}"),
    ]  # fmt: skip
    for row in rows:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
