"""Redis cache adapter over redis-py. Keys live under a namespace prefix."""

from __future__ import annotations

from collections.abc import Mapping

import redis


class RedisCache:
    def __init__(self, url: str, namespace: str = "tickpipe") -> None:
        # redis-py connects lazily: no I/O here.
        # Short timeouts: an unreachable Redis must not stall a consume loop for long
        # (services wrap this in `ResilientCache`, which keeps writes while it is away).
        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = f"{namespace}:"

    def ping(self) -> bool:
        return bool(self._client.ping())

    def available(self) -> bool:
        try:
            return self.ping()
        except redis.RedisError:
            return False

    def get(self, key: str) -> bytes | None:
        value = self._client.get(self._prefix + key)
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        px = None if ttl_s is None else max(1, int(ttl_s * 1000))
        self._client.set(self._prefix + key, value, px=px)

    def set_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None:
        px = None if ttl_s is None else max(1, int(ttl_s * 1000))
        pipe = self._client.pipeline(transaction=False)
        for k, v in items.items():
            pipe.set(self._prefix + k, v, px=px)
        pipe.execute()

    def delete(self, key: str) -> None:
        self._client.delete(self._prefix + key)

    def keys(self, prefix: str) -> list[str]:
        n = len(self._prefix)
        found = self._client.scan_iter(match=f"{self._prefix}{prefix}*", count=500)
        return sorted(k.decode()[n:] for k in found)

    def close(self) -> None:
        self._client.close()
