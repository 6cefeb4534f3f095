"""The bus port. Services see logical topic names; a bus maps them to physical ones."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

Headers = tuple[tuple[str, bytes], ...]
# Next offset to consume per (logical topic, partition).
Offsets = dict[tuple[str, int], int]
Assigned = Callable[[Sequence[tuple[str, int]]], None]
Revoked = Callable[[Sequence[tuple[str, int]], Offsets], None]


@dataclass(frozen=True, slots=True)
class Record:
    """A consumed record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers = ()
    timestamp_ms: int = 0
    # Consumed again to rebuild state after a restart; its outputs were already published.
    replay: bool = False

    def header(self, name: str) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


@dataclass(frozen=True, slots=True)
class OutRecord:
    """A record to produce."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = field(default=())


class BusError(RuntimeError):
    """A bus failure the runner cannot recover from in-process (crash-only: restart and rebuild)."""


class Producer(Protocol):
    def send(self, record: OutRecord) -> None: ...

    def ready(self) -> bool:
        """False while no broker can be reached (what a source's `/readyz` reports)."""

    def flush(self, timeout_s: float = 30.0) -> None:
        """Block until everything sent so far is acknowledged; raise BusError on failure."""

    def close(self) -> None: ...


class Link(Protocol):
    """A consume-process-produce link: one consumer-group member plus its producer."""

    def poll(self, max_records: int, timeout_s: float, linger_s: float = 0.0) -> list[Record]:
        """Wait up to `timeout_s` for a record, then up to `linger_s` more to fill the batch."""

    def complete(self, outputs: Sequence[OutRecord]) -> Offsets | None:
        """Publish `outputs`, then commit the offsets of everything polled so far.

        Transactional links do both atomically (exactly once); others publish, wait for the
        acks, and only then commit (at least once). A link may defer committing a batch
        without outputs; it returns the offsets it committed, or None when it deferred.
        Called with no outputs when idle, so deferred commits still happen.
        """

    def resume_from(self, offsets: Offsets) -> None:
        """Start these partitions at `offsets` (a state snapshot's), before the first poll.

        Records between there and the group's committed offsets come back with
        `replay=True`: they rebuild state, their outputs are not published again.
        """

    def on_partitions(self, assigned: Assigned, revoked: Revoked) -> None:
        """Be told of assignment changes, from within `poll` (or a rebalance): `assigned`
        with the partitions now assigned, before any is fetched (so `resume_from` may be
        called for them); `revoked` with the partitions being taken away and the offsets of
        them committed last, completed work committed first, before another member can
        have them."""

    def pause(self, partitions: Sequence[tuple[str, int]]) -> None:
        """Stop fetching these (logical topic, partition)s until `resume`: records already
        polled stay polled, nothing is skipped. A partition not assigned is ignored."""

    def resume(self, partitions: Sequence[tuple[str, int]]) -> None:
        """Fetch these again from where consumption stopped."""

    def ready(self) -> bool:
        """True once the member holds its partition assignment."""

    def lag(self) -> dict[str, int]:
        """Records behind the end of each input topic, over this member's partitions."""

    def close(self) -> None: ...


class Reader(Protocol):
    """A group-less reader: it assigns itself every partition of its topics, joins no group
    and commits nothing, so reading history moves nobody's offsets. Order holds within a
    partition (per key); across partitions records interleave as they come."""

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        """Wait up to `timeout_s` for a record; return up to `max_records` records."""

    def at_end(self) -> bool:
        """True once every partition has been read to its end as of the last poll (the
        last committed record: what a rebuild from history must read)."""

    def close(self) -> None: ...


class Bus(Protocol):
    def producer(self, client_id: str) -> Producer: ...

    def link(
        self,
        *,
        group: str,
        topics: Sequence[str],
        client_id: str,
        transactional_id: str | None = None,
    ) -> Link: ...

    def reader(self, topics: Sequence[str], *, from_ms: int | None, client_id: str) -> Reader:
        """A Reader that starts each partition at its first record stamped at or after
        `from_ms` (epoch milliseconds), or at the end when `from_ms` is None (from now on).

        Raises BusError when a topic does not exist or a start offset cannot be looked up:
        starting at the end instead would silently skip the history asked for.
        """

    def tail(self, topics: Sequence[str], *, count: int, client_id: str) -> list[Record]:
        """The last `count` committed records of each partition of `topics` (fewer where a
        partition holds fewer), oldest first within a partition: where a producer left off
        (ingest resuming). Read without a group, committing nothing.

        Raises BusError when a topic does not exist or a partition cannot be read to its end.
        """

    def close(self) -> None: ...
