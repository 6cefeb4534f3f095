"""File replay source: recorded market data at maximum speed, ×N real time, or a fixed rate."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tickpipe.clock import Clock, SimClock
from tickpipe.marketdata import ParseError, QuoteData, TradeData, read_binance_capture
from tickpipe.service import Emit
from tickpipe_ingest.normalize import Normalizer

Item = TradeData | QuoteData | ParseError


class FileReplaySource:
    """Replays a capture `loops` times (later loops shifted in time and trade id).

    Pacing: `rate` records/s if set, else `speed` × real time (0 = as fast as possible).
    Under a SimClock, the clock follows the data's exchange time instead of sleeping.
    """

    def __init__(
        self,
        path: Path,
        normalize: Normalizer,
        clock: Clock,
        *,
        speed: float = 0.0,
        rate: float | None = None,
        loops: int = 1,
        limit: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = path
        self._normalize = normalize
        self._clock = clock
        self._speed = speed
        self._rate = rate
        self._loops = loops
        self._limit = limit
        self._sleep = sleep

    def _items(self) -> Iterator[Item]:
        items = list(read_binance_capture(self.path))
        stamps = [i.ts_event for i in items if not isinstance(i, ParseError)]
        # Quotes carry receive time, trades exchange time: shift by the whole range.
        span = (max(stamps) - min(stamps) + 1_000_000_000) if stamps else 0
        for loop in range(self._loops):
            for item in items:
                yield _shifted(item, loop, loop * span) if loop else item

    def __iter__(self) -> Iterator[Emit]:
        sim = self._clock if isinstance(self._clock, SimClock) else None
        started = time.monotonic()
        first_ts: int | None = None
        for n, item in enumerate(self._items()):
            if self._limit is not None and n >= self._limit:
                return
            ts = None if isinstance(item, ParseError) else item.ts_event
            if sim is not None and ts is not None:
                sim.advance_to(ts)
            elif self._rate:
                self._wait_until(started + n / self._rate)
            elif self._speed > 0 and ts is not None:
                first_ts = ts if first_ts is None else first_ts
                self._wait_until(started + (ts - first_ts) / 1e9 / self._speed)
            yield self._normalize(item)

    def _wait_until(self, deadline: float) -> None:
        delay = deadline - time.monotonic()
        if delay > 0:
            self._sleep(delay)


def _shifted(item: Item, loop: int, shift_ns: int) -> Item:
    """A later loop's copy: times moved past the previous loop, trade ids kept unique."""
    if isinstance(item, ParseError):
        return item
    if isinstance(item, TradeData):
        return dataclasses.replace(
            item, ts_event=item.ts_event + shift_ns, trade_id=f"{item.trade_id}-{loop}"
        )
    return dataclasses.replace(item, ts_event=item.ts_event + shift_ns)
