"""What a service is: a pure handler (or a source) plus the spec that describes it.

A handler maps one input event to output events; it does no I/O of its own except through
the injected ports (cache), and never reads the wall clock: the runner passes `now_ns`.
Start-up work (reading state back, reconciling with a venue) belongs in `on_start`, which
the runner calls once before the first record, never disguised as a first event.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, cast, runtime_checkable

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

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
    followed by the same inputs must give the same outputs as an uninterrupted run. The
    snapshot's format has a version (`ServiceSpec.snapshots`): change the format, bump it.
    """

    def snapshot(self) -> bytes: ...

    def restore(self, data: bytes) -> None: ...


@runtime_checkable
class KeyedState(Protocol):
    """A `Stateful` handler whose state is per record key (an instrument), so that it can
    follow its partition from one consumer to another (the Kafka Streams model): the runner
    keeps a snapshot per partition number (`snapshot:<group>:p<n>`, the keys it has seen on
    that partition of every input, which are co-partitioned), restores it when the partition
    is assigned, and saves and drops it when the partition is revoked. So replicas of the
    service, and rebalances among them, produce what one instance would.

    `restore_keys` adds a snapshot's keys to the state and returns them; `drop_keys` forgets
    keys. Plain (not transactional) links only."""

    def snapshot_keys(self, keys: Collection[str]) -> bytes: ...

    def restore_keys(self, data: bytes) -> Collection[str]: ...

    def drop_keys(self, keys: Collection[str]) -> None: ...


@runtime_checkable
class Starts(Protocol):
    """A handler or source with start-up work: called once, after its state is restored
    from a snapshot and before the first record. Long work must watch `ctx.stop`.

    Returns events to publish before anything is consumed (e.g. what reconciliation with a
    venue found); a source returns none.
    """

    def on_start(self, ctx: ServiceContext) -> Sequence[Emit]: ...


@runtime_checkable
class Paced(Protocol):
    """A handler that holds input back until other input comes (an arrival buffer) and can
    say which streams run ahead of the ones it waits for: `(topic, record key)` pairs. The
    runner pauses the partitions carrying them until they are no longer named, so a
    consumer catching up on a backlog reads its topics in step (flow control)."""

    def running_ahead(self) -> Collection[tuple[str, str]]: ...


@runtime_checkable
class Stops(Protocol):
    """A handler or source with shutdown work, called once when the service stops."""

    def on_stop(self) -> None: ...


class Source(Protocol):
    """An input from outside (files, exchanges, a generator) yielding events to publish."""

    def __iter__(self) -> Iterator[Emit]: ...


@dataclass(frozen=True)
class ServiceContext:
    """The ports a service is built with; the composition root fills them in. `stop` is set
    on SIGTERM/SIGINT: sources and long start-up work end when it is."""

    platform: PlatformSettings
    bus: Bus
    cache: Cache
    clock: Clock
    ids: EventIds
    stop: threading.Event = field(default_factory=threading.Event)


class SnapshotVersionError(RuntimeError):
    """A stored snapshot this build cannot read: newer than it, or older with no migration."""


Migration = Callable[[bytes], bytes]


@dataclass(frozen=True)
class SnapshotFormat:
    """The version of a service's snapshot and how to bring older snapshots up to it.

    `migrations[v]` turns a version-`v` snapshot into a version `v + 1` one. A snapshot
    written before versions existed counts as version 1.
    """

    version: int = 1
    migrations: Mapping[int, Migration] = field(default_factory=dict)

    def upgrade(self, service: str, version: int, data: bytes) -> bytes:
        if version > self.version:
            raise SnapshotVersionError(
                f"{service}: the stored snapshot has version {version}, newer than this "
                f"build's {self.version}; run the newer build, or delete the snapshot to "
                "rebuild the state from the topics"
            )
        for v in range(version, self.version):
            step = self.migrations.get(v)
            if step is None:
                raise SnapshotVersionError(
                    f"{service}: the stored snapshot has version {version} and this build "
                    f"reads version {self.version}, with no migration from version {v}; "
                    "delete the snapshot to rebuild the state from the topics"
                )
            data = step(data)
        return data


SettingsT = TypeVar("SettingsT", bound=BaseSettings)
Overlay = Mapping[str, Any]


class SettingsError(ValueError):
    """Settings given for a service that it does not have, or with invalid values."""


@dataclass(frozen=True)
class ServiceSpec(Generic[SettingsT]):
    """The one description of a service, registered under the `tickpipe.services` entry
    point group by each service package: everything the CLI, the runners, the embedded
    pipeline, the backtests and the deploy tests need to know about it.

    - `order`: its place in the pipeline (sources first); ties break by name.
    - `inputs` empty means the service is a source; `outputs` are the topics it produces.
    - `settings`: its pydantic-settings class (frozen; `TICKPIPE_<NAME>_*`), holding every
      default. `build(ctx, settings)` gets it built once by the composition root.
    - `transactional` services consume and produce inside Kafka transactions.
    - `broadcast`: inputs every replica reads in full, outside the consumer group (e.g.
      `control.v1` for a service that scales out: a model reload must reach every replica).
      Read from the moment the service starts and never committed: what came before is the
      handler's `on_start` to read from the topic's history.
    - `snapshots`: the version of a `Stateful` handler's snapshot and its migrations.
    - Lifecycle: what `build` returns may implement `Starts.on_start` and `Stops.on_stop`.
    """

    name: str
    order: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    settings: type[SettingsT]
    build: Callable[[ServiceContext, SettingsT], Handler | Source]
    transactional: bool = False
    default_http_port: int | None = None
    snapshots: SnapshotFormat = field(default_factory=SnapshotFormat)
    broadcast: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not set(self.broadcast) <= set(self.inputs):
            raise ValueError(f"{self.name}: broadcast topics must be inputs too")
        if self.broadcast and self.transactional:
            # Their records are never committed, so they cannot be part of exactly once.
            raise ValueError(f"{self.name}: a transactional service reads no broadcast input")

    @property
    def is_source(self) -> bool:
        return not self.inputs

    @property
    def group_inputs(self) -> tuple[str, ...]:
        """The inputs read in the consumer group (shared among replicas)."""
        return tuple(t for t in self.inputs if t not in self.broadcast)

    def settings_from_env(self) -> SettingsT:
        """A process's settings: `TICKPIPE_<NAME>_*` variables over the defaults."""
        try:
            return self.settings()
        except ValidationError as exc:
            raise SettingsError(f"{self.name}: {_errors(exc)}") from None

    def settings_from(self, overlay: Overlay | None = None) -> SettingsT:
        """Settings from the defaults and `overlay` (setting name -> value) alone: the
        environment is not read, so a backtest means the same on every machine."""
        overlay = dict(overlay or {})
        unknown = sorted(set(overlay) - set(self.settings.model_fields))
        if unknown:
            known = ", ".join(sorted(self.settings.model_fields))
            raise SettingsError(f"[{self.name}]: unknown setting(s) {unknown}; known: {known}")
        try:
            validated = _without_environment(self.settings)(**overlay)
        except ValidationError as exc:
            raise SettingsError(f"[{self.name}]: {_errors(exc)}") from None
        # The service's own class, holding the values validated above.
        return cast(
            SettingsT,
            self.settings.model_construct(validated.model_fields_set, **dict(validated)),
        )

    def make(self, ctx: ServiceContext, settings: SettingsT | None = None) -> Handler | Source:
        """Builds the service; with no settings, from the environment (a process)."""
        return self.build(ctx, self.settings_from_env() if settings is None else settings)


@functools.cache
def _without_environment(cls: type[SettingsT]) -> type[SettingsT]:
    """`cls` reading its init arguments alone: no variables, .env or secret files."""

    class Overlay(cls):  # type: ignore[valid-type,misc]
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings,)

    Overlay.__name__ = cls.__name__
    return cast(type[SettingsT], Overlay)


def _errors(exc: ValidationError) -> str:
    # Values are not echoed back: a setting may hold something secret.
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(settings)'}: {e['msg']}" for e in exc.errors()
    )
