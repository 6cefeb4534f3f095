"""The chunked batch functions (bounded memory, for long backtests) equal the whole-frame
ones bit for bit, whatever the chunk size."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tickpipe.marketdata import QuoteData, TradeData, read_binance_capture
from tickpipe_quant.batch import (
    bar_features,
    chunks_of,
    features_of,
    frames,
    time_bars,
    time_bars_chunked,
    touch_at_emit,
)

SAMPLE = Path("data/sample/binance-spot-btcusdt-20240808.gz")
S = 1_000_000_000


@cache
def _frames() -> tuple[pl.DataFrame, pl.DataFrame]:
    items = [i for i in read_binance_capture(SAMPLE) if isinstance(i, (TradeData, QuoteData))]
    return frames(items[:12_000])


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 5_000), st.sampled_from([0, 0, 400_000_000]))
def test_time_bars_when_trades_come_in_chunks_equal_the_whole_frame(
    size: int, lateness: int
) -> None:
    trades, _ = _frames()
    whole = time_bars(trades, S, lateness)
    chunked = time_bars_chunked(chunks_of(trades, size), S, lateness)
    assert chunked.late == whole.late
    assert_frame_equal(chunked.bars, whole.bars)


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 8_000))
def test_touch_when_quotes_come_in_chunks_equals_one_asof_join(size: int) -> None:
    trades, quotes = _frames()
    bars = time_bars(trades, S).bars
    expected = bar_features(bars, quotes).drop("seq")  # the join key, not a column it keeps
    got = features_of(touch_at_emit(bars, chunks_of(quotes, size)))
    assert_frame_equal(got, expected)


def test_time_bars_chunked_when_a_chunk_is_shuffled_within_still_sorts_by_seq() -> None:
    trades, _ = _frames()
    shuffled = [c.sample(fraction=1.0, shuffle=True, seed=1) for c in chunks_of(trades, 700)]
    assert_frame_equal(time_bars_chunked(shuffled, S).bars, time_bars(trades, S).bars)


def test_touch_when_no_quotes_at_all_is_null() -> None:
    trades, quotes = _frames()
    bars = time_bars(trades, S).bars
    got = touch_at_emit(bars, [quotes.clear()])
    assert got["bid"].null_count() == got.height
    with pytest.raises(AssertionError):  # and the comparison above can fail
        assert_frame_equal(got, touch_at_emit(bars, [quotes]))
