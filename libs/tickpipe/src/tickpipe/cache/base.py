"""The cache port: Redis in production, an in-memory twin for the embedded demo and tests.

Kafka is the source of truth; the cache holds fast state (latest features and signals,
positions, the kill-switch flag) that can always be rebuilt from the topics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class Cache(Protocol):
    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None: ...

    def set_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None:
        """Write several keys in one round trip."""

    def delete(self, key: str) -> None: ...

    def keys(self, prefix: str) -> list[str]: ...

    def close(self) -> None: ...


def get_json(cache: Cache, key: str) -> Any:
    import orjson

    raw = cache.get(key)
    return None if raw is None else orjson.loads(raw)
