"""Time bars from trades: OHLCV, VWAP, count, buy and sell volume."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bar:
    start: int  # ns, inclusive
    end: int  # ns, exclusive
    open: float
    high: float
    low: float
    close: float
    volume: float
    notional: float
    count: int
    buy_volume: float
    sell_volume: float

    @property
    def vwap(self) -> float:
        return self.notional / self.volume if self.volume > 0 else self.close


class TimeBarBuilder:
    """Aggregates trades into fixed intervals aligned to the epoch.

    A bar closes when the first trade of a later interval arrives (that trade "completes"
    it, and its trace continues through the bar). Intervals without trades produce no bar.
    A trade older than the open bar is folded into the open bar and counted in `late`.
    """

    __slots__ = (
        "_buy",
        "_close",
        "_count",
        "_high",
        "_low",
        "_notional",
        "_open",
        "_sell",
        "_start",
        "_volume",
        "interval",
        "late",
    )

    def __init__(self, interval_ns: int) -> None:
        if interval_ns <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval_ns
        self.late = 0
        self._start = -1

    def _reset(self, start: int, price: float) -> None:
        self._start = start
        self._open = self._high = self._low = self._close = price
        self._volume = self._notional = self._buy = self._sell = 0.0
        self._count = 0

    def _bar(self) -> Bar:
        return Bar(
            self._start,
            self._start + self.interval,
            self._open,
            self._high,
            self._low,
            self._close,
            self._volume,
            self._notional,
            self._count,
            self._buy,
            self._sell,
        )

    def add(self, ts: int, price: float, size: float, is_buy: bool) -> Bar | None:
        """Add a trade; returns the bar it closed, if any."""
        start = ts - ts % self.interval
        closed: Bar | None = None
        if self._start < 0:
            self._reset(start, price)
        elif start > self._start:
            closed = self._bar()
            self._reset(start, price)
        elif start < self._start:
            self.late += 1
        self._high = max(self._high, price)
        self._low = min(self._low, price)
        if start >= self._start:
            # A late trade predates every trade in the open bar: it is not the last price.
            self._close = price
        self._volume += size
        self._notional += price * size
        self._count += 1
        if is_buy:
            self._buy += size
        else:
            self._sell += size
        return closed
