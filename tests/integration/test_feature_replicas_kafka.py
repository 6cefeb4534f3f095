"""Two feature replicas under rebalances, against real Kafka and Redis: replica b joins while
market data flows (the partitions are split between the two), then replica a leaves (all go
to b). Each partition's state moves with it (`tickpipe.service.KeyedState`: saved at the
revocation, restored at the assignment), so features.v1 holds, by event id, exactly the
vectors one uninterrupted instance computes: none missing, none different."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.recovery import published, service_env, wait_until
from tickpipe.bus.admin import create_topics
from tickpipe.bus.kafka import KafkaBus
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.processes import ServiceProcesses
from tickpipe.topics import FEATURES, TopicNames
from tickpipe_feature.handlers import FeatureHandler
from tickpipe_ingest.domain.validation import Validator
from tickpipe_ingest.normalize import Normalizer
from tickpipe_ingest.replay import FileReplaySource

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SAMPLE = Path("data/sample/binance-spot-btcusdt-20240808.gz")
RECORDS = 16_000  # ~150 bars
RATE = 1_000  # records/s: the replicas come and go while it flows
SAME = {"ts_init", "causation_id", "event_id"}  # compared apart: ids by key, the rest by value


def _expected() -> dict[str, dict[str, Any]]:
    """The vectors of one in-process instance over the same records, by event id."""
    clock = SimClock()
    source = FileReplaySource(
        SAMPLE,
        Normalizer(clock, EventIds(clock, seed=1), "file:expected", Validator()),
        clock,
        limit=RECORDS,
    )
    feature = FeatureHandler(EventIds(clock, seed=2), MemoryCache(clock), 1_000_000_000)
    out = {}
    for emit in source:
        for v in feature.handle(emit.event, emit.topic, clock.now_ns()):
            if v.topic == FEATURES:
                out[v.event.event_id] = v.event.model_dump(mode="json", exclude=SAME)
    return out


def _read(bootstrap: str, names: TopicNames, want: set[str]) -> dict[str, list[dict[str, Any]]]:
    link = KafkaBus(bootstrap, names).link(
        group=f"{uuid.uuid4().hex}.check", topics=[FEATURES], client_id="check"
    )
    got: dict[str, list[dict[str, Any]]] = {}
    deadline, quiet = time.monotonic() + 60, 0
    try:
        while time.monotonic() < deadline and not (want <= got.keys() and quiet >= 2):
            records = link.poll(2_000, 0.5)
            quiet = 0 if records else quiet + 1
            for r in records:
                body = orjson.loads(r.value)
                got.setdefault(body["event_id"], []).append(
                    {k: v for k, v in body.items() if k not in SAME}
                )
            link.complete(())
    finally:
        link.close()
    return got


def test_feature_when_a_replica_joins_and_another_leaves_vectors_equal_one_instance(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    expected = _expected()
    assert len(expected) > 100
    namespace = f"rep{uuid.uuid4().hex[:8]}"
    names = TopicNames(namespace)
    create_topics(kafka_bootstrap, names)
    env = service_env(
        kafka_bootstrap,
        redis_url,
        namespace,
        TICKPIPE_INGEST_FILE=str(SAMPLE),
        TICKPIPE_INGEST_LIMIT=str(RECORDS),
        TICKPIPE_INGEST_RATE=str(RATE),
    )
    procs = ServiceProcesses(env, tmp_path / "logs", base_port=None)
    try:
        procs.start("feature-a", {"TICKPIPE_INSTANCE_ID": "a"}, service="feature")
        procs.wait_ready(["feature-a"])
        procs.start("ingest")
        wait_until(
            lambda: published(procs, "feature-a", topic=FEATURES) >= 20,
            lambda: procs.log("feature-a"),
        )
        procs.start("feature-b", {"TICKPIPE_INSTANCE_ID": "b"}, service="feature")
        procs.wait_ready(["feature-b"])
        wait_until(
            lambda: (
                published(procs, "feature-a", topic=FEATURES)
                + published(procs, "feature-b", topic=FEATURES)
                >= 50
            ),
            lambda: procs.log("feature-b"),
        )
        a = procs.procs.pop("feature-a")
        a.terminate()  # a clean leave: its partitions go to b with their state
        assert a.wait(20) == 0, procs.log("feature-a")[-2000:]
        assert procs.procs["ingest"].wait(60) == 0, procs.log("ingest")[-2000:]
        got = _read(kafka_bootstrap, names, set(expected))
        logs = {n: procs.log(n)[-1500:] for n in ("feature-a", "feature-b")}
    finally:
        codes = procs.stop()
    assert all(code == 0 for code in codes.values()), codes
    assert '"msg":"state restored"' in procs.log("feature-b"), logs  # a hand-over happened
    assert set(got) == set(expected), logs
    different = {i: v for i, v in got.items() if any(x != expected[i] for x in v)}
    assert not different, next(iter(different.items()))
