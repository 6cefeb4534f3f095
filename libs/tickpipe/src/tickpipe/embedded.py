"""All services in one process on the in-memory bus, pumped deterministically.

The source publishes a chunk of events, then every stream runner is stepped until the bus
is quiet, in pipeline order. With a simulated clock and seeded ids, the same input gives
byte-identical output: this is the embedded demo and the backtest engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any, cast

from opentelemetry.trace import Tracer
from pydantic_settings import BaseSettings

from tickpipe.app import make_stream_runner
from tickpipe.bus.memory import MemoryBus
from tickpipe.cache.base import Cache
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.gctune import streaming_gc
from tickpipe.ids import EventIds
from tickpipe.runner import SourceRunner, StreamRunner
from tickpipe.service import Emit, Handler, ServiceContext, ServiceSpec, Source, Starts, Stops
from tickpipe.settings import PlatformSettings
from tickpipe.telemetry.tracing import make_tracer


def simulated_context(seed: int = 0, settings: PlatformSettings | None = None) -> ServiceContext:
    """Ports for services in one process: in-memory bus and cache, a simulated clock that
    the data moves, ids seeded from `seed` (so runs repeat byte for byte)."""
    clock = SimClock()
    return ServiceContext(
        settings or PlatformSettings(bus="memory", redis_url=None),
        MemoryBus(),
        MemoryCache(clock),
        clock,
        EventIds(clock, seed=seed),
    )


class EmbeddedPipeline:
    """`specs` in pipeline order. A service's settings come from `service_settings` (a
    backtest's, built from its overlay) or else from the environment, as in a process."""

    def __init__(
        self,
        specs: Sequence[ServiceSpec[Any]],
        settings: PlatformSettings | None = None,
        seed: int = 0,
        tracer_factory: Callable[[str], Tracer] = make_tracer,
        service_settings: Mapping[str, BaseSettings] | None = None,
    ) -> None:
        ctx = simulated_context(seed, settings)
        self.ctx = ctx
        self.settings = ctx.platform
        self.clock = cast(SimClock, ctx.clock)
        self.bus = cast(MemoryBus, ctx.bus)
        self.cache: Cache = ctx.cache
        self.ids = ctx.ids
        self._sources: list[tuple[Source, SourceRunner]] = []
        self.runners: list[StreamRunner] = []
        self.handlers: dict[str, Handler] = {}  # by service, for inspection
        given = service_settings or {}
        for spec in specs:
            tracer = tracer_factory(spec.name)
            built = spec.make(ctx, given.get(spec.name))
            if not spec.is_source:
                self.handlers[spec.name] = cast(Handler, built)
                stream = make_stream_runner(spec, cast(Handler, built), ctx, tracer)
                stream.start(ctx)
                self.runners.append(stream)
            else:
                source = cast(Source, built)
                if isinstance(source, Starts):
                    source.on_start(ctx)
                producer = self.bus.producer(spec.name)
                publisher = SourceRunner(
                    service=spec.name, source=source, producer=producer, tracer=tracer
                )
                self._sources.append((source, publisher))

    def pump(self) -> int:
        """Step every runner until none consumes anything; returns records processed."""
        total = 0
        while True:
            n = sum(r.step(0.0) for r in self.runners)
            if n == 0:
                return total
            total += n

    def run(self, chunk: int = 64, on_progress: Callable[[int], None] | None = None) -> int:
        """Drain every source through the pipeline; returns source events published."""
        published = 0
        with streaming_gc():
            for source, runner in self._sources:
                events: Iterator[Emit] = iter(source)
                while batch := list(islice(events, chunk)):
                    published += runner.publish(batch)
                    self.pump()
                    if on_progress:
                        on_progress(len(batch))
            self.pump()
        return published

    def close(self) -> None:
        for source, _ in self._sources:
            if isinstance(source, Stops):
                source.on_stop()
        for r in self.runners:
            r.close()
