"""The bus port. Services see logical topic names; a bus maps them to physical ones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

Headers = tuple[tuple[str, bytes], ...]


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

    def flush(self, timeout_s: float = 30.0) -> None:
        """Block until everything sent so far is acknowledged; raise BusError on failure."""

    def close(self) -> None: ...


class Link(Protocol):
    """A consume-process-produce link: one consumer-group member plus its producer."""

    def poll(self, max_records: int, timeout_s: float) -> list[Record]: ...

    def complete(self, outputs: Sequence[OutRecord]) -> None:
        """Publish `outputs`, then commit the offsets of everything polled so far.

        Transactional links do both atomically (exactly once); others publish, wait for the
        acks, and only then commit (at least once).
        """

    def ready(self) -> bool:
        """True once the member holds its partition assignment."""

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

    def close(self) -> None: ...
