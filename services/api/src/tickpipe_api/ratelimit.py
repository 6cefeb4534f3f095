"""Per-subject token buckets: each request takes a token; an empty bucket answers 429."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: int, monotonic: Callable[[], float]) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._now = monotonic
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, subject: str) -> float:
        """Take one token; returns 0 when granted, else the seconds until one is available."""
        with self._lock:
            now = self._now()
            b = self._buckets.setdefault(subject, _Bucket(self._burst, now))
            b.tokens = min(self._burst, b.tokens + (now - b.updated) * self._rate)
            b.updated = now
            if b.tokens >= 1:
                b.tokens -= 1
                return 0.0
            return (1 - b.tokens) / self._rate
