"""Scaffolding shared by the kill -9 tests: one service process over the test brokers,
waits on its /metrics and its Redis snapshot, a kill that leaves its restart records to
replay, and a read_committed reader of its output."""

from __future__ import annotations

import functools
import signal
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

import orjson
from confluent_kafka import Consumer, TopicPartition

from tests.integration.outage import metric
from tests.polling import wait_until
from tickpipe.bus.base import Offsets
from tickpipe.bus.kafka import KafkaBus
from tickpipe.cache.base import Cache
from tickpipe.processes import ServiceProcesses
from tickpipe.runner import EVENT_TYPE
from tickpipe.state import SnapshotStore
from tickpipe.topics import TopicNames

__all__ = [
    "collect",
    "consumed",
    "kill_with_replay_pending",
    "replayed",
    "service_env",
    "wait_consumed",
    "wait_snapshot",
    "wait_until",
]

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


def published(procs: ServiceProcesses, name: str, **labels: str) -> float:
    """Records the process `name` has produced (of the topic/service in `labels`), from its
    /metrics; 0 before it serves."""
    try:
        text = procs.metrics(name)
    except OSError:  # not listening yet
        return 0.0
    return metric(text, "tickpipe_messages_out_total", **labels)


def replayed(procs: ServiceProcesses, service: str) -> float:
    """Records the service consumed again after its restart to rebuild its state, outputs
    dropped (`tickpipe_replayed_total`), from its own /metrics."""
    prefix = f'tickpipe_replayed_total{{service="{service}"}} '
    values = [
        float(line[len(prefix) :])
        for line in procs.metrics(service).splitlines()
        if line.startswith(prefix)
    ]
    assert values, f"{service} exports no tickpipe_replayed_total: a 0 here would mean nothing"
    return sum(values)


def wait_consumed(procs: ServiceProcesses, service: str, topic: str, n: int) -> None:
    """Topics are not ordered against each other: tests let one land before the next."""
    wait_until(lambda: consumed(procs, service, topic) >= n, lambda: procs.log(service)[-2000:])


def _snapshot_keys(cache: Any, namespace: str, service: str) -> list[str]:
    """The service's snapshot keys in the cache (without the namespace): one, or one per
    partition for keyed state (`snapshot:<group>:p<n>`, tickpipe.service.KeyedState)."""
    key = f"snapshot:{namespace}.{service}"
    found = [k.decode() for k in cache.keys(f"{namespace}:{key}:p*")]
    parts = sorted(k.removeprefix(f"{namespace}:") for k in found)
    return parts or ([key] if cache.get(f"{namespace}:{key}") is not None else [])


def wait_snapshot(procs: ServiceProcesses, cache: Any, namespace: str, service: str) -> None:
    """Until the service has saved a state snapshot, a kill would test nothing."""
    wait_until(
        lambda: bool(_snapshot_keys(cache, namespace, service)),
        lambda: procs.log(service)[-2000:],
    )


def snapshot_offsets(cache: Any, namespace: str, service: str) -> Offsets:
    """The offsets the service's state snapshot (or its partitions' together) is at."""
    offsets: Offsets = {}
    for key in _snapshot_keys(cache, namespace, service):
        snapshot = SnapshotStore(cast(Cache, cache), f"{namespace}:{key}").load()
        assert snapshot is not None, f"{service}: {key} vanished"
        offsets.update(snapshot.offsets)
    assert offsets, f"{service} has no snapshot"
    return offsets


def _committed(bootstrap: str, names: TopicNames, group: str, partitions: Iterable[Any]) -> Offsets:
    """The group's committed offsets, stable ones only: read_uncommitted does not wait out
    an open transaction's offsets (the process may be paused in one, or about to die)."""
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,  # reads its offsets; never subscribes, so never joins it
            "enable.auto.commit": False,
            "isolation.level": "read_uncommitted",
        }
    )
    try:
        tps = [TopicPartition(names.physical(t), p) for t, p in partitions]
        got = reader.committed(tps, timeout=10)
    finally:
        reader.close()
    return {(names.logical(tp.topic), tp.partition): tp.offset for tp in got}


def _advanced(bootstrap: str, names: TopicNames, group: str, than: Offsets) -> bool:
    now = _committed(bootstrap, names, group, than)
    return any(o > than.get(tp, -1) for tp, o in now.items())


def kill_with_replay_pending(
    procs: ServiceProcesses,
    service: str,
    cache: Any,
    bootstrap: str,
    names: TopicNames,
    namespace: str,
    timeout_s: float = 30,
) -> int:
    """SIGKILL the service at a moment when it has committed records after its last state
    snapshot; returns how many. Its restart must replay them: the state comes from the
    snapshot, and those records' outputs are already published. A kill right after a snapshot
    would leave nothing to replay, and a test of the replay would pass without one.

    The process is paused (SIGSTOP) while its committed offsets and its snapshot are compared,
    so that neither moves meanwhile; it is killed right there, mid-batch as it may be. If
    nothing is pending yet it runs on (SIGCONT) until it has committed more: the caller keeps
    input flowing."""
    proc = procs.procs[service]
    group = f"{namespace}.{service}"
    deadline = time.monotonic() + timeout_s
    while True:
        assert proc.poll() is None, f"{service} exited:\n{procs.log(service)[-2000:]}"
        proc.send_signal(signal.SIGSTOP)
        # The snapshot twice, around the offsets: a write sent just before the pause lands
        # meanwhile, and then the offsets are read again.
        snapshot: Offsets = {}
        before: Offsets | None = None
        while snapshot != before:
            before = snapshot_offsets(cache, namespace, service)
            committed = _committed(bootstrap, names, group, before)
            snapshot = snapshot_offsets(cache, namespace, service)
        pending = sum(max(0, committed.get(tp, -1) - o) for tp, o in snapshot.items())
        if pending > 0:
            proc.kill()  # SIGKILL: no flush, no final commit, no goodbye
            proc.wait(10)
            return pending
        proc.send_signal(signal.SIGCONT)
        wait_until(
            functools.partial(_advanced, bootstrap, names, group, committed),
            f"{service} committed nothing after its snapshot (is input still flowing?): "
            f"snapshot at {snapshot}, committed {committed}",
            max(0.0, deadline - time.monotonic()),
        )


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
            link.complete(())  # each batch completed before the next poll, as a service does
    finally:
        link.close()
    return got
