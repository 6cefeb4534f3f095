"""Synthetic source: the seeded `SyntheticMarket` paced in real time, or at maximum speed.

Timestamps: under a SimClock the clock follows the model's exchange time (fully
deterministic); paced at `rate` events/s the model's time runs with the wall clock; at
maximum speed the model's time would run ahead of the wall clock (and be rejected as from
the future), so events are stamped with the clock instead. Prices, sizes, sides and ids
depend on the seed only.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator

from tickpipe.clock import Clock, SimClock
from tickpipe.marketdata import SyntheticConfig, SyntheticMarket
from tickpipe.service import Emit
from tickpipe_ingest.normalize import Normalizer
from tickpipe_ingest.replay import PACE_SLACK_S


class GeneratorSource:
    def __init__(
        self,
        config: SyntheticConfig,
        normalize: Normalizer,
        clock: Clock,
        *,
        paced: bool = True,
        limit: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        stop: threading.Event | None = None,
    ) -> None:
        self.config = config
        self._normalize = normalize
        self._clock = clock
        self._paced = paced
        self._limit = limit
        self._sleep = sleep
        self._stop = stop

    def __iter__(self) -> Iterator[Emit]:
        start_ns = self._clock.now_ns()
        market = SyntheticMarket(self.config, start_ns)
        sim = self._clock if isinstance(self._clock, SimClock) else None
        started = time.monotonic()
        last_ts = 0
        n = 0
        while self._limit is None or n < self._limit:
            if self._stop is not None and self._stop.is_set():
                return
            item = next(market)
            if sim is not None:
                sim.advance_to(item.ts_event)
            elif self._paced:
                delay = started + (item.ts_event - start_ns) / 1e9 - time.monotonic()
                if delay > PACE_SLACK_S:
                    self._sleep(delay)
            else:
                last_ts = max(last_ts + 1, self._clock.now_ns())
                item = dataclasses.replace(item, ts_event=last_ts)
            n += 1
            yield from self._normalize.emits(item)
