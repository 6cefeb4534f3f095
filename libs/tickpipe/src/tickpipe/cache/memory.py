"""In-memory cache with TTLs measured on an injected clock."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from tickpipe.clock import Clock, LiveClock


class MemoryCache:
    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or LiveClock()
        self._data: dict[str, tuple[bytes, int | None]] = {}
        self._lock = threading.Lock()

    def _expiry(self, ttl_s: float | None) -> int | None:
        return None if ttl_s is None else self._clock.now_ns() + int(ttl_s * 1e9)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            value, expires = item
            if expires is not None and self._clock.now_ns() >= expires:
                del self._data[key]
                return None
            return value

    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        with self._lock:
            self._data[key] = (value, self._expiry(ttl_s))

    def set_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None:
        expires = self._expiry(ttl_s)
        with self._lock:
            for k, v in items.items():
                self._data[k] = (v, expires)

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def keys(self, prefix: str) -> list[str]:
        with self._lock:
            candidates = [k for k in self._data if k.startswith(prefix)]
        return sorted(k for k in candidates if self.get(k) is not None)

    def available(self) -> bool:
        return True

    def close(self) -> None:
        return None
