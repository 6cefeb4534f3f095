"""The cache port and its adapters (Redis, in-memory)."""

from tickpipe.cache.base import Cache, get_json
from tickpipe.cache.memory import MemoryCache

__all__ = ["Cache", "MemoryCache", "get_json"]
