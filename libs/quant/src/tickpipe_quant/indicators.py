"""Incremental indicators: O(1) per update, plain floats in, NaN until warmed up.

Changing what an indicator computes changes the features that read it: bump the `revision`
of its components in `features.py`, which renames the feature set.

Conventions (their polars twins, `exprs.py` and the batch halves in `features.py`, follow the
same ones; `tests/unit` checks them against TA-Lib, which differs where noted):

- EMA-family smoothing (EMA, Wilder's RSI and ATR averages, MACD's signal) is seeded with the
  simple mean of the first `period` inputs, then updated as ``v += alpha * (x - v)``. That is
  TA-Lib's seeding, and the exact update polars' ``ewm_mean(adjust=False)`` performs, so batch
  and streaming agree bit for bit. TA-Lib's Wilder update is written ``(v*(n-1) + x) / n``:
  the same number up to the last bit or two.
- RSI is ``100 * g / (g + l)``; with no movement at all it is 50 (TA-Lib says 0).
- MACD's fast and slow EMAs are each seeded from their own first `period` closes (the
  textbook; equal to TA-Lib's EMA(12) - EMA(26)). TA-Lib's MACD seeds its fast EMA with the
  mean of the 12 closes ending on the slow EMA's first bar (bar 26) and outputs nothing
  before the signal is ready (bar 34), so it differs at first and converges geometrically
  (identical from bar ~200 on the sample). Both seed the signal with the mean of the
  first 9 MACD values.
- Bollinger bands use the population standard deviation (TA-Lib's BBANDS); realized
  volatility the sample one (n - 1). Window sums here are of values shifted near the window
  and recomputed exactly every window; TA-Lib keeps raw running sums of prices and of their
  squares, so the band width agrees to ~1e-12 relative, the bands and SMAs to ~1e-15.
- ATR starts on the second bar: the first true range needs a previous close (TA-Lib too).
"""

from __future__ import annotations

import math
from collections import deque

from tickpipe_quant.state import SlotState

NAN = math.nan


def _positive(period: int, minimum: int = 1) -> int:
    if period < minimum:
        raise ValueError(f"period must be >= {minimum}")
    return period


class Lag(SlotState):
    """The input `n` updates ago (ring buffer of n + 1)."""

    __slots__ = ("_buf", "n")

    def __init__(self, n: int) -> None:
        self.n = _positive(n)
        self._buf: deque[float] = deque(maxlen=n + 1)

    def update(self, x: float) -> float:
        self._buf.append(x)
        return self._buf[0] if len(self._buf) > self.n else NAN


class Return(SlotState):
    """Simple return over `lag` updates: x_t / x_{t-lag} - 1."""

    __slots__ = ("_lag", "value")

    def __init__(self, lag: int = 1) -> None:
        self._lag = Lag(lag)
        self.value = NAN

    def update(self, x: float) -> float:
        prev = self._lag.update(x)
        self.value = NAN if math.isnan(prev) else x / prev - 1.0
        return self.value


class LogReturn(SlotState):
    """Log return over `lag` updates: ln(x_t / x_{t-lag})."""

    __slots__ = ("_lag", "value")

    def __init__(self, lag: int = 1) -> None:
        self._lag = Lag(lag)
        self.value = NAN

    def update(self, x: float) -> float:
        prev = self._lag.update(x)
        self.value = NAN if math.isnan(prev) else math.log(x / prev)
        return self.value


class RollingSum(SlotState):
    """Sum of the last `period` inputs; running sum, recomputed exactly every `period`
    updates so rounding never accumulates past one window."""

    __slots__ = ("_buf", "_since_resum", "_sum", "period", "value")

    def __init__(self, period: int) -> None:
        self.period = _positive(period)
        self._buf: deque[float] = deque(maxlen=period)
        self._sum = 0.0
        self._since_resum = 0
        self.value = NAN

    def update(self, x: float) -> float:
        if len(self._buf) == self.period:
            self._sum -= self._buf[0]
        self._buf.append(x)
        self._sum += x
        self._since_resum += 1
        if self._since_resum >= self.period:
            self._sum = math.fsum(self._buf)
            self._since_resum = 0
        if len(self._buf) == self.period:
            self.value = self._sum
        return self.value


class RollingStd(SlotState):
    """Standard deviation (and mean) of the last `period` values: ring buffer, running sums.

    `ddof` 1 is the sample deviation, 0 the population one. Running sums drift over long
    runs; they are recomputed from the window every `period` updates so the error stays
    bounded. The sums are of `x - shift`, with `shift` near the window's values: raw sums of
    squares cancel catastrophically when the mean is large next to the spread (prices), e.g.
    1% error on BTC prices a few ticks apart.
    """

    __slots__ = (
        "_buf",
        "_shift",
        "_since_resum",
        "_sum",
        "_sumsq",
        "ddof",
        "mean",
        "period",
        "value",
    )

    def __init__(self, period: int, ddof: int = 1) -> None:
        if ddof not in (0, 1):
            raise ValueError("ddof must be 0 or 1")
        self.period = _positive(period, 2)
        self.ddof = ddof
        self._buf: deque[float] = deque(maxlen=period)
        self._shift = NAN
        self._sum = 0.0
        self._sumsq = 0.0
        self._since_resum = 0
        self.mean = NAN
        self.value = NAN

    def update(self, x: float) -> float:
        if not self._buf:
            self._shift = x
        if len(self._buf) == self.period:
            old = self._buf[0] - self._shift
            self._sum -= old
            self._sumsq -= old * old
        self._buf.append(x)
        d = x - self._shift
        self._sum += d
        self._sumsq += d * d
        self._since_resum += 1
        if self._since_resum >= self.period:
            self._shift = self._buf[-1]
            self._sum = math.fsum(v - self._shift for v in self._buf)
            self._sumsq = math.fsum((v - self._shift) ** 2 for v in self._buf)
            self._since_resum = 0
        n = len(self._buf)
        if n < self.period:
            return self.value
        self.mean = self._shift + self._sum / n
        var = (self._sumsq - self._sum * self._sum / n) / (n - self.ddof)
        self.value = math.sqrt(var) if var > 0 else 0.0
        return self.value


class Sma(SlotState):
    """Simple moving average of the last `period` values."""

    __slots__ = ("_sum", "value")

    def __init__(self, period: int) -> None:
        self._sum = RollingSum(period)
        self.value = NAN

    def update(self, x: float) -> float:
        total = self._sum.update(x)
        if not math.isnan(total):
            self.value = total / self._sum.period
        return self.value


class Ema(SlotState):
    """Exponential moving average, alpha = 2 / (period + 1), seeded with the SMA of the
    first `period` values."""

    __slots__ = ("_count", "_sum", "alpha", "period", "value")

    def __init__(self, period: int, alpha: float | None = None) -> None:
        self.period = _positive(period)
        self.alpha = 2.0 / (period + 1) if alpha is None else alpha
        self._count = 0
        self._sum = 0.0
        self.value = NAN

    def update(self, x: float) -> float:
        if self._count < self.period:
            self._count += 1
            self._sum += x
            if self._count == self.period:
                self.value = self._sum / self.period
        else:
            self.value += self.alpha * (x - self.value)
        return self.value


class Wilder(Ema):
    """Wilder's smoothing (RMA): an EMA with alpha = 1 / period, seeded the same way."""

    __slots__ = ()

    def __init__(self, period: int) -> None:
        super().__init__(period, alpha=1.0 / _positive(period))


class Rsi(SlotState):
    """Wilder's RSI: average gain and loss seeded by the simple mean of the first `period`
    changes, then Wilder-smoothed."""

    __slots__ = ("_gain", "_loss", "_prev", "value")

    def __init__(self, period: int = 14) -> None:
        self._gain = Wilder(period)
        self._loss = Wilder(period)
        self._prev = NAN
        self.value = NAN

    def update(self, x: float) -> float:
        prev, self._prev = self._prev, x
        if math.isnan(prev):
            return self.value
        change = x - prev
        gain = self._gain.update(change if change > 0 else 0.0)
        loss = self._loss.update(-change if change < 0 else 0.0)
        if not math.isnan(gain):
            total = gain + loss
            self.value = 100.0 * (gain / total) if total > 0 else 50.0
        return self.value


class Macd(SlotState):
    """MACD line (fast EMA - slow EMA), its signal line (EMA of the line, seeded with the
    mean of its first `signal_period` values) and the histogram (line - signal)."""

    __slots__ = ("_fast", "_signal", "_slow", "fast", "hist", "signal", "slow", "value")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        if fast >= slow:
            raise ValueError("fast period must be shorter than slow")
        self._fast = Ema(fast)
        self._slow = Ema(slow)
        self._signal = Ema(signal)
        self.fast = self.slow = NAN  # the two EMAs, for callers that want them too
        self.value = self.signal = self.hist = NAN

    def update(self, x: float) -> float:
        self.fast = fast = self._fast.update(x)
        self.slow = slow = self._slow.update(x)
        if not math.isnan(slow):
            self.value = fast - slow
            self.signal = self._signal.update(self.value)
            self.hist = self.value - self.signal
        return self.value


class Bollinger(SlotState):
    """Bollinger bands: SMA ± k population standard deviations; %B and bandwidth.

    %B is 0.5 while the bands have zero width (a flat window): the price sits in the middle.
    """

    __slots__ = ("_std", "k", "lower", "middle", "pct_b", "upper", "width")

    def __init__(self, period: int = 20, k: float = 2.0) -> None:
        self._std = RollingStd(period, ddof=0)
        self.k = k
        self.middle = self.upper = self.lower = self.pct_b = self.width = NAN

    def update(self, x: float) -> float:
        std = self._std.update(x)
        if not math.isnan(std):
            self.middle = self._std.mean
            self.upper = self.middle + self.k * std
            self.lower = self.middle - self.k * std
            band = self.upper - self.lower
            self.pct_b = (x - self.lower) / band if band > 0 else 0.5
            self.width = band / self.middle
        return self.middle


class Atr(SlotState):
    """Average true range: Wilder-smoothed max(high - low, |high - prev close|,
    |low - prev close|), seeded with the mean of the first `period` true ranges."""

    __slots__ = ("_avg", "_prev_close", "value")

    def __init__(self, period: int = 14) -> None:
        self._avg = Wilder(period)
        self._prev_close = NAN
        self.value = NAN

    def update(self, high: float, low: float, close: float) -> float:
        prev, self._prev_close = self._prev_close, close
        if not math.isnan(prev):
            tr = max(high - low, abs(high - prev), abs(low - prev))
            self.value = self._avg.update(tr)
        return self.value


class RealizedVol(SlotState):
    """Sample standard deviation of the last `period` one-step log returns (not annualised)."""

    __slots__ = ("_ret", "_std", "value")

    def __init__(self, period: int = 20) -> None:
        self._ret = LogReturn(1)
        self._std = RollingStd(period, ddof=1)
        self.value = NAN

    def update(self, x: float) -> float:
        r = self._ret.update(x)
        if not math.isnan(r):
            self.value = self._std.update(r)
        return self.value
