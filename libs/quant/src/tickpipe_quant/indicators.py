"""Incremental indicators: O(1) per update, plain floats in, NaN until warmed up."""

from __future__ import annotations

import math
from collections import deque

NAN = math.nan


class Ema:
    """Exponential moving average, seeded with the SMA of the first `period` values."""

    __slots__ = ("_alpha", "_count", "_sum", "period", "value")

    def __init__(self, period: int) -> None:
        self.period = period
        self._alpha = 2.0 / (period + 1)
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
            self.value += self._alpha * (x - self.value)
        return self.value


class Rsi:
    """Wilder's RSI: average gain/loss seeded by the simple mean of the first `period` changes."""

    __slots__ = ("_avg_gain", "_avg_loss", "_count", "_prev", "period", "value")

    def __init__(self, period: int = 14) -> None:
        self.period = period
        self._prev = NAN
        self._count = 0
        self._avg_gain = 0.0
        self._avg_loss = 0.0
        self.value = NAN

    def update(self, x: float) -> float:
        if math.isnan(self._prev):
            self._prev = x
            return self.value
        change = x - self._prev
        self._prev = x
        gain = change if change > 0 else 0.0
        loss = -change if change < 0 else 0.0
        n = self.period
        if self._count < n:
            self._count += 1
            self._avg_gain += gain / n
            self._avg_loss += loss / n
            if self._count < n:
                return self.value
        else:
            self._avg_gain = (self._avg_gain * (n - 1) + gain) / n
            self._avg_loss = (self._avg_loss * (n - 1) + loss) / n
        if self._avg_loss == 0.0:
            self.value = 100.0 if self._avg_gain > 0 else 50.0
        else:
            self.value = 100.0 - 100.0 / (1.0 + self._avg_gain / self._avg_loss)
        return self.value


class RollingStd:
    """Sample standard deviation over the last `period` values (ring buffer, running sums).

    Running sums drift over long runs; they are recomputed from the window every `period`
    updates so the error stays bounded. The sums are of `x - shift`, with `shift` near the
    window's values: raw sums of squares cancel catastrophically when the mean is large
    next to the spread (prices), e.g. 1% error on BTC prices a few ticks apart.
    """

    __slots__ = ("_buf", "_shift", "_since_resum", "_sum", "_sumsq", "period", "value")

    def __init__(self, period: int) -> None:
        if period < 2:
            raise ValueError("period must be >= 2")
        self.period = period
        self._buf: deque[float] = deque(maxlen=period)
        self._shift = NAN
        self._sum = 0.0
        self._sumsq = 0.0
        self._since_resum = 0
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
        var = (self._sumsq - self._sum * self._sum / n) / (n - 1)
        self.value = math.sqrt(var) if var > 0 else 0.0
        return self.value
