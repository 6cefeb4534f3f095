"""Composition root for `tickpipe api`: settings -> Kafka, cache, probes -> the FastAPI app."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from tickpipe.app import make_cache, make_kafka_bus
from tickpipe.clock import LiveClock
from tickpipe.ids import EventIds
from tickpipe.settings import PlatformSettings
from tickpipe.telemetry.logs import configure_logging
from tickpipe_api.api import create_app
from tickpipe_api.auth import TokenVerifier
from tickpipe_api.consumer import CONSUMER_OVERRIDES, TOPICS, FeedConsumer
from tickpipe_api.control import BusControlPublisher
from tickpipe_api.health import HttpHealthProbe
from tickpipe_api.live import LiveFeed
from tickpipe_api.ports import ApiPorts
from tickpipe_api.ratelimit import RateLimiter
from tickpipe_api.settings import ApiSettings

log = logging.getLogger(__name__)


@contextmanager
def production_app(platform: PlatformSettings, settings: ApiSettings) -> Iterator[FastAPI]:
    """The API over Kafka and the configured cache; closes its clients on exit."""
    clock = LiveClock()
    # One group per instance: every API replica sees every fill, not a share of them.
    group = platform.group(f"api-{platform.instance_id}")
    feed = LiveFeed(settings.fills_buffer)
    # Kafka always (whatever TICKPIPE_BUS says), over TICKPIPE_KAFKA_SECURITY_PROTOCOL & co.;
    # settings the brokers refuse end the process at start, in one line.
    feed_bus = make_kafka_bus(platform, consumer_overrides=CONSUMER_OVERRIDES)
    consumer = FeedConsumer(
        lambda: feed_bus.link(group=group, topics=TOPICS, client_id=f"api-{platform.instance_id}"),
        feed,
    ).start()
    publisher = BusControlPublisher(
        make_kafka_bus(platform, check=False).producer(f"api-{platform.instance_id}")
    )
    cache = make_cache(platform, clock)
    health = HttpHealthProbe(settings.health_targets)
    ports = ApiPorts(
        cache=cache,
        control=publisher,
        feed=feed,
        health=health,
        verifier=TokenVerifier(settings.key_ring(), settings.jwt_issuer, settings.jwt_audience),
        read_limiter=RateLimiter(settings.read_rate_per_s, settings.read_burst, time.monotonic),
        control_limiter=RateLimiter(
            settings.control_rate_per_s, settings.control_burst, time.monotonic
        ),
        clock=clock,
        ids=EventIds(clock),
        account=settings.account,
        feed_ready=consumer.ready,
    )
    try:
        yield create_app(ports)
    finally:
        consumer.stop()
        publisher.close()
        health.close()
        cache.close()


def serve(platform: PlatformSettings | None = None, settings: ApiSettings | None = None) -> int:
    platform = platform or PlatformSettings()
    settings = settings or ApiSettings()
    configure_logging("api", platform.log_level)
    try:
        settings.key_ring()
    except ValueError as exc:  # one line naming the setting, never the key
        raise SystemExit(f"api: {exc}") from None
    with production_app(platform, settings) as app:
        log.info("started", extra={"host": settings.host, "port": settings.port})
        # access_log off: uvicorn's line carries the query string (stream tokens); ours does not.
        uvicorn.run(app, host=settings.host, port=settings.port, access_log=False, log_config=None)
    return 0
