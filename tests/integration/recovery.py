"""Scaffolding shared by the kill -9 tests: one service process over the test brokers,
waits on its /metrics and its Redis snapshot, and a read_committed reader of its output."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from tickpipe.bus.kafka import KafkaBus
from tickpipe.processes import ServiceProcesses
from tickpipe.runner import EVENT_TYPE
from tickpipe.topics import TopicNames

T = TypeVar("T")


def service_env(bootstrap: str, redis_url: str, namespace: str, **extra: str) -> dict[str, str]:
    return {
        "TICKPIPE_BUS": "kafka",
        "TICKPIPE_KAFKA_BOOTSTRAP": bootstrap,
        "TICKPIPE_REDIS_URL": redis_url,
        "TICKPIPE_TOPIC_NAMESPACE": namespace,
        **extra,
    }


def consumed(procs: ServiceProcesses, service: str, topic: str) -> float:
    """Records of `topic` the service has consumed, from its own /metrics."""
    prefix = f'tickpipe_messages_in_total{{service="{service}",topic="{topic}"}} '
    return sum(
        float(line[len(prefix) :])
        for line in procs.metrics(service).splitlines()
        if line.startswith(prefix)
    )


def wait_until(
    predicate: Callable[[], bool], why: Callable[[], str], timeout_s: float = 30
) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, why()
        time.sleep(0.1)


def wait_consumed(procs: ServiceProcesses, service: str, topic: str, n: int) -> None:
    """Topics are not ordered against each other: tests let one land before the next."""
    wait_until(lambda: consumed(procs, service, topic) >= n, lambda: procs.log(service)[-2000:])


def wait_snapshot(procs: ServiceProcesses, cache: Any, namespace: str, service: str) -> None:
    """Until the service has saved a state snapshot, a kill would test nothing."""
    key = f"{namespace}:snapshot:{namespace}.{service}"
    wait_until(lambda: cache.get(key) is not None, lambda: procs.log(service)[-2000:])


def collect(
    bootstrap: str,
    names: TopicNames,
    topic: str,
    event_type: bytes,
    row: Callable[[dict[str, Any]], T],
    want: int,
    timeout_s: float = 90,
) -> list[T]:
    """Committed records of `topic` as rows, until `want` arrived and the topic went quiet."""
    link = KafkaBus(bootstrap, names).link(
        group=f"{uuid.uuid4().hex}.check", topics=[topic], client_id="check"
    )
    got: list[T] = []
    deadline = time.monotonic() + timeout_s
    quiet = 0
    try:
        while time.monotonic() < deadline and (len(got) < want or quiet < 4):
            records = link.poll(500, 0.5)
            quiet = 0 if records else quiet + 1
            for r in records:
                assert r.header(EVENT_TYPE) == event_type
                got.append(row(orjson.loads(r.value)))
    finally:
        link.close()
    return got
