"""All services in one process on the in-memory bus, pumped deterministically.

The source publishes a chunk of events, then every stream runner is stepped until the bus
is quiet, in pipeline order. With a simulated clock and seeded ids, the same input gives
byte-identical output: this is the embedded demo and the backtest engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from typing import cast

from opentelemetry.trace import Tracer

from tickpipe.app import make_stream_runner
from tickpipe.bus.memory import MemoryBus
from tickpipe.cache.base import Cache
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.runner import SourceRunner, StreamRunner
from tickpipe.service import Emit, Handler, ServiceContext, ServiceSpec, Source
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
    def __init__(
        self,
        specs: Sequence[ServiceSpec],
        settings: PlatformSettings | None = None,
        seed: int = 0,
        tracer_factory: Callable[[str], Tracer] = make_tracer,
    ) -> None:
        ctx = simulated_context(seed, settings)
        self.settings = ctx.platform
        self.clock = cast(SimClock, ctx.clock)
        self.bus = cast(MemoryBus, ctx.bus)
        self.cache: Cache = ctx.cache
        self.ids = ctx.ids
        self._sources: list[tuple[Source, SourceRunner]] = []
        self.runners: list[StreamRunner] = []
        for spec in specs:
            tracer = tracer_factory(spec.name)
            built = spec.build(ctx)
            if spec.inputs:
                handler = cast(Handler, built)
                self.runners.append(make_stream_runner(spec, handler, ctx, tracer))
            else:
                source = cast(Source, built)
                producer = self.bus.producer(spec.name)
                runner = SourceRunner(
                    service=spec.name, source=source, producer=producer, tracer=tracer
                )
                self._sources.append((source, runner))

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
        for r in self.runners:
            r.close()
