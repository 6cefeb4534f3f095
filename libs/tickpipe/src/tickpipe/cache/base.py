"""The cache port: Redis in production, an in-memory twin for the embedded demo and tests.

Kafka is the source of truth; the cache holds fast state (latest features and signals,
positions, the kill-switch flag) that can always be rebuilt from the topics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class CacheUnavailable(RuntimeError):
    """The cache's store cannot be reached: a read has no answer (not the same as absent)."""


class Cache(Protocol):
    def get(self, key: str) -> bytes | None:
        """The value, or None when absent; raises CacheUnavailable when it cannot tell."""

    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None: ...

    def set_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None:
        """Write several keys in one round trip."""

    def delete(self, key: str) -> None: ...

    def keys(self, prefix: str) -> list[str]: ...

    def available(self) -> bool:
        """False while the store cannot be reached (writes are then kept and retried)."""

    def close(self) -> None: ...


def get_json(cache: Cache, key: str) -> Any:
    import orjson

    raw = cache.get(key)
    return None if raw is None else orjson.loads(raw)
