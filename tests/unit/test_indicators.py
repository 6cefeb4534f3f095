"""Incremental indicators against direct reference computations written out here."""

from __future__ import annotations

import itertools
import math
import random
import statistics

import pytest

from tickpipe_quant.indicators import Ema, RollingStd, Rsi

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
