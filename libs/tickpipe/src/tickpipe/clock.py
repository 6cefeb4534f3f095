"""Injected time. Domain code never reads the wall clock, so backtests are deterministic."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int: ...


class LiveClock:
    """Wall-clock time in integer nanoseconds since the epoch (UTC)."""

    def now_ns(self) -> int:
        return time.time_ns()


class SimClock:
    """A clock moved by the caller, e.g. to each event's exchange time in a replay."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def advance_to(self, ts_ns: int) -> None:
        # Time never runs backwards, even when input timestamps do.
        self._now = max(self._now, ts_ns)
