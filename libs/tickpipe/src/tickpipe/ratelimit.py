"""Token-bucket rate limiting, shared per exchange by every caller in the process.

ccxt expresses an exchange's limit as `rateLimit`: milliseconds between two requests of cost
1, with heavier endpoints costing more (Binance weights). `TokenBucket.for_interval_ms` turns
that into a refill rate of `1000 / rateLimit` tokens per second; `cost` tokens are taken per
call. A caller that finds too few tokens *reserves* them (the level goes negative) and is told
how long to wait, so waiters are served in arrival order without polling, and ingest and
execution sharing one bucket never exceed the exchange's limit together.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

Monotonic = Callable[[], float]


class TokenBucket:
    """`rate` tokens per second, at most `capacity` banked. Thread-safe."""

    def __init__(
        self, rate: float, capacity: float = 1.0, monotonic: Monotonic = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.rate = rate
        self.capacity = capacity
        self._monotonic = monotonic
        self._tokens = capacity
        self._stamp = monotonic()
        self._lock = threading.Lock()
        self.waited_s = 0.0  # total wait handed out: how hard the limit binds

    @classmethod
    def for_interval_ms(
        cls, interval_ms: float, capacity: float = 1.0, monotonic: Monotonic = time.monotonic
    ) -> TokenBucket:
        """A bucket for ccxt's `exchange.rateLimit` (ms between requests of cost 1)."""
        if interval_ms <= 0:
            raise ValueError(f"interval must be positive, got {interval_ms} ms")
        return cls(1000.0 / interval_ms, capacity, monotonic)

    def reserve(self, cost: float = 1.0) -> float:
        """Take `cost` tokens now; returns the seconds to wait before using them (0 if none)."""
        if cost < 0:
            raise ValueError(f"cost must not be negative, got {cost}")
        with self._lock:
            now = self._monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= cost
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
            self.waited_s += wait
            return wait

    def acquire(self, cost: float = 1.0, sleep: Callable[[float], None] = time.sleep) -> float:
        """Block until `cost` tokens are ours; returns the seconds waited."""
        wait = self.reserve(cost)
        if wait > 0:
            sleep(wait)
        return wait

    async def acquire_async(self, cost: float = 1.0) -> float:
        """`acquire` for coroutines: waits without blocking the event loop."""
        wait = self.reserve(cost)
        if wait > 0:
            await asyncio.sleep(wait)
        return wait


class RateLimiters:
    """One bucket per exchange id: every client of an exchange in the process shares it."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def for_exchange(
        self, exchange_id: str, interval_ms: float, capacity: float = 1.0
    ) -> TokenBucket:
        """The exchange's bucket, created on first use from its ccxt `rateLimit`.

        Later callers get the existing bucket whatever interval they pass: the first
        configuration wins, so two components can never double an exchange's budget.
        """
        with self._lock:
            bucket = self._buckets.get(exchange_id)
            if bucket is None:
                bucket = TokenBucket.for_interval_ms(interval_ms, capacity)
                self._buckets[exchange_id] = bucket
            return bucket


LIMITERS = RateLimiters()
"""The process-wide registry (ingest today; execution will share it)."""
