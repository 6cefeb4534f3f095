"""Incremental indicators against direct reference computations written out here."""

from __future__ import annotations

import itertools
import math
import random
import statistics

import pytest

from tickpipe_quant.indicators import (
    Atr,
    Bollinger,
    Ema,
    Lag,
    LogReturn,
    Macd,
    RealizedVol,
    Return,
    RollingStd,
    RollingSum,
    Rsi,
    Sma,
    Wilder,
)
from tickpipe_quant.microstructure import imbalance, microprice, share, spread_bps

# StockCharts' RSI worked example (Wilder, 14 periods); closes to four decimals.
STOCKCHARTS_CLOSES = [
    44.3389, 44.0902, 44.1497, 43.6124, 44.3278, 44.8264, 45.0955, 45.4245, 45.8433, 46.0826,
    45.8931, 46.0328, 45.6140, 46.2820, 46.2820, 46.0028, 46.0328, 46.4116, 46.2222, 45.6439,
    46.2122, 46.2521, 45.7137, 46.4515, 45.7835, 45.3548, 44.0288, 44.1783, 44.2181, 44.5672,
    43.4205, 42.6628, 43.1314,
]  # fmt: skip
# The RSI column of that example, from the 15th close on.
STOCKCHARTS_RSI = [
    70.53, 66.32, 66.55, 69.41, 66.36, 57.97, 62.93, 63.26, 56.06, 62.38, 54.71, 50.42, 39.99,
    41.46, 41.87, 45.46, 37.30, 33.08, 37.77,
]  # fmt: skip


def _random_walk(n: int, seed: int, start: float = 60_000.0) -> list[float]:
    rng = random.Random(seed)
    out, price = [], start
    for _ in range(n):
        price *= math.exp(rng.gauss(0, 0.001))
        out.append(price)
    return out


def _reference_ema(xs: list[float], period: int) -> list[float]:
    """SMA of the first `period` values, then x_t*a + ema_{t-1}*(1-a), a = 2/(period+1)."""
    a = 2 / (period + 1)
    out: list[float] = []
    ema = math.nan
    for i, x in enumerate(xs):
        if i + 1 < period:
            out.append(math.nan)
            continue
        ema = sum(xs[:period]) / period if i + 1 == period else x * a + ema * (1 - a)
        out.append(ema)
    return out


def _reference_rsi(xs: list[float], period: int) -> list[float]:
    """Wilder's RSI, written as in the textbook: simple means first, then smoothed."""
    changes = [b - a for a, b in itertools.pairwise(xs)]
    out = [math.nan] * len(xs)
    avg_gain = avg_loss = 0.0
    for i, ch in enumerate(changes):
        gain, loss = max(ch, 0.0), max(-ch, 0.0)
        if i + 1 < period:
            continue
        if i + 1 == period:
            window = changes[:period]
            avg_gain = sum(max(c, 0.0) for c in window) / period
            avg_loss = sum(max(-c, 0.0) for c in window) / period
        else:
            avg_gain = (avg_gain * (period - 1) + gain) / period
            avg_loss = (avg_loss * (period - 1) + loss) / period
        if avg_loss == 0:
            out[i + 1] = 100.0 if avg_gain > 0 else 50.0
        else:
            out[i + 1] = 100 - 100 / (1 + avg_gain / avg_loss)
    return out


def _assert_series_close(got: list[float], want: list[float], rel: float, abs_: float) -> None:
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if math.isnan(w):
            assert math.isnan(g), f"index {i}: expected NaN during warm-up, got {g}"
        else:
            assert g == pytest.approx(w, rel=rel, abs=abs_), f"index {i}"


@pytest.mark.parametrize("period", [1, 2, 12, 26])
def test_ema_when_fed_random_walk_matches_reference(period: int) -> None:
    xs = _random_walk(500, seed=period)
    ema = Ema(period)

    got = [ema.update(x) for x in xs]

    _assert_series_close(got, _reference_ema(xs, period), rel=1e-12, abs_=0.0)


def test_ema_when_seeded_returns_sma_of_first_period() -> None:
    ema = Ema(3)

    assert math.isnan(ema.update(1.0))
    assert math.isnan(ema.update(2.0))
    assert ema.update(6.0) == 3.0
    assert ema.update(7.0) == 3.0 + 0.5 * (7.0 - 3.0)


def test_rsi_when_fed_stockcharts_example_matches_published_values() -> None:
    rsi = Rsi(14)

    got = [rsi.update(x) for x in STOCKCHARTS_CLOSES]

    assert all(math.isnan(v) for v in got[:14])
    assert [round(v, 2) for v in got[14:]] == STOCKCHARTS_RSI


@pytest.mark.parametrize("period", [2, 5, 14])
def test_rsi_when_fed_random_walk_matches_reference(period: int) -> None:
    xs = _random_walk(400, seed=100 + period)
    rsi = Rsi(period)

    got = [rsi.update(x) for x in xs]

    _assert_series_close(got, _reference_rsi(xs, period), rel=1e-9, abs_=1e-9)


def test_rsi_when_prices_only_rise_returns_100() -> None:
    rsi = Rsi(5)

    values = [rsi.update(float(x)) for x in range(1, 12)]

    assert values[-1] == 100.0


def test_rsi_when_prices_flat_returns_50() -> None:
    rsi = Rsi(5)

    values = [rsi.update(10.0) for _ in range(8)]

    assert math.isnan(values[4])
    assert values[5:] == [50.0, 50.0, 50.0]


def test_rsi_when_prices_only_fall_returns_0() -> None:
    rsi = Rsi(4)

    values = [rsi.update(float(x)) for x in range(20, 10, -1)]

    assert values[-1] == 0.0


def _check_rolling_std(xs: list[float], period: int, rel: float, every: int = 1) -> None:
    rs = RollingStd(period)
    for i, x in enumerate(xs):
        got = rs.update(x)
        if i + 1 < period:
            assert math.isnan(got)
        elif i % every == 0 or i == len(xs) - 1:
            want = statistics.stdev(xs[i + 1 - period : i + 1])
            assert got == pytest.approx(want, rel=rel, abs=1e-15), f"index {i}"


@pytest.mark.parametrize("period", [2, 3, 20])
def test_rolling_std_when_windows_slide_matches_statistics_stdev(period: int) -> None:
    rng = random.Random(period)
    xs = [rng.gauss(0, 1) for _ in range(300)]

    _check_rolling_std(xs, period, rel=1e-9)


def test_rolling_std_when_fed_log_returns_for_many_updates_does_not_drift() -> None:
    prices = _random_walk(50_001, seed=5)
    rets = [math.log(b / a) for a, b in itertools.pairwise(prices)]

    _check_rolling_std(rets, 20, rel=1e-9, every=97)


def test_rolling_std_when_fed_prices_a_few_ticks_apart_matches_stdev() -> None:
    # A large mean next to a tiny spread: the naive sum-of-squares formula loses it.
    rng = random.Random(1)
    prices = [60_000 + 0.01 * rng.randint(0, 3) for _ in range(2_000)]

    _check_rolling_std(prices, 20, rel=1e-6, every=7)


def test_rolling_std_when_values_jump_in_scale_recovers_after_window() -> None:
    # A huge value leaves the window: running sums would keep its rounding error forever.
    xs = [1e9] * 20 + [1e-4 * math.sin(i) for i in range(200)]

    rs = RollingStd(20)
    got = [rs.update(x) for x in xs]

    want = statistics.stdev(xs[-20:])
    assert got[-1] == pytest.approx(want, rel=1e-6)


def test_rolling_std_when_window_constant_returns_zero() -> None:
    rs = RollingStd(4)

    values = [rs.update(0.1) for _ in range(50)]

    assert values[-1] == 0.0


def test_rolling_std_when_period_below_two_raises() -> None:
    with pytest.raises(ValueError, match="period"):
        RollingStd(1)


def test_rolling_std_when_ddof_zero_matches_statistics_pstdev() -> None:
    xs = _random_walk(300, seed=11)
    rs = RollingStd(20, ddof=0)

    got = [rs.update(x) for x in xs]

    for i in range(19, len(xs), 13):
        window = xs[i - 19 : i + 1]
        assert got[i] == pytest.approx(statistics.pstdev(window), rel=1e-9)
    assert rs.mean == pytest.approx(statistics.fmean(xs[-20:]), rel=1e-15)


def _reference_wilder(xs: list[float], period: int) -> list[float]:
    """Wilder's own recursion: mean of the first `period`, then (prev * (n - 1) + x) / n."""
    out = [math.nan] * len(xs)
    for i in range(period - 1, len(xs)):
        prev = out[i - 1]
        out[i] = (
            sum(xs[:period]) / period if i == period - 1 else (prev * (period - 1) + xs[i]) / period
        )
    return out


def test_wilder_when_fed_random_walk_matches_wilders_recursion() -> None:
    xs = [abs(x - 60_000.0) for x in _random_walk(300, seed=3)]
    w = Wilder(14)

    got = [w.update(x) for x in xs]

    _assert_series_close(got, _reference_wilder(xs, 14), rel=1e-12, abs_=0.0)


def test_lag_when_fewer_than_n_plus_one_inputs_returns_nan_then_the_old_value() -> None:
    lag = Lag(2)

    values = [lag.update(x) for x in (1.0, 2.0, 3.0, 4.0)]

    assert math.isnan(values[0]) and math.isnan(values[1])
    assert values[2:] == [1.0, 2.0]


@pytest.mark.parametrize("lag", [1, 5])
def test_returns_when_fed_prices_match_direct_formulas(lag: int) -> None:
    xs = _random_walk(50, seed=lag)
    simple, log = Return(lag), LogReturn(lag)

    got_simple = [simple.update(x) for x in xs]
    got_log = [log.update(x) for x in xs]

    assert all(math.isnan(v) for v in got_simple[:lag] + got_log[:lag])
    assert got_simple[lag:] == [b / a - 1.0 for a, b in zip(xs, xs[lag:], strict=False)]
    assert got_log[lag:] == [math.log(b / a) for a, b in zip(xs, xs[lag:], strict=False)]


@pytest.mark.parametrize("period", [1, 5, 20])
def test_sma_when_windows_slide_matches_statistics_fmean(period: int) -> None:
    xs = _random_walk(400, seed=20 + period)
    sma = Sma(period)

    got = [sma.update(x) for x in xs]

    want = [math.nan] * (period - 1) + [
        statistics.fmean(xs[i + 1 - period : i + 1]) for i in range(period - 1, len(xs))
    ]
    _assert_series_close(got, want, rel=1e-12, abs_=0.0)


def test_rolling_sum_when_a_huge_value_leaves_the_window_forgets_its_rounding() -> None:
    xs = [1e16] + [0.1] * 30
    rs = RollingSum(10)

    got = [rs.update(x) for x in xs]

    assert got[-1] == math.fsum([0.1] * 10)


def test_macd_when_fed_random_walk_matches_ema_difference_and_signal_reference() -> None:
    xs = _random_walk(300, seed=9)
    macd = Macd(12, 26, 9)
    lines, signals, hists = [], [], []
    for x in xs:
        macd.update(x)
        lines.append(macd.value)
        signals.append(macd.signal)
        hists.append(macd.hist)

    want_line = [f - s for f, s in zip(_reference_ema(xs, 12), _reference_ema(xs, 26), strict=True)]
    want_signal = [math.nan] * 25 + _reference_ema(want_line[25:], 9)
    _assert_series_close(lines, want_line, rel=1e-12, abs_=1e-9)
    _assert_series_close(signals, want_signal, rel=1e-12, abs_=1e-9)
    assert all(math.isnan(h) for h in hists[:33]) and not math.isnan(hists[33])
    assert hists[-1] == lines[-1] - signals[-1]


def test_macd_when_fast_not_shorter_than_slow_raises() -> None:
    with pytest.raises(ValueError, match="fast"):
        Macd(26, 12)


def test_bollinger_when_fed_random_walk_matches_mean_and_population_std() -> None:
    xs = _random_walk(200, seed=4)
    bb = Bollinger(20, 2.0)

    for i, x in enumerate(xs):
        bb.update(x)
        if i < 19:
            assert math.isnan(bb.middle) and math.isnan(bb.pct_b)
            continue
        window = xs[i - 19 : i + 1]
        mean, std = statistics.fmean(window), statistics.pstdev(window)
        assert bb.middle == pytest.approx(mean, rel=1e-14)
        assert bb.upper == pytest.approx(mean + 2 * std, rel=1e-14)
        assert bb.lower == pytest.approx(mean - 2 * std, rel=1e-14)
        assert bb.pct_b == pytest.approx((x - (mean - 2 * std)) / (4 * std), rel=1e-9, abs=1e-9)
        assert bb.width == pytest.approx(4 * std / mean, rel=1e-9)


def test_bollinger_when_window_flat_reports_price_in_the_middle() -> None:
    bb = Bollinger(5)

    for _ in range(5):
        bb.update(100.0)

    assert (bb.upper, bb.lower, bb.pct_b, bb.width) == (100.0, 100.0, 0.5, 0.0)


def test_atr_when_fed_bars_matches_wilder_average_of_true_ranges() -> None:
    closes = _random_walk(120, seed=8)
    rng = random.Random(8)
    highs = [c * (1 + rng.random() * 1e-3) for c in closes]
    lows = [c * (1 - rng.random() * 1e-3) for c in closes]
    atr = Atr(14)

    got = [atr.update(h, lo, c) for h, lo, c in zip(highs, lows, closes, strict=True)]

    true_ranges = [
        max(highs[i] - lows[i], abs(highs[i] - closes[i - 1]), abs(lows[i] - closes[i - 1]))
        for i in range(1, len(closes))
    ]
    want = [math.nan, *_reference_wilder(true_ranges, 14)]
    _assert_series_close(got, want, rel=1e-12, abs_=0.0)
    assert math.isnan(got[13]) and not math.isnan(got[14])


def test_realized_vol_when_fed_prices_is_sample_std_of_log_returns() -> None:
    xs = _random_walk(100, seed=12)
    vol = RealizedVol(20)

    got = [vol.update(x) for x in xs]

    rets = [math.log(b / a) for a, b in itertools.pairwise(xs)]
    assert all(math.isnan(v) for v in got[:20])
    assert got[-1] == pytest.approx(statistics.stdev(rets[-20:]), rel=1e-9)
    assert got[20] == pytest.approx(statistics.stdev(rets[:20]), rel=1e-9)


@pytest.mark.parametrize("cls", [Lag, Sma, Ema, Wilder, RollingSum])
def test_indicator_when_period_below_one_raises(cls: type) -> None:
    with pytest.raises(ValueError, match="period"):
        cls(0)


def test_microprice_when_ask_side_thin_leans_toward_ask() -> None:
    assert microprice(100.0, 101.0, 3.0, 1.0) == 100.75
    assert microprice(100.0, 101.0, 0.0, 0.0) == 100.5
    assert spread_bps(100.0, 101.0) == pytest.approx(1.0 / 100.5 * 1e4, rel=1e-15)


def test_imbalance_when_volumes_given_is_signed_share_zero_when_idle_nan_when_unknown() -> None:
    assert imbalance(3.0, 1.0) == 0.5
    assert imbalance(0.0, 2.0) == -1.0
    assert imbalance(0.0, 0.0) == 0.0
    assert math.isnan(imbalance(math.nan, math.nan))
    assert share(1.0, 4.0) == 0.25
