"""The bars engine: bars and features in polars, then the services' handlers per bar.

The ticks engine pushes every trade and quote through all five handlers; most of that work
is the feature service turning ticks into bars. Here the bars and features come from the
polars batch path (`tickpipe_quant.batch`, held equal to the streaming one by tests),
over a dataset written by ingest's own code (`dataset.py`), a chunk at a time. Only what
follows a bar crosses the handlers: the feature vector to inference, its signal to risk,
orders to execution, reports back to risk, routed by the topics each service consumes.

The paper exchange sees, before each order, the touch and the trade that closed the
order's bar: all a market order with no simulated latency can trade on (see `paper.py`:
such an order fills at the closing trade, at the touch before it). Limit orders (which
rest and wait for prints) and latency need every tick: those configurations are refused
here; the ticks engine runs them.

Processing time moves a block of bars at a time (the block is consumed at once, as a
runner's micro-batch is); decisions run on market time, so the block size changes nothing
but speed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from functools import partial
from typing import Any, Protocol, cast

import polars as pl

from tickpipe.app import load_specs
from tickpipe.backtest.config import BacktestConfig, ConfigError
from tickpipe.backtest.dataset import Dataset
from tickpipe.backtest.report import Mark
from tickpipe.backtest.result import BacktestResult, dumped, fills_of
from tickpipe.bus.base import Record
from tickpipe.clock import SimClock
from tickpipe.embedded import simulated_context
from tickpipe.ids import EventIds, vector_id
from tickpipe.messages import FeatureVector, QuoteTick, RiskDecision, Signal, TradeTick
from tickpipe.runner import dispatch, encode_emit, failure
from tickpipe.service import BatchHandler, Emit, Handler, ServiceSpec
from tickpipe.summary import Summary
from tickpipe.topics import DLQ, EXECUTIONS, FEATURES, ORDERS, QUOTES, RISK_DECISIONS, TRADES
from tickpipe_quant.batch import (
    QUOTE_SCHEMA,
    TRADE_SCHEMA,
    chunks_of,
    features_of,
    time_bars_chunked,
    touch_at_emit,
)
from tickpipe_quant.features import FEATURE_NAMES, feature_set_name

HANDLERS = ("inference", "risk", "execution")  # the services after the feature service
BLOCK = 256  # bars scored by one model call
# Rows per polars step. Bars' group-by working memory grows with the chunk, and what the
# allocator took stays with the process (peak RSS); their time is flat from ~25k rows up.
# The quotes' as-of join costs per chunk, and its memory grows slowly (x50 benchmark:
# 50k-row quote chunks 0.45 s, 125k 0.3 s, +15 MiB).
CHUNK_ROWS = {"trades": 50_000, "quotes": 125_000}
VECTOR_COLUMNS = ("end", "exchange", "symbol", "start", "close", "bid", "ask")  # see _vector


class _FeatureSettings(Protocol):
    """What this engine reads of the services' settings (libs name no service package)."""

    bar_seconds: float
    allowed_lateness_s: float


class _RiskSettings(Protocol):
    capital: Decimal
    order_type: str


class _ExecutionSettings(Protocol):
    latency_ms: Decimal


def run_bars(
    config: BacktestConfig, dataset: Dataset, on_progress: Callable[[int], None] | None = None
) -> BacktestResult:
    specs = load_specs()
    settings = config.service_settings(specs)
    feature = cast(_FeatureSettings, settings["feature"])
    risk = cast(_RiskSettings, settings["risk"])
    _check_supported(risk, cast(_ExecutionSettings, settings["execution"]))
    ctx = simulated_context(config.seed)
    clock = cast(SimClock, ctx.clock)
    handlers = {n: cast(Handler, specs[n].build(ctx, settings[n])) for n in HANDLERS}
    started = time.perf_counter()
    interval = round(float(feature.bar_seconds) * 1e9)
    lateness = round(float(feature.allowed_lateness_s) * 1e9)
    router = _Router(specs, handlers)
    bars = _bars(dataset, interval, lateness)
    feature_set = feature_set_name(interval)
    inference = cast(BatchHandler, handlers["inference"])
    for block in chunks_of(bars, BLOCK):
        clock.advance_to(int(block["emit_ts"].max()))  # type: ignore[arg-type]
        now = clock.now_ns()
        # Plain tuples of just what a vector needs: rows as dicts cost more than the bar.
        heads = block.select(VECTOR_COLUMNS).rows()
        features = block.select(FEATURE_NAMES).rows()
        vectors = [
            _vector(head, dict(zip(FEATURE_NAMES, values, strict=True)), feature_set, now, ctx.ids)
            for head, values in zip(heads, features, strict=True)
        ]
        router.summary.add("bars", len(vectors))
        scored = inference.handle_batch([(v, FEATURES) for v in vectors], now)
        for i, outcome in enumerate(scored):
            router.market = partial(_market_events, block, i, now, ctx.ids)
            if isinstance(outcome, Exception):
                router.dead_letter(outcome)
            else:
                router.route(outcome, now)
        if on_progress:
            on_progress(len(vectors))
    key = pl.concat_str("exchange", pl.lit(":"), "symbol")
    marks = [Mark(*m) for m in bars.select("end", key, "close").iter_rows()] if len(bars) else []
    elapsed = time.perf_counter() - started
    summary = router.summary
    summary.counts["trades"] = int(dataset.manifest["trades"])
    summary.counts["quotes"] = int(dataset.manifest["quotes"])
    return BacktestResult(
        orders=router.orders,
        executions=router.executions,
        fills=fills_of(router.executions),
        marks=marks,
        summary=summary,
        capital=float(risk.capital),
        events=summary.counts["trades"] + summary.counts["quotes"],
        trades=summary.counts["trades"],
        elapsed_s=elapsed,
        settings=dumped(settings),
    )


def _check_supported(risk: _RiskSettings, execution: _ExecutionSettings) -> None:
    if risk.order_type != "market":
        raise ConfigError("the bars engine trades market orders only; use --engine ticks")
    if execution.latency_ms != 0:
        raise ConfigError("the bars engine has no paper latency; use --engine ticks")


def _bars(dataset: Dataset, interval: int, lateness: int) -> pl.DataFrame:
    """Every instrument's emitted feature rows with the touch and the closing trade, in the
    order the bars were emitted."""
    frames = []
    trade_cols, quote_cols = list(TRADE_SCHEMA), list(QUOTE_SCHEMA)
    for exchange, symbol in dataset.instruments():
        trades = _chunks(dataset, "trades", exchange, symbol, trade_cols)
        bars = time_bars_chunked(trades, interval, lateness).bars
        quotes = _chunks(dataset, "quotes", exchange, symbol, quote_cols)
        rows = features_of(touch_at_emit(bars, quotes))
        defined = [pl.col(n).is_not_null() & pl.col(n).is_not_nan() for n in FEATURE_NAMES]
        rows = rows.filter(pl.all_horizontal(defined))
        closing = pl.concat(
            c.join(rows.select("emit_seq"), left_on="seq", right_on="emit_seq", how="semi")
            for c in _chunks(dataset, "trades", exchange, symbol, trade_cols)
        ).rename({"seq": "emit_seq", "ts": "emit_ts", "price": "emit_price", "size": "emit_size"})
        frames.append(
            rows.join(closing, on="emit_seq", how="left").with_columns(
                exchange=pl.lit(exchange), symbol=pl.lit(symbol)
            )
        )
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames).sort("emit_ts", "exchange", "symbol", "start")


def _chunks(
    dataset: Dataset, kind: str, exchange: str, symbol: str, columns: list[str]
) -> Iterator[pl.DataFrame]:
    for part in dataset.chunks(kind, exchange, symbol, columns):
        yield from chunks_of(part, CHUNK_ROWS[kind])


def _market_events(block: pl.DataFrame, i: int, now: int, ids: EventIds) -> list[Emit]:
    """The bar's touch and closing trade, as execution's market data. Made only for a bar
    that leads to an order, just before it: a market order with no latency trades at its
    own bar's point and on nothing else. The engine delivers in arrival order itself, so
    these carry no arrival numbers (nor do its vectors, signals and orders): an order
    without `market_seq` trades where it arrives, which here is its point."""
    row = block.row(i, named=True)
    common = {"exchange": row["exchange"], "symbol": row["symbol"], "ts_init": now}
    out: list[Emit] = []
    if row["bid"] is not None:
        quote = QuoteTick(
            event_id=ids.new(),
            ts_event=row["emit_ts"],
            bid=row["bid"],
            ask=row["ask"],
            bid_size=row["bid_size"],
            ask_size=row["ask_size"],
            **common,
        )
        out.append(Emit(QUOTES, quote))
    trade = TradeTick(
        event_id=ids.new(),
        ts_event=row["emit_ts"],
        trade_id=f"bar-{row['emit_seq']}",
        price=row["emit_price"],
        size=row["emit_size"],
        side="buy" if row["is_buy"] else "sell",
        **common,
    )
    out.append(Emit(TRADES, trade))
    return out


def _vector(
    head: tuple[Any, ...], values: dict[str, float], feature_set: str, now: int, ids: EventIds
) -> FeatureVector:
    end, exchange, symbol, start, close, bid, ask = head  # VECTOR_COLUMNS
    return FeatureVector(
        event_id=vector_id(f"{exchange}:{symbol}", end, feature_set),
        ts_event=end,
        ts_init=now,
        exchange=exchange,
        symbol=symbol,
        feature_set=feature_set,
        bar_start=start,
        close=close,
        values=values,
        bid=bid,
        ask=ask,
    )


class _Router:
    """Emits to the handlers whose service consumes their topic, breadth first; orders and
    executions kept as the bus would hold them."""

    def __init__(self, specs: Mapping[str, ServiceSpec[Any]], handlers: dict[str, Handler]) -> None:
        self.subscribers: dict[str, list[Handler]] = {}
        for name, handler in handlers.items():
            for topic in specs[name].inputs:
                if topic != FEATURES:  # inference is fed its vectors in blocks
                    self.subscribers.setdefault(topic, []).append(handler)
        self.orders: list[Record] = []
        self.executions: list[Record] = []
        self.summary = Summary()
        # The current bar's market events for execution, made when its first order comes.
        self.market: Callable[[], list[Emit]] | None = None

    def route(self, emits: Sequence[Emit], now: int) -> None:
        queue = deque(emits)
        while queue:
            emit = queue.popleft()
            if emit.topic == ORDERS and self.market is not None:
                market, self.market = self.market(), None
                queue.extendleft(reversed([*market, emit]))  # market data first
                continue
            self._keep(emit)
            for handler in self.subscribers.get(emit.topic, ()):
                outcome = dispatch(handler, emit.event, emit.topic, now)
                if isinstance(outcome, Exception):
                    self.dead_letter(outcome)  # as the runner would
                else:
                    queue.extend(outcome)

    def dead_letter(self, exc: Exception) -> None:
        reason, _ = failure(exc)
        self.summary.add("dead_letters")
        if reason == "handler_error":
            self.summary.add("handler_errors")

    def _keep(self, emit: Emit) -> None:
        topic = emit.topic
        if topic == ORDERS:
            self.orders.append(_record(emit, len(self.orders)))
            self.summary.add("orders")
        elif topic == EXECUTIONS:
            record = _record(emit, len(self.executions))
            self.executions.append(record)
            if getattr(emit.event, "last_qty", 0):
                self.summary.add("fills")
        elif topic == RISK_DECISIONS:
            if isinstance(emit.event, RiskDecision) and not emit.event.approved:
                self.summary.add("rejections")
        elif topic == DLQ:
            self.summary.add("dead_letters")
        elif isinstance(emit.event, Signal):
            self.summary.add("signals")


def _record(emit: Emit, offset: int) -> Record:
    out = encode_emit(emit, ())
    return Record(out.topic, 0, offset, out.key, out.value, out.headers)
