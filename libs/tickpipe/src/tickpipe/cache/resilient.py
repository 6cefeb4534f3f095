"""A cache that survives its store going away: Redis is a cache, never a reason to crash.

Writes that fail are kept (the latest value per key) and written once the store answers
again, in the order they were made; nothing is dropped, no handler sees an exception. Reads
that fail raise `CacheUnavailable`: "absent" and "unknown" must not look alike (a kill
switch read as absent would read as off). `available()` lets a service fail closed while
the store is away (risk refuses new orders); it probes the store at most every
`probe_interval_s`, so it costs a round trip per interval, not one per record.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from tickpipe.cache.base import Cache, CacheUnavailable
from tickpipe.telemetry.metrics import CACHE_AVAILABLE, CACHE_FAILURES

log = logging.getLogger(__name__)

T = TypeVar("T")
_Write = tuple[bytes | None, float | None]  # value (None: delete), ttl
MAX_PROBE_INTERVAL_S = 5.0


class ResilientCache:
    def __init__(
        self,
        inner: Cache,
        probe: Callable[[], object],
        probe_interval_s: float = 0.5,
        max_pending: int = 100_000,
    ) -> None:
        self._inner = inner
        self._probe = probe
        self._interval = probe_interval_s
        self._max_pending = max_pending
        self._pending: dict[str, _Write] = {}  # insertion order is write order
        self._down = False
        self._next_probe = 0.0
        self._delay = probe_interval_s
        self._last_ok = time.monotonic()
        self._lock = threading.RLock()
        CACHE_AVAILABLE.set(1)

    # -- health -----------------------------------------------------------------------------

    def available(self) -> bool:
        """Probes the store when it last answered more than `probe_interval_s` ago: a
        store that died is noticed within that interval, at two round trips a second."""
        with self._lock:
            now = time.monotonic()
            if self._down and now >= self._next_probe:
                self._recover()
            elif not self._down and now - self._last_ok > self._interval:
                try:
                    self._probe()
                    self._last_ok = now
                except Exception as exc:
                    self._failed("probe", exc)
            return not self._down

    def _failed(self, op: str, exc: Exception) -> None:
        CACHE_FAILURES.labels(op).inc()
        if not self._down:
            log.error("cache unreachable: writes kept until it answers", extra={"error": repr(exc)})
            CACHE_AVAILABLE.set(0)
            self._delay = self._interval
        else:
            # A store that hangs costs a socket timeout per probe: probe less and less often.
            self._delay = min(self._delay * 2, MAX_PROBE_INTERVAL_S)
        self._down = True
        self._next_probe = time.monotonic() + self._delay

    def _recover(self) -> None:
        try:
            self._probe()
            while self._pending:
                key, (value, ttl) = next(iter(self._pending.items()))
                if value is None:
                    self._inner.delete(key)
                else:
                    self._inner.set(key, value, ttl)
                del self._pending[key]
        except Exception as exc:
            self._failed("probe", exc)
            return
        self._down = False
        self._last_ok = time.monotonic()
        CACHE_AVAILABLE.set(1)
        log.info("cache reachable again: kept writes written")

    # -- writes -----------------------------------------------------------------------------

    def _keep(self, key: str, write: _Write) -> None:
        self._pending.pop(key, None)  # re-inserted last: the newest write goes last
        self._pending[key] = write
        if len(self._pending) > self._max_pending:
            oldest = next(iter(self._pending))
            del self._pending[oldest]
            CACHE_FAILURES.labels("dropped").inc()

    def _write(self, op: str, writes: Mapping[str, _Write], call: Callable[[], None]) -> None:
        with self._lock:
            if self._down and not self.available():
                for key, write in writes.items():
                    self._keep(key, write)
                return
            try:
                call()
            except Exception as exc:
                self._failed(op, exc)
                for key, write in writes.items():
                    self._keep(key, write)

    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        self._write("set", {key: (value, ttl_s)}, lambda: self._inner.set(key, value, ttl_s))

    def set_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None:
        writes = {k: (v, ttl_s) for k, v in items.items()}
        self._write("set", writes, lambda: self._inner.set_many(items, ttl_s))

    def delete(self, key: str) -> None:
        self._write("delete", {key: (None, None)}, lambda: self._inner.delete(key))

    # -- reads ------------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        with self._lock:
            if key in self._pending:  # written here, not yet in the store
                return self._pending[key][0]
            return self._read("get", lambda: self._inner.get(key))

    def keys(self, prefix: str) -> list[str]:
        with self._lock:
            return self._read("keys", lambda: self._inner.keys(prefix))

    def _read(self, op: str, call: Callable[[], T]) -> T:
        if self._down and not self.available():
            raise CacheUnavailable("the cache is unreachable")
        try:
            return call()
        except Exception as exc:
            self._failed(op, exc)
            raise CacheUnavailable(f"the cache is unreachable: {exc!r}") from exc

    def close(self) -> None:
        self._inner.close()
