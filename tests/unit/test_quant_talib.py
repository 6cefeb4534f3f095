"""Indicators against TA-Lib on the sample's 1 s bars; where conventions differ, the difference
is pinned down exactly (see `tickpipe_quant.indicators`)."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import talib

from tests.unit import factories as f
from tickpipe.marketdata import TradeData, read_binance_capture
from tickpipe_quant.bars import Bar, TimeBarBuilder
from tickpipe_quant.indicators import Atr, Bollinger, Ema, Macd, Rsi, Sma

Series = np.ndarray


@functools.cache
def _bars() -> tuple[Bar, ...]:
    builder = TimeBarBuilder(f.SECOND)
    bars: list[Bar] = []
    for item in read_binance_capture(f.SAMPLE):
        if isinstance(item, TradeData):
            bars += builder.add(item.ts_event, item.price, item.size, item.side == "buy")
    return tuple(bars)


def _column(name: str) -> Series:
    return np.array([getattr(b, name) for b in _bars()], dtype=np.float64)


def _assert_matches(ours: list[float] | Series, ref: Series, rel: float) -> None:
    """Same warm-up (NaN where TA-Lib has no value) and values within `rel`."""
    got = np.asarray(ours, dtype=np.float64)
    assert len(got) == len(ref) > 300
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    warm = ~np.isnan(ref)
    np.testing.assert_allclose(got[warm], ref[warm], rtol=rel, atol=0.0)


@pytest.mark.parametrize("period", [5, 20])
def test_sma_when_fed_sample_closes_matches_talib(period: int) -> None:
    sma = Sma(period)
    closes = _column("close")

    _assert_matches([sma.update(x) for x in closes], talib.SMA(closes, period), rel=1e-14)


@pytest.mark.parametrize("period", [12, 26])
def test_ema_when_fed_sample_closes_equals_talib_bit_for_bit(period: int) -> None:
    ema = Ema(period)
    closes = _column("close")

    _assert_matches([ema.update(x) for x in closes], talib.EMA(closes, period), rel=0.0)


def test_rsi_when_fed_sample_closes_matches_talib() -> None:
    rsi = Rsi(14)
    closes = _column("close")

    _assert_matches([rsi.update(x) for x in closes], talib.RSI(closes, 14), rel=1e-13)


def test_rsi_when_prices_never_move_is_50_where_talib_says_0() -> None:
    flat = np.full(30, 100.0)
    rsi = Rsi(14)

    ours = [rsi.update(x) for x in flat]

    assert ours[-1] == 50.0
    assert talib.RSI(flat, 14)[-1] == 0.0


def test_bollinger_when_fed_sample_closes_matches_talib_bbands() -> None:
    bb = Bollinger(20, 2.0)
    closes = _column("close")
    upper, middle, lower = [], [], []
    for x in closes:
        bb.update(x)
        upper.append(bb.upper)
        middle.append(bb.middle)
        lower.append(bb.lower)

    ref_upper, ref_middle, ref_lower = talib.BBANDS(closes, 20, 2.0, 2.0, 0)

    _assert_matches(middle, ref_middle, rel=1e-14)
    _assert_matches(upper, ref_upper, rel=1e-14)
    _assert_matches(lower, ref_lower, rel=1e-14)
    # The band width is where TA-Lib's raw sums of squares show (population std either way).
    width = np.array(upper) - np.array(lower)
    _assert_matches(width, ref_upper - ref_lower, rel=1e-10)


def test_atr_when_fed_sample_bars_matches_talib() -> None:
    atr = Atr(14)
    high, low, close = _column("high"), _column("low"), _column("close")

    ours = [atr.update(h, lo, c) for h, lo, c in zip(high, low, close, strict=True)]

    _assert_matches(ours, talib.ATR(high, low, close, 14), rel=1e-13)


def _macd(closes: Series) -> tuple[Series, Series, Series]:
    macd = Macd(12, 26, 9)
    rows = []
    for x in closes:
        macd.update(x)
        rows.append((macd.value, macd.signal, macd.hist))
    line, signal, hist = np.array(rows).T
    return line, signal, hist


def test_macd_when_fed_sample_closes_is_talib_ema_difference_with_talib_signal() -> None:
    closes = _column("close")

    line, signal, _ = _macd(closes)

    _assert_matches(line, talib.EMA(closes, 12) - talib.EMA(closes, 26), rel=0.0)
    _assert_matches(signal[25:], talib.EMA(line[25:], 9), rel=1e-14)


def test_talib_macd_when_compared_seeds_fast_ema_on_the_slow_emas_first_bar() -> None:
    # What the documented difference is: TA-Lib's fast EMA starts from the mean of the 12
    # closes ending at bar 25 (the slow EMA's first), not of the first 12.
    closes = _column("close")
    late_fast = np.concatenate([np.full(14, np.nan), talib.EMA(closes[14:], 12)])
    line = late_fast - talib.EMA(closes, 26)

    ref_line, ref_signal, _ = talib.MACD(closes, 12, 26, 9)

    warm = ~np.isnan(ref_line)
    np.testing.assert_array_equal(ref_line[warm], line[warm])
    np.testing.assert_array_equal(ref_signal[warm], talib.EMA(line[25:], 9)[8:])


def test_macd_when_past_the_seeding_transient_converges_to_talib() -> None:
    closes = _column("close")
    line, signal, hist = _macd(closes)

    ref_line, ref_signal, ref_hist = talib.MACD(closes, 12, 26, 9)

    early = abs(line[40] - ref_line[40])
    assert early > 1e-3  # the seeds differ visibly at first
    for ours, ref in ((line, ref_line), (signal, ref_signal), (hist, ref_hist)):
        np.testing.assert_allclose(ours[200:], ref[200:], rtol=0.0, atol=1e-9)
    assert math.isnan(ref_line[32]) and not math.isnan(line[32])  # TA-Lib waits for the signal
