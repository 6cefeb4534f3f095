"""The polars batch path: the streaming bars and feature set, over whole files at once.

Training and backfills use this; the feature service runs `bars.TimeBarBuilder` and
`features.FeatureEngine`. The bars are written twice and the features once, as registry
entries with a streaming and a polars half (`features.py`); `tests/unit/test_batch_parity.py`
holds both paths equal on the sample capture (bit for bit, or within 1e-9 relative for the
entries marked inexact). They agree because they follow the same rules:

- Inputs are in arrival order, numbered by `seq` across trades and quotes (the order the
  feature service would consume them). The watermark after each trade is the running
  maximum of trade times minus the allowed lateness; a trade is too late when its bar ended
  at or before the watermark left by the trades before it.
- Open and close are the earliest and latest trades by (time, seq); sums run in seq order.
- The grid runs from the first bar with a trade to the last bar the final watermark closes;
  empty intervals carry the previous close with zero volume.
- Each bar is emitted by the first trade that lifts the watermark to its end (`emit_seq`);
  its quote features come from the last quote before that trade: what the live engine knew.
- EMA-family smoothing is seeded with the mean of its first `period` values (a cumulative
  sum, the streaming order) and continued by `ewm_mean(adjust=False)`, whose update is the
  streaming one. Rolling windows use polars' kernels; the streaming side uses running sums
  recomputed every window, so those features differ in the last bits only (`exprs.py`).

Needs the `batch` extra (polars); the rest of `tickpipe_quant` imports polars only when a
batch half runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, cast

try:
    import polars as pl
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("tickpipe_quant.batch needs polars: install tickpipe-quant[batch]") from exc

from tickpipe_quant.features import FEATURE_NAMES, REGISTRY

TRADE_SCHEMA = {
    "seq": pl.Int64,
    "ts": pl.Int64,
    "price": pl.Float64,
    "size": pl.Float64,
    "is_buy": pl.Boolean,
}
QUOTE_SCHEMA = {
    "seq": pl.Int64,
    "bid": pl.Float64,
    "ask": pl.Float64,
    "bid_size": pl.Float64,
    "ask_size": pl.Float64,
}
BAR_SCHEMA = {
    "start": pl.Int64,
    "end": pl.Int64,
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "volume": pl.Float64,
    "notional": pl.Float64,
    "count": pl.Int64,
    "buy_volume": pl.Float64,
    "sell_volume": pl.Float64,
    "emit_seq": pl.Int64,
}


class TradeRecord(Protocol):
    @property
    def ts_event(self) -> int: ...
    @property
    def price(self) -> float: ...
    @property
    def size(self) -> float: ...
    @property
    def side(self) -> str: ...  # the aggressor: "buy" | "sell"


class QuoteRecord(Protocol):
    @property
    def bid(self) -> float: ...
    @property
    def ask(self) -> float: ...
    @property
    def bid_size(self) -> float: ...
    @property
    def ask_size(self) -> float: ...


def frames(records: Iterable[TradeRecord | QuoteRecord]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One instrument's trades and quotes, in arrival order, as the functions here take them:
    `seq` numbers both in the order given (the order the feature service consumes them)."""
    trades: list[tuple[int, int, float, float, bool]] = []
    quotes: list[tuple[int, float, float, float, float]] = []
    for seq, r in enumerate(records):
        # Trades have a price, quotes a bid and an ask. (isinstance against a runtime
        # protocol costs ~25 µs a record: most of the time here.)
        if hasattr(r, "price"):
            t = cast(TradeRecord, r)
            trades.append((seq, t.ts_event, t.price, t.size, t.side == "buy"))
        else:
            quotes.append((seq, r.bid, r.ask, r.bid_size, r.ask_size))
    return (
        pl.DataFrame(trades, schema=TRADE_SCHEMA, orient="row"),
        pl.DataFrame(quotes, schema=QUOTE_SCHEMA, orient="row"),
    )


@dataclass(frozen=True)
class BatchBars:
    bars: pl.DataFrame  # BAR_SCHEMA, one row per emitted bar, in time order
    late: int  # trades left out: too late for their bar


def _arrival_sum(x: pl.Expr) -> pl.Expr:
    # A running sum in row (seq) order, as the streaming builder adds; `sum()` adds pairwise,
    # which differs in the last bits. Empty: 0.
    return x.cum_sum().last().fill_null(0.0)


def time_bars(trades: pl.DataFrame, interval_ns: int, allowed_lateness_ns: int = 0) -> BatchBars:
    """Bars from one instrument's trades (`TRADE_SCHEMA`), as `TimeBarBuilder` emits them."""
    step, lateness = interval_ns, allowed_lateness_ns
    t = trades.sort("seq").with_columns(
        start=pl.col("ts") - pl.col("ts") % step, seen=pl.col("ts").cum_max()
    )
    t = t.with_columns(
        late=(pl.col("start") + step <= pl.col("seen").shift(1) - lateness).fill_null(False)
    )
    late = int(t["late"].sum())
    kept = t.filter(~pl.col("late"))
    if kept.is_empty():
        return BatchBars(pl.DataFrame(schema=BAR_SCHEMA), late)
    origin = int(kept["start"].min())  # type: ignore[arg-type]  # polars types min() loosely
    watermark = int(t["seen"].max()) - lateness  # type: ignore[arg-type]
    filled = _aggregate(kept)
    stair = t.select("seen", "seq")
    return BatchBars(_grid(filled, stair, origin, watermark + lateness, step, lateness), late)


def time_bars_chunked(
    chunks: Iterable[pl.DataFrame], interval_ns: int, allowed_lateness_ns: int = 0
) -> BatchBars:
    """`time_bars` over trades that come in chunks (`TRADE_SCHEMA`, seq order), in bounded
    memory: the same bars, bit for bit.

    A bar is aggregated once the watermark has closed it, from all its rows at once (sums
    in seq order, as `time_bars`); rows of bars still open are carried to the next chunk.
    Emit points come from the staircase of the running maximum, kept compactly.
    """
    step, lateness = interval_ns, allowed_lateness_ns
    seen_prev: int | None = None
    late = 0
    carried: pl.DataFrame | None = None
    closed: list[pl.DataFrame] = []
    stairs: list[pl.DataFrame] = []  # (seen, seq) where the running maximum rises
    origin: int | None = None
    for chunk in chunks:
        if chunk.is_empty():
            continue
        t = chunk.sort("seq").with_columns(start=pl.col("ts") - pl.col("ts") % step)
        running = pl.col("ts").cum_max()
        if seen_prev is not None:
            running = pl.max_horizontal(running, pl.lit(seen_prev))
        t = t.with_columns(seen=running)
        before = pl.col("seen").shift(1)
        if seen_prev is not None:
            before = before.fill_null(seen_prev)
        t = t.with_columns(late=(pl.col("start") + step <= before - lateness).fill_null(False))
        late += int(t["late"].sum())
        rises = t.select("seen", "seq").filter(
            pl.col("seen") > pl.col("seen").shift(1).fill_null(seen_prev if seen_prev else -1)
        )
        stairs.append(rises)
        seen_prev = int(t["seen"].max())  # type: ignore[arg-type]
        kept = t.filter(~pl.col("late")).drop("seen", "late")
        rows = kept if carried is None else pl.concat([carried, kept])
        if origin is None and not rows.is_empty():
            origin = int(rows["start"].min())  # type: ignore[arg-type]
        watermark = seen_prev - lateness
        done = pl.col("start") + step <= watermark
        closed.append(_aggregate(rows.filter(done)))
        carried = rows.filter(~done)
    if origin is None or seen_prev is None:
        return BatchBars(pl.DataFrame(schema=BAR_SCHEMA), late)
    stair = pl.concat(stairs)
    return BatchBars(_grid(pl.concat(closed), stair, origin, seen_prev, step, lateness), late)


def _aggregate(kept: pl.DataFrame) -> pl.DataFrame:
    by_time = ["ts", "seq"]
    return kept.group_by("start").agg(
        open=pl.col("price").sort_by(by_time).first(),
        high=pl.col("price").max(),
        low=pl.col("price").min(),
        close=pl.col("price").sort_by(by_time).last(),
        volume=_arrival_sum(pl.col("size")),
        notional=_arrival_sum(pl.col("price") * pl.col("size")),
        count=pl.len().cast(pl.Int64),
        buy_volume=_arrival_sum(pl.col("size").filter(pl.col("is_buy"))),
        sell_volume=_arrival_sum(pl.col("size").filter(~pl.col("is_buy"))),
    )


def _grid(
    filled: pl.DataFrame,
    stair: pl.DataFrame,
    origin: int,
    seen_max: int,
    step: int,
    lateness: int,
) -> pl.DataFrame:
    """Every interval from `origin` to the final watermark, empty ones carrying the close,
    each with the seq of the trade that emitted it."""
    n_bars = max(0, (seen_max - lateness - origin) // step)
    grid = pl.DataFrame({"start": pl.int_range(0, n_bars, eager=True) * step + origin})
    bars = grid.join(filled, on="start", how="left").sort("start")
    close = pl.col("close").forward_fill()
    bars = bars.with_columns(
        end=pl.col("start") + step,
        open=pl.col("open").fill_null(close),
        high=pl.col("high").fill_null(close),
        low=pl.col("low").fill_null(close),
        close=close,
        volume=pl.col("volume").fill_null(0.0),
        notional=pl.col("notional").fill_null(0.0),
        count=pl.col("count").fill_null(0),
        buy_volume=pl.col("buy_volume").fill_null(0.0),
        sell_volume=pl.col("sell_volume").fill_null(0.0),
    )
    # The first trade whose running maximum reaches end + lateness emits the bar.
    emit_at = stair["seen"].search_sorted(bars["end"] + lateness, side="left")
    bars = bars.with_columns(emit_seq=stair["seq"].gather(emit_at))
    return bars.select(list(BAR_SCHEMA)).cast(BAR_SCHEMA)  # type: ignore[arg-type]


def touch_at_emit(bars: pl.DataFrame, quote_chunks: Iterable[pl.DataFrame]) -> pl.DataFrame:
    """`bars` with the last quote before each bar's emitting trade (`QUOTE_SCHEMA` columns,
    null before the first quote), from quotes that come in seq-ordered chunks: the same as
    one backward as-of join by seq, in the memory of one chunk."""
    bars = bars.sort("emit_seq")
    cols = [c for c in QUOTE_SCHEMA if c != "seq"]
    parts: list[pl.DataFrame] = []
    done = 0  # bars before this index have their quote
    last: pl.DataFrame | None = None  # the previous chunk's last quote
    for chunk in quote_chunks:
        if chunk.is_empty():
            continue
        q = chunk.select(list(QUOTE_SCHEMA)).sort("seq")
        upto = int(q["seq"][-1])
        # Bars emitted up to this chunk's last quote find it here (or in `last`).
        end = done + int(bars["emit_seq"][done:].search_sorted(upto, side="right"))
        if end > done:
            side = q if last is None else pl.concat([last, q])
            parts.append(_asof(bars[done:end], side, cols))
            done = end
        last = q[-1:]
    rest = bars[done:]
    if not rest.is_empty():
        parts.append(
            _asof(rest, last, cols)
            if last is not None
            else rest.with_columns(*(pl.lit(None, pl.Float64).alias(c) for c in cols))
        )
    return (
        pl.concat(parts).sort("start")
        if parts
        else bars.with_columns(*(pl.lit(None, pl.Float64).alias(c) for c in cols))
    )


def _asof(bars: pl.DataFrame, quotes: pl.DataFrame, cols: list[str]) -> pl.DataFrame:
    return bars.join_asof(quotes, left_on="emit_seq", right_on="seq", strategy="backward").select(
        *bars.columns, *cols
    )


def chunks_of(frame: pl.DataFrame, size: int) -> Iterator[pl.DataFrame]:
    """`frame` in slices of `size` rows (for the chunked functions above)."""
    for offset in range(0, frame.height, size):
        yield frame.slice(offset, size)


def bar_features(bars: pl.DataFrame, quotes: pl.DataFrame) -> pl.DataFrame:
    """Every bar with its feature columns (null while an input warms up), in set order."""
    with_quotes = bars.sort("start").join_asof(
        quotes.sort("seq").select(list(QUOTE_SCHEMA)),
        left_on="emit_seq",
        right_on="seq",
        strategy="backward",
    )
    return features_of(with_quotes)


def features_of(bars_with_touch: pl.DataFrame) -> pl.DataFrame:
    """Bars that already carry their touch (`touch_at_emit`) with the feature columns."""
    return bars_with_touch.sort("start").with_columns(REGISTRY.exprs())


def feature_rows(
    trades: pl.DataFrame,
    quotes: pl.DataFrame,
    interval_ns: int,
    allowed_lateness_ns: int = 0,
) -> pl.DataFrame:
    """The vectors the feature service emits: bars whose every feature is defined.

    Columns: `bar_start`, `bar_end`, `close`, `emit_seq`, then `FEATURE_NAMES` in order.
    """
    bars = time_bars(trades, interval_ns, allowed_lateness_ns).bars
    frame = bar_features(bars, quotes)
    defined = [pl.col(n).is_not_null() & pl.col(n).is_not_nan() for n in FEATURE_NAMES]
    return frame.filter(pl.all_horizontal(defined)).select(
        pl.col("start").alias("bar_start"),
        pl.col("end").alias("bar_end"),
        "close",
        "emit_seq",
        *FEATURE_NAMES,
    )
