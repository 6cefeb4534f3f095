"""Handler state snapshots in the cache, each with the input offsets it is consistent with.

Kafka stays the source of truth: a snapshot only shortens the replay after a restart. It is
written right after a commit, so its offsets never run ahead of what was published.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass

import orjson

from tickpipe.bus.base import Offsets
from tickpipe.cache.base import Cache, CacheUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    offsets: Offsets
    state: bytes
    version: int = 1  # of the state's format (`service.SnapshotFormat`); absent means 1


class SnapshotStore:
    def __init__(self, cache: Cache, key: str) -> None:
        self._cache = cache
        self._key = key

    def part(self, partition: int) -> SnapshotStore:
        """The store of one partition's share of a keyed state (`service.KeyedState`)."""
        return SnapshotStore(self._cache, f"{self._key}:p{partition}")

    def load(self) -> Snapshot | None:
        try:
            raw = self._cache.get(self._key)
        except CacheUnavailable:
            # No snapshot to be had: the service rebuilds from the topics instead.
            log.warning("snapshot unavailable: the cache is unreachable", extra={"key": self._key})
            return None
        if raw is None:
            return None
        data = orjson.loads(raw)
        offsets = {(t, int(p)): int(o) for t, p, o in data["offsets"]}
        return Snapshot(offsets, base64.b64decode(data["state"]), int(data.get("version", 1)))

    def save(self, snapshot: Snapshot) -> None:
        self._cache.set(
            self._key,
            orjson.dumps(
                {
                    "offsets": sorted([t, p, o] for (t, p), o in snapshot.offsets.items()),
                    "state": base64.b64encode(snapshot.state).decode(),
                    "version": snapshot.version,
                }
            ),
        )
