"""Streaming (the feature service's handler) == batch (polars) on the real sample capture."""

from __future__ import annotations

import contextlib
import functools
import math
import random
from dataclasses import astuple

import polars as pl
import pytest

from tests.unit import factories as f
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.marketdata import QuoteData, TradeData, read_binance_capture
from tickpipe.messages import FeatureVector, QuoteTick, TradeTick
from tickpipe.service import Rejected
from tickpipe.topics import QUOTES, TRADES
from tickpipe_feature.handlers import FeatureHandler
from tickpipe_quant.bars import LateTrade, TimeBarBuilder
from tickpipe_quant.batch import (
    BAR_SCHEMA,
    TRADE_SCHEMA,
    feature_rows,
    frames,
    time_bars,
)
from tickpipe_quant.features import REGISTRY

S = f.SECOND
MS = 1_000_000
# Within 1e-9 relative, not bit for bit: windows that polars' rolling kernels and the
# streaming running sums round differently. Widening this set is a reviewed decision.
INEXACT = {"sma_dev_20", "bb_pct_b", "bb_width", "realized_vol_20", "order_flow_imbalance_10"}

Record = TradeData | QuoteData


@functools.cache
def _sample() -> tuple[Record, ...]:
    return tuple(r for r in read_binance_capture(f.SAMPLE) if isinstance(r, Record))


def _shuffled(records: tuple[Record, ...], moves: int, seed: int) -> list[Record]:
    """Delay `moves` records by up to 300 positions: trades arrive out of order."""
    out = list(records)
    rng = random.Random(seed)
    for _ in range(moves):
        i = rng.randrange(len(out))
        out.insert(min(len(out) - 1, i + rng.randint(1, 300)), out.pop(i))
    return out


def _event(seq: int, r: Record) -> TradeTick | QuoteTick:
    common = {"event_id": f"E{seq}", "ts_event": r.ts_event, "ts_init": r.ts_event}
    if isinstance(r, TradeData):
        return TradeTick(
            exchange=r.exchange,
            symbol=r.symbol,
            trade_id=r.trade_id,
            price=r.price,
            size=r.size,
            side=r.side,
            **common,
        )
    return QuoteTick(
        exchange=r.exchange,
        symbol=r.symbol,
        bid=r.bid,
        ask=r.ask,
        bid_size=r.bid_size,
        ask_size=r.ask_size,
        **common,
    )


def _stream(records: list[Record], lateness_ns: int = 0) -> tuple[list[FeatureVector], int]:
    clock = SimClock(f.T0)
    handler = FeatureHandler(EventIds(clock, seed=1), MemoryCache(clock), S, 300.0, lateness_ns)
    vectors: list[FeatureVector] = []
    late = 0
    for seq, r in enumerate(records):
        event = _event(seq, r)
        try:
            emits = handler.handle(event, TRADES if isinstance(r, TradeData) else QUOTES, 0)
        except Rejected as exc:
            assert exc.reason == "late_trade"
            late += 1
            continue
        vectors += [e.event for e in emits if isinstance(e.event, FeatureVector)]
    assert handler.late_trades(f.KEY) == late
    return vectors, late


def _assert_parity(vectors: list[FeatureVector], rows: pl.DataFrame) -> None:
    assert len(vectors) == rows.height > 250
    assert [v.bar_start for v in vectors] == rows["bar_start"].to_list()
    assert [v.ts_event for v in vectors] == rows["bar_end"].to_list()
    assert [v.close for v in vectors] == rows["close"].to_list()
    # The trade that completed each bar, by its position in the input.
    assert [v.causation_id for v in vectors] == [f"E{seq}" for seq in rows["emit_seq"]]
    assert all(tuple(v.values) == REGISTRY.names for v in vectors)
    assert {feature.name for feature in REGISTRY.features if not feature.exact} == INEXACT
    for feature in REGISTRY.features:  # every registered feature, both halves
        name = feature.name
        batch = rows[name].to_list()
        stream = [v.values[name] for v in vectors]
        if feature.exact:
            assert stream == batch, name
        else:
            for i, (s, b) in enumerate(zip(stream, batch, strict=True)):
                assert math.isclose(s, b, rel_tol=1e-9, abs_tol=1e-12), f"{name}[{i}]: {s} {b}"


def test_feature_rows_when_sample_replayed_in_order_equal_streaming_vectors() -> None:
    records = list(_sample())
    vectors, late = _stream(records)

    rows = feature_rows(*frames(records), S)

    _assert_parity(vectors, rows)
    assert late == 0
    assert 0.0 < rows["bar_empty"].sum() < 10  # quiet seconds happened, and went through both


def test_feature_rows_when_trades_arrive_out_of_order_agree_on_late_trades_and_vectors() -> None:
    records = _shuffled(_sample(), moves=800, seed=7)
    lateness = 300 * MS
    vectors, late = _stream(records, lateness)

    trades, quotes = frames(records)
    batch = time_bars(trades, S, lateness)
    rows = feature_rows(trades, quotes, S, lateness)

    assert 0 < late == batch.late
    _assert_parity(vectors, rows)


@pytest.mark.parametrize(("interval", "lateness"), [(60 * S, 0), (S, 2 * S)])
def test_time_bars_when_sample_aggregated_equal_streaming_bars(
    interval: int, lateness: int
) -> None:
    records = _shuffled(_sample(), moves=500, seed=interval % 97)
    builder = TimeBarBuilder(interval, lateness)
    stream = []
    for r in records:
        if isinstance(r, TradeData):
            with contextlib.suppress(LateTrade):  # counted by the builder
                stream += builder.add(r.ts_event, r.price, r.size, r.side == "buy")

    batch = time_bars(frames(records)[0], interval, lateness)

    columns = [c for c in BAR_SCHEMA if c != "emit_seq"]
    assert batch.bars.select(columns).rows() == [astuple(b) for b in stream]
    assert batch.late == builder.late
    assert len(stream) >= 5


def test_time_bars_when_no_trades_returns_empty_frame() -> None:
    batch = time_bars(pl.DataFrame(schema=TRADE_SCHEMA), S)

    assert batch.bars.is_empty() and batch.bars.schema == pl.Schema(BAR_SCHEMA)
    assert batch.late == 0
