"""Pure pieces of a live feed: reconnect backoff, the staleness watchdog, overlap filtering.

No clocks or sockets here: time comes in as arguments and randomness as an injected
`random.Random`, so each piece is tested without waiting.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class Backoff:
    """Exponential backoff with "equal jitter": attempt n waits between d/2 and d, where
    d = min(max_s, initial_s * 2**n). Jitter spreads out many clients reconnecting at once
    after an outage; the d/2 floor keeps a retry from ever landing immediately."""

    initial_s: float = 0.5
    max_s: float = 30.0
    rng: random.Random | None = None
    attempt: int = 0

    def next_delay(self) -> float:
        cap = min(self.max_s, self.initial_s * 2.0 ** min(self.attempt, 30))
        self.attempt += 1
        rng = self.rng or random
        return cap / 2 + rng.uniform(0.0, cap / 2)

    def reset(self) -> None:
        self.attempt = 0


class StalenessWatchdog:
    """Per stream, the time of the last data; a stream silent for `stale_after_ns` is due once,
    then again only after another `stale_after_ns` of silence (one report per episode period).
    """

    def __init__(self, stale_after_ns: int) -> None:
        if stale_after_ns <= 0:
            raise ValueError("stale_after_ns must be positive")
        self.stale_after_ns = stale_after_ns
        self._last: dict[tuple[str, str], int] = {}

    def watch(self, symbol: str, stream: str, now_ns: int) -> None:
        """Start the clock for a stream (at subscription): silence from here on counts."""
        self._last.setdefault((symbol, stream), now_ns)

    def touch(self, symbol: str, stream: str, now_ns: int) -> None:
        self._last[(symbol, stream)] = now_ns

    def due(self, now_ns: int) -> list[tuple[str, str, int]]:
        """(symbol, stream, silent_ns) for each stream overdue; re-arms them."""
        overdue = []
        for key, last in self._last.items():
            silent = now_ns - last
            if silent >= self.stale_after_ns:
                overdue.append((*key, silent))
                self._last[key] = now_ns
        return overdue


class SeenTrades:
    """Trade ids already passed on, per symbol (bounded): a reconnect or an overlapping poll
    repeats recent trades, which are expected and skipped rather than dead-lettered."""

    def __init__(self, window: int = 10_000) -> None:
        self._window = window
        self._seen: dict[str, OrderedDict[str, None]] = {}

    def first_time(self, symbol: str, trade_id: str) -> bool:
        seen = self._seen.setdefault(symbol, OrderedDict())
        if trade_id in seen:
            return False
        seen[trade_id] = None
        if len(seen) > self._window:
            seen.popitem(last=False)
        return True
