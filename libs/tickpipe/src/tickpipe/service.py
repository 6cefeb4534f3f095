"""What a service is: a pure handler (or a source) plus the spec the runner needs.

A handler maps one input event to output events; it does no I/O of its own except through
the injected ports (cache), and never reads the wall clock: the runner passes `now_ns`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tickpipe.bus.base import Bus
from tickpipe.cache.base import Cache
from tickpipe.clock import Clock
from tickpipe.ids import EventIds
from tickpipe.messages import Event, Instrument
from tickpipe.settings import PlatformSettings


@dataclass(frozen=True, slots=True)
class Emit:
    """An output event for `topic`. The key defaults to the event's `exchange:symbol`."""

    topic: str
    event: Event
    key: str | None = None

    def record_key(self) -> str | None:
        if self.key is not None:
            return self.key
        return self.event.key if isinstance(self.event, Instrument) else None


class Rejected(Exception):
    """Raised by a handler for input it refuses: the runner dead-letters it with `reason`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class Handler(Protocol):
    def handle(self, event: Event, topic: str, now_ns: int) -> Sequence[Emit]: ...


@runtime_checkable
class BatchHandler(Protocol):
    """A handler that gains from seeing a consumed batch at once (e.g. one model run).

    Returns one outcome per item, in order: the item's emits, or the exception that makes
    the runner dead-letter that item alone. It must give the same results as calling
    `handle` on each item in turn.
    """

    def handle(self, event: Event, topic: str, now_ns: int) -> Sequence[Emit]: ...

    def handle_batch(
        self, items: Sequence[tuple[Event, str]], now_ns: int
    ) -> Sequence[Sequence[Emit] | Exception]: ...


@runtime_checkable
class Stateful(Protocol):
    """A handler whose in-memory state the runner snapshots (with the consumed offsets) and
    restores after a restart, replaying the records consumed since the snapshot.

    `snapshot` must capture everything `handle` depends on; `restore` on a fresh handler
    followed by the same inputs must give the same outputs as an uninterrupted run.
    """

    def snapshot(self) -> bytes: ...

    def restore(self, data: bytes) -> None: ...


class Source(Protocol):
    """An input from outside (files, exchanges, a generator) yielding events to publish."""

    def __iter__(self) -> Iterator[Emit]: ...


@dataclass(frozen=True)
class ServiceContext:
    """The ports a service is built with; the composition root fills them in."""

    platform: PlatformSettings
    bus: Bus
    cache: Cache
    clock: Clock
    ids: EventIds


@dataclass(frozen=True)
class ServiceSpec:
    """Registered under the `tickpipe.services` entry-point group by each service package.

    `inputs` empty means the service is a source. `transactional` services consume and
    produce inside Kafka transactions (exactly once). `latest_only` names input topics whose
    records the handler only keeps the latest of per key (e.g. quotes as a reference price):
    within a consumed batch the runner skips a record superseded by a later one of the same
    topic and key when no other record comes between, which changes no output.
    """

    name: str
    inputs: tuple[str, ...]
    build: Callable[[ServiceContext], Handler | Source]
    transactional: bool = False
    default_http_port: int | None = None
    latest_only: tuple[str, ...] = ()
