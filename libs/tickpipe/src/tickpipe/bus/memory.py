"""In-memory bus with Kafka's semantics that services rely on.

- Topics have partitions; a key always lands on the same partition (stable hash), so
  per-key order holds.
- Consumer groups: each group sees every record once; members of one group split the
  partitions; uncommitted records are redelivered to whoever owns the partition next.
- A member polls its partitions in global append order, so a single-threaded replay is
  deterministic and interleaves topics as they were produced.
- Records carry `timestamp_ms` from the clock the bus is given (0 without one), which is
  what a reader started from a time compares against.
"""

from __future__ import annotations

import dataclasses
import heapq
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from tickpipe.bus.base import Assigned, BusError, Offsets, OutRecord, Record, Revoked
from tickpipe.clock import Clock
from tickpipe.topics import BY_NAME


def partition_for(key: bytes | None, partitions: int, fallback: int) -> int:
    if key is None:
        return fallback % partitions
    return zlib.crc32(key) % partitions


@dataclass(slots=True)
class _Entry:
    seq: int
    record: Record


@dataclass
class _Group:
    members: list[MemoryLink] = field(default_factory=list)
    committed: dict[tuple[str, int], int] = field(default_factory=dict)


class MemoryBus:
    def __init__(self, default_partitions: int = 1, clock: Clock | None = None) -> None:
        self._default_partitions = default_partitions
        self._clock = clock
        self._logs: dict[str, list[list[_Entry]]] = {}
        self._groups: dict[str, _Group] = {}
        self._seq = 0
        self._lock = threading.RLock()

    # -- topics ---------------------------------------------------------------------------
    def _partitions(self, topic: str) -> list[list[_Entry]]:
        log = self._logs.get(topic)
        if log is None:
            spec = BY_NAME.get(topic)
            n = spec.partitions if spec is not None else self._default_partitions
            log = [[] for _ in range(n)]
            self._logs[topic] = log
        return log

    def append(self, rec: OutRecord) -> None:
        with self._lock:
            parts = self._partitions(rec.topic)
            p = partition_for(rec.key, len(parts), self._seq)
            offset = len(parts[p])
            self._seq += 1
            stamp = self._clock.now_ns() // 1_000_000 if self._clock is not None else 0
            stored = Record(rec.topic, p, offset, rec.key, rec.value, rec.headers, stamp)
            parts[p].append(_Entry(self._seq, stored))

    def records(self, topic: str) -> list[Record]:
        """Every record of a topic in append order (for summaries and tests)."""
        with self._lock:
            entries = [e for part in self._partitions(topic) for e in part]
        return [e.record for e in sorted(entries, key=lambda e: e.seq)]

    # -- groups ---------------------------------------------------------------------------
    def _rebalance(self, group: _Group) -> None:
        members = sorted(group.members, key=lambda m: m.client_id)
        owned: dict[str, list[tuple[str, int]]] = {m.client_id: [] for m in members}
        for topic in sorted({t for m in members for t in m.topics}):
            subscribers = [m for m in members if topic in m.topics]
            for p in range(len(self._partitions(topic))):
                owned[subscribers[p % len(subscribers)].client_id].append((topic, p))
        for m in members:
            m._assign(owned[m.client_id], group.committed)

    def join(self, member: MemoryLink) -> None:
        with self._lock:
            group = self._groups.setdefault(member.group, _Group())
            group.members.append(member)
            self._rebalance(group)

    def leave(self, member: MemoryLink) -> None:
        with self._lock:
            group = self._groups[member.group]
            group.members.remove(member)
            self._rebalance(group)

    def commit(self, group: str, offsets: dict[tuple[str, int], int]) -> None:
        with self._lock:
            self._groups[group].committed.update(offsets)

    def entries_from(self, topic: str, partition: int, offset: int, limit: int) -> list[_Entry]:
        with self._lock:
            return self._partitions(topic)[partition][offset : offset + limit]

    def start_offsets(self, topics: Sequence[str], from_ms: int | None) -> Offsets:
        """Per partition, the first offset stamped at or after `from_ms`, else the end."""
        starts: Offsets = {}
        with self._lock:
            for topic in topics:
                for p, entries in enumerate(self._partitions(topic)):
                    start = len(entries)
                    if from_ms is not None:
                        stamped = (e.record for e in entries if e.record.timestamp_ms >= from_ms)
                        start = next((r.offset for r in stamped), start)
                    starts[(topic, p)] = start
        return starts

    # -- Bus protocol -----------------------------------------------------------------------
    def producer(self, client_id: str) -> MemoryProducer:
        return MemoryProducer(self)

    def link(
        self,
        *,
        group: str,
        topics: Sequence[str],
        client_id: str,
        transactional_id: str | None = None,
    ) -> MemoryLink:
        link = MemoryLink(self, group, tuple(topics), client_id)
        self.join(link)
        return link

    def reader(self, topics: Sequence[str], *, from_ms: int | None, client_id: str) -> MemoryReader:
        return MemoryReader(self, self.start_offsets(topics, from_ms), client_id)

    def tail(self, topics: Sequence[str], *, count: int, client_id: str) -> list[Record]:
        """The last `count` records of each partition (see `Bus.tail`)."""
        out: list[Record] = []
        with self._lock:
            for topic in topics:
                for entries in self._partitions(topic):
                    out += (e.record for e in entries[max(0, len(entries) - count) :])
        return out

    def close(self) -> None:
        return None


class MemoryProducer:
    def __init__(self, bus: MemoryBus) -> None:
        self._bus = bus

    def ready(self) -> bool:
        return True

    def send(self, record: OutRecord) -> None:
        self._bus.append(record)

    def flush(self, timeout_s: float = 30.0) -> None:
        return None

    def close(self) -> None:
        return None


class MemoryLink:
    def __init__(self, bus: MemoryBus, group: str, topics: tuple[str, ...], client_id: str) -> None:
        self._bus = bus
        self.group = group
        self.topics = topics
        self.client_id = client_id
        self._positions: dict[tuple[str, int], int] = {}
        self._replay_until: Offsets = {}
        self._paused: set[tuple[str, int]] = set()
        self._assigned_cb: Assigned | None = None
        self._revoked_cb: Revoked | None = None
        self._closed = False

    def on_partitions(self, assigned: Assigned, revoked: Revoked) -> None:
        self._assigned_cb, self._revoked_cb = assigned, revoked
        if self._positions:  # joined (and was assigned) when created
            assigned(sorted(self._positions))

    def _assign(
        self, partitions: list[tuple[str, int]], committed: dict[tuple[str, int], int]
    ) -> None:
        before, now = set(self._positions), set(partitions)
        gone = sorted(before - now)
        if gone and self._revoked_cb is not None:
            # Every completed batch is committed at once here: nothing to commit first.
            self._revoked_cb(gone, {tp: committed[tp] for tp in gone if tp in committed})
        self._positions = {tp: committed.get(tp, 0) for tp in partitions}
        added = sorted(now - before)
        if added and self._assigned_cb is not None:
            self._assigned_cb(added)

    def poll(self, max_records: int, timeout_s: float = 0.0, linger_s: float = 0.0) -> list[Record]:
        if self._closed:
            raise BusError(f"{self.client_id}: poll after close")
        heads: list[tuple[int, int, tuple[str, int]]] = []
        buffers: dict[tuple[str, int], list[_Entry]] = {}
        for i, (tp, pos) in enumerate(sorted(self._positions.items())):
            if tp in self._paused:
                continue
            entries = self._bus.entries_from(tp[0], tp[1], pos, max_records)
            if entries:
                buffers[tp] = entries
                heads.append((entries[0].seq, i, tp))
        heapq.heapify(heads)
        out: list[Record] = []
        cursor = dict.fromkeys(buffers, 0)
        while heads and len(out) < max_records:
            _, i, tp = heapq.heappop(heads)
            entries = buffers[tp]
            record = entries[cursor[tp]].record
            if record.offset < self._replay_until.get(tp, 0):
                record = dataclasses.replace(record, replay=True)
            out.append(record)
            cursor[tp] += 1
            if cursor[tp] < len(entries):
                heapq.heappush(heads, (entries[cursor[tp]].seq, i, tp))
        for tp, n in cursor.items():
            self._positions[tp] += n
        return out

    def complete(self, outputs: Sequence[OutRecord]) -> Offsets | None:
        if self._closed:
            raise BusError(f"{self.client_id}: complete after close (its partitions moved on)")
        for rec in outputs:
            self._bus.append(rec)
        committed = dict(self._positions)
        self._bus.commit(self.group, committed)
        return committed

    def resume_from(self, offsets: Offsets) -> None:
        for tp, offset in offsets.items():
            if tp in self._positions:
                committed = self._positions[tp]
                self._positions[tp] = offset
                if committed > offset:
                    self._replay_until[tp] = committed

    def pause(self, partitions: Sequence[tuple[str, int]]) -> None:
        self._paused.update(tp for tp in partitions if tp in self._positions)

    def resume(self, partitions: Sequence[tuple[str, int]]) -> None:
        self._paused.difference_update(partitions)

    def ready(self) -> bool:
        return not self._closed

    def lag(self) -> dict[str, int]:
        lag: dict[str, int] = {}
        for (topic, p), pos in self._positions.items():
            end = len(self._bus.entries_from(topic, p, pos, 1 << 62))
            lag[topic] = lag.get(topic, 0) + end
        return lag

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._revoked_cb is not None and self._positions:
                self._revoked_cb(sorted(self._positions), dict(self._positions))
            self._positions = {}
            self._bus.leave(self)


class MemoryReader:
    """A group-less reader (see `Bus.reader`): positions of its own, nothing committed."""

    _WAIT_S = 0.001  # how often an empty poll with a timeout looks again

    def __init__(self, bus: MemoryBus, starts: Offsets, client_id: str) -> None:
        # A link that never joins a group polls from the positions it is given and nothing
        # rebalances them: exactly a reader's semantics, in global append order.
        self._link = MemoryLink(bus, "", tuple(sorted({t for t, _ in starts})), client_id)
        self._link._assign(list(starts), starts)
        self.client_id = client_id
        self._closed = False

    def poll(self, max_records: int, timeout_s: float = 0.0) -> list[Record]:
        if self._closed:
            raise BusError(f"{self.client_id}: poll after close")
        deadline = time.monotonic() + timeout_s
        while not (records := self._link.poll(max_records)) and time.monotonic() < deadline:
            time.sleep(min(self._WAIT_S, timeout_s))
        return records

    def at_end(self) -> bool:
        return not any(self._link.lag().values())

    def close(self) -> None:
        self._closed = True
