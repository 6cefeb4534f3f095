"""Composition root: settings -> adapters -> service handler -> runner, for one process."""

from __future__ import annotations

import logging
import signal
import threading
from importlib.metadata import entry_points
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

from opentelemetry.trace import Tracer
from prometheus_client import Gauge

from tickpipe.bus.base import Bus, BusError
from tickpipe.cache.base import Cache
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import Clock, LiveClock
from tickpipe.gctune import tune_for_streaming
from tickpipe.ids import EventIds
from tickpipe.runner import SourceRunner, StreamRunner
from tickpipe.service import (
    Handler,
    KeyedState,
    ServiceContext,
    ServiceSpec,
    SettingsError,
    Source,
    Starts,
    Stops,
)
from tickpipe.settings import PlatformSettings
from tickpipe.state import SnapshotStore
from tickpipe.telemetry import metrics
from tickpipe.telemetry.http import HealthServer
from tickpipe.telemetry.logs import configure_logging
from tickpipe.telemetry.tracing import make_tracer, shutdown_tracing
from tickpipe.topics import TopicNames

if TYPE_CHECKING:
    from tickpipe.bus.kafka import KafkaBus

log = logging.getLogger(__name__)

GROUP = "tickpipe.services"
AnySpec = ServiceSpec[Any]


def service_names() -> list[str]:
    """Installed services' names, without importing them (for the CLI's choices)."""
    return sorted(ep.name for ep in entry_points(group=GROUP))


def load_specs() -> dict[str, AnySpec]:
    """Services installed in this environment, found through their entry points, in
    pipeline order."""
    specs: list[AnySpec] = []
    for ep in entry_points(group=GROUP):
        spec = ep.load()
        if not isinstance(spec, ServiceSpec):
            raise TypeError(f"entry point {ep.name} is not a ServiceSpec: {spec!r}")
        if spec.name != ep.name:
            raise TypeError(f"entry point {ep.name} holds the spec of {spec.name!r}")
        specs.append(spec)
    return {s.name: s for s in sorted(specs, key=lambda s: (s.order, s.name))}


def pipeline_order() -> tuple[str, ...]:
    """The installed services' names, sources first (each spec's `order`)."""
    return tuple(load_specs())


def make_bus(
    settings: PlatformSettings,
    stop: threading.Event | None = None,
    *,
    consumer_overrides: dict[str, Any] | None = None,
) -> Bus:
    """The bus; its blocking calls end (BusError) once `stop` is set."""
    if settings.bus == "kafka":
        return make_kafka_bus(settings, stop, consumer_overrides=consumer_overrides)
    from tickpipe.bus.memory import MemoryBus

    return MemoryBus()


def make_kafka_bus(
    settings: PlatformSettings,
    stop: threading.Event | None = None,
    *,
    consumer_overrides: dict[str, Any] | None = None,
    check: bool = True,
) -> KafkaBus:
    """The Kafka bus, whatever `settings.bus` says, its clients configured by
    `tickpipe.bus.security` (TICKPIPE_KAFKA_SECURITY_PROTOCOL, ...). Settings that cannot
    work, and brokers that refuse them, end the process at start with one line (SystemExit);
    `check` asks the brokers first (one metadata request)."""
    from tickpipe.bus.admin import check_kafka
    from tickpipe.bus.kafka import KafkaBus, KafkaTimeouts
    from tickpipe.bus.security import SecurityConfigError, kafka_client_config

    try:
        config = kafka_client_config(settings)
        if check:
            check_kafka(settings.kafka_bootstrap, config, stop=stop)
    except (SecurityConfigError, BusError) as exc:
        message = str(exc) if str(exc).startswith("kafka ") else f"kafka: {exc}"
        raise SystemExit(message) from None
    timeouts = KafkaTimeouts(
        delivery_s=settings.kafka_delivery_timeout_s,
        transaction_s=settings.kafka_transaction_timeout_s,
        init_s=settings.kafka_init_timeout_s,
    )
    names = TopicNames(settings.topic_namespace)
    return KafkaBus(
        settings.kafka_bootstrap,
        names,
        consumer_overrides,
        stop=stop,
        timeouts=timeouts,
        client_config=config,
    )


def make_cache(settings: PlatformSettings, clock: Clock, *, check: bool = True) -> Cache:
    """Redis when TICKPIPE_REDIS_URL is set (TLS and an ACL user per TICKPIPE_REDIS_*),
    else in memory. Settings that cannot work, and a Redis that refuses them, end the
    process at start with one line (SystemExit); an unreachable Redis does not."""
    if settings.redis_url:
        from tickpipe.bus.security import SecurityConfigError
        from tickpipe.cache.redis import RedisAccessError, RedisCache, RedisSecurity, check_redis
        from tickpipe.cache.resilient import ResilientCache

        try:
            redis = RedisCache(
                settings.redis_url,
                namespace=settings.topic_namespace or "tickpipe",
                security=RedisSecurity.of(settings),
            )
            if check:
                check_redis(redis)
        except SecurityConfigError as exc:
            raise SystemExit(f"redis: {exc}") from None
        except RedisAccessError as exc:
            raise SystemExit(str(exc)) from None
        return ResilientCache(redis, probe=redis.ping)
    return MemoryCache(clock)


def make_stream_runner(
    spec: AnySpec, handler: Handler, ctx: ServiceContext, tracer: Tracer
) -> StreamRunner:
    settings = ctx.platform
    if spec.transactional and isinstance(handler, KeyedState):
        # A transactional link commits nothing at revocation, so a partition's state could
        # not be handed over consistent with its offsets.
        raise ValueError(f"{spec.name}: keyed state needs a plain (not transactional) link")
    group = settings.group(spec.name)
    client_id = f"{spec.name}-{settings.instance_id}"
    link = ctx.bus.link(
        group=group,
        topics=spec.group_inputs,
        client_id=client_id,
        transactional_id=f"{group}-{settings.instance_id}" if spec.transactional else None,
    )
    broadcast = (
        ctx.bus.reader(spec.broadcast, from_ms=None, client_id=f"{client_id}-broadcast")
        if spec.broadcast
        else None
    )
    return StreamRunner(
        service=spec.name,
        group=group,
        handler=handler,
        link=link,
        clock=ctx.clock,
        ids=ctx.ids,
        tracer=tracer,
        batch_size=settings.batch_size,
        snapshots=SnapshotStore(ctx.cache, f"snapshot:{group}"),
        snapshot_format=spec.snapshots,
        linger_s=settings.batch_linger_ms / 1000,
        broadcast=broadcast,
    )


def run_service(
    name: str, settings: PlatformSettings | None = None, stop: threading.Event | None = None
) -> int:
    """Run one service until SIGTERM/SIGINT (or, for a source, until it is exhausted)."""
    settings = settings or PlatformSettings()
    configure_logging(name, settings.log_level)
    specs = load_specs()
    if name not in specs:
        raise SystemExit(f"unknown service {name!r}; installed: {', '.join(sorted(specs))}")
    spec = specs[name]
    try:
        service_settings = spec.settings_from_env()
    except SettingsError as exc:
        raise SystemExit(f"{name}: invalid settings: {exc}") from None
    stop = stop or threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signum})
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)

    clock = LiveClock()
    bus, cache = make_bus(settings, stop), make_cache(settings, clock)
    ctx = ServiceContext(settings, bus, cache, clock, EventIds(clock), stop)
    tracer = make_tracer(name)
    built = spec.build(ctx, service_settings)
    port = settings.http_port if settings.http_port is not None else spec.default_http_port
    ready = metrics.READY.labels(name)
    try:
        return _serve(spec, built, ctx, tracer, port, ready)
    except BusError as exc:
        # Crash-only: nothing of the failed batch was committed; a restart resumes there.
        if stop.is_set():
            log.info("stopped", extra={"detail": str(exc)})
            return 0
        log.error("bus failure: exiting to restart", extra={"error": str(exc)})
        return 1
    finally:
        shutdown_tracing()
        ctx.cache.close()


def _serve(
    spec: AnySpec,
    built: Handler | Source,
    ctx: ServiceContext,
    tracer: Tracer,
    port: int | None,
    ready: Gauge,
) -> int:
    name, settings, stop = spec.name, ctx.platform, ctx.stop
    if spec.is_source:
        return _run_source(name, cast(Source, built), ctx, tracer, port, ready, stop)
    runner = make_stream_runner(spec, cast(Handler, built), ctx, tracer)
    server = HealthServer(settings.http_host, port, runner.ready).start() if port else None
    try:
        runner.start(ctx)
        tune_for_streaming()  # start-up done: what exists now lives as long as the process
        log.info(
            "started",
            extra={
                "group": settings.group(name),
                "inputs": spec.inputs,
                "http_port": server.port if server else None,
            },
        )
        timeout = settings.poll_timeout_ms / 1000
        while not stop.is_set():
            runner.step(timeout)
            ready.set(1 if runner.ready() else 0)
            runner.report_lag()
    finally:
        runner.close()
        if server:
            server.stop()
    return 0


def _run_source(
    name: str,
    source: Source,
    ctx: ServiceContext,
    tracer: Tracer,
    port: int | None,
    ready: Gauge,
    stop: threading.Event,
) -> int:
    producer = ctx.bus.producer(f"{name}-{ctx.platform.instance_id}")
    server = HealthServer(ctx.platform.http_host, port, producer.ready).start() if port else None
    ready.set(1)
    try:
        if isinstance(source, Starts):
            source.on_start(ctx)
        runner = SourceRunner(service=name, source=source, producer=producer, tracer=tracer)
        n = runner.run(stop)
        log.info("source stopped" if stop.is_set() else "source exhausted", extra={"published": n})
        return 0
    finally:
        if isinstance(source, Stops):
            source.on_stop()
        producer.close()
        if server:
            server.stop()
