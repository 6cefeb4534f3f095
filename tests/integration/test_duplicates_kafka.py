"""Duplicates absorbed where they arise, against real Kafka and Redis: ingest, feature,
inference and risk as processes; ingest, inference and feature each killed with SIGKILL
mid-stream (risk and execution are killed so in test_risk_recovery / test_execution_recovery).

- Ingest resumes: md.trades.v1 / md.quotes.v1 hold every record of the replayed slice once,
  numbered 0..n-1 without a gap or a repeat.
- Feature and inference are at least once: after a crash each redoes the records whose
  outputs it had published but not committed. The kill lands wherever it lands, so the test
  widens that window to all of it: with the service dead, its group's committed offsets are
  moved back to its Redis snapshot's, as if it had published everything since the snapshot
  and committed none of it. The restart redoes all of that: features.v1 and signals.v1 then
  hold repeats, and every repeat must carry its original's event id (the ids are derived,
  not drawn), so that orders.v1 holds no client order id twice.
- The ids equal those an in-process run of the same handlers derives from the same records.
"""

from __future__ import annotations

import functools
import itertools
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from confluent_kafka import Consumer, ConsumerGroupState, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.integration.recovery import (
    kill_with_replay_pending,
    published,
    service_env,
    snapshot_offsets,
    wait_snapshot,
    wait_until,
)
from tickpipe.bus.admin import create_topics
from tickpipe.bus.base import BusError
from tickpipe.bus.kafka import KafkaBus
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import TradeTick
from tickpipe.processes import ServiceProcesses
from tickpipe.runner import encode_emit
from tickpipe.service import Emit
from tickpipe.topics import FEATURES, ORDERS, QUOTES, SIGNALS, TRADES, TopicNames
from tickpipe_feature.handlers import FeatureHandler
from tickpipe_inference.handlers import InferenceHandler
from tickpipe_inference.onnx_model import OnnxModel
from tickpipe_ingest.domain.validation import Validator
from tickpipe_ingest.normalize import Normalizer
from tickpipe_ingest.replay import FileReplaySource

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample" / "binance-spot-btcusdt-20240808.gz"
MODEL_DIR = REPO / "models" / "baseline" / "v1"
RECORDS = 16_000  # ~2.5 minutes of the capture: ~150 bars, warm after 34
RATE = 1_200  # records/s: ingest still flows when feature dies
SERVICES = ["feature", "inference", "risk"]


def _expected() -> tuple[set[str], set[str], int, int]:
    """Vector and signal ids, trades and quotes, of an in-process run of the same handlers
    over the same slice (its own clock and id generators: derived ids do not depend on them).
    """
    clock = SimClock()
    ids = EventIds(clock, seed=1)
    source = FileReplaySource(
        SAMPLE, Normalizer(clock, ids, "file:expected", Validator()), clock, limit=RECORDS
    )
    feature = FeatureHandler(EventIds(clock, seed=2), MemoryCache(clock), 1_000_000_000)
    inference = InferenceHandler(
        OnnxModel(MODEL_DIR), EventIds(clock, seed=3), MemoryCache(clock), "baseline"
    )
    vectors: set[str] = set()
    signals: set[str] = set()
    counts: Counter[str] = Counter()
    for emit in source:
        counts[emit.topic] += 1
        for out in feature.handle(emit.event, emit.topic, clock.now_ns()):
            if out.topic != FEATURES:
                continue
            vectors.add(out.event.event_id)
            for s in inference.handle(out.event, FEATURES, clock.now_ns()):
                signals.add(s.event.event_id)
    return vectors, signals, counts[TRADES], counts[QUOTES]


def _group_empty(bootstrap: str, group: str) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    found = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return bool(found.state in (ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD))


def _rewind(bootstrap: str, names: TopicNames, cache: Any, namespace: str, service: str) -> int:
    """Commit the snapshot's offsets for the (empty) group: everything it processed since its
    snapshot becomes uncommitted. Returns how many records that is."""
    offsets = snapshot_offsets(cache, namespace, service)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{namespace}.{service}"})
    try:
        tps = [TopicPartition(names.physical(t), p, o) for (t, p), o in offsets.items()]
        committed = consumer.committed(tps, timeout=10)
        redone = sum(c.offset - tp.offset for c, tp in zip(committed, tps, strict=True))
        consumer.commit(offsets=tps, asynchronous=False)
    finally:
        consumer.close()
    return redone


def _drain(
    bootstrap: str, names: TopicNames, done: Any, timeout_s: float = 60
) -> dict[str, list[dict[str, Any]]]:
    """Every committed record of the topics, until `done(records)` and a quiet second."""
    topics = [TRADES, QUOTES, FEATURES, SIGNALS, ORDERS]
    link = KafkaBus(bootstrap, names).link(
        group=f"{uuid.uuid4().hex}.check", topics=topics, client_id="check"
    )
    got: dict[str, list[dict[str, Any]]] = {t: [] for t in topics}
    deadline = time.monotonic() + timeout_s
    quiet = 0
    try:
        while time.monotonic() < deadline and not (done(got) and quiet >= 2):
            records = link.poll(2_000, 0.5)
            quiet = 0 if records else quiet + 1
            for r in records:
                got[r.topic].append(orjson.loads(r.value))
            link.complete(())
    finally:
        link.close()
    return got


def _kill_and_resume_ingest(procs: ServiceProcesses) -> None:
    """Ingest dies a quarter of the way in, and resumes."""
    procs.start("ingest")
    wait_until(lambda: published(procs, "ingest") >= RECORDS // 4, lambda: procs.log("ingest"))
    procs.procs["ingest"].kill()
    procs.procs["ingest"].wait(10)
    procs.start("ingest")
    wait_until(lambda: published(procs, "ingest") >= 500, lambda: procs.log("ingest"))


def _kill_and_redo(
    procs: ServiceProcesses,
    cache: Any,
    bootstrap: str,
    names: TopicNames,
    namespace: str,
    services: list[str],
) -> None:
    """Each service dies while input flows (in the given order, upstream last: a dead
    upstream would starve the next one of input to commit), then redoes everything since
    its snapshot."""
    for service in services:
        wait_snapshot(procs, cache, namespace, service)
        kill_with_replay_pending(procs, service, cache, bootstrap, names, namespace)
    for service in services:
        group = f"{namespace}.{service}"
        wait_until(
            functools.partial(_group_empty, bootstrap, group),
            f"the killed member never left the {service} group",
            timeout_s=40,
        )
        assert _rewind(bootstrap, names, cache, namespace, service) > 0
    for service in services:
        procs.start(service)


def test_pipeline_when_ingest_inference_and_feature_are_killed_repeats_keep_their_ids(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    vectors, signals, n_trades, n_quotes = _expected()
    assert len(vectors) > 80 and len(signals) == len(vectors)
    namespace = f"dup{uuid.uuid4().hex[:8]}"
    names = TopicNames(namespace)
    create_topics(kafka_bootstrap, names)
    env = service_env(
        kafka_bootstrap,
        redis_url,
        namespace,
        TICKPIPE_INGEST_FILE=str(SAMPLE),
        TICKPIPE_INGEST_LIMIT=str(RECORDS),
        TICKPIPE_INGEST_RATE=str(RATE),
        # Judged on processing time, signals held up by the crash would be refused as stale:
        # off, so that repeats reach risk's order path and client order ids are compared.
        TICKPIPE_RISK_MAX_SIGNAL_AGE_S="0",
        TICKPIPE_RISK_MAX_REFERENCE_AGE_S="0",
    )
    procs = ServiceProcesses(env, tmp_path / "logs", base_port=None)
    cache = redis.Redis.from_url(redis_url)
    try:
        for name in SERVICES:
            procs.start(name)
        procs.wait_ready(SERVICES)
        _kill_and_resume_ingest(procs)
        _kill_and_redo(procs, cache, kafka_bootstrap, names, namespace, ["inference", "feature"])
        assert procs.procs["ingest"].wait(60) == 0, procs.log("ingest")[-3000:]
        got = _drain(
            kafka_bootstrap, names, lambda got: {r["event_id"] for r in got[SIGNALS]} >= signals
        )
        logs = {n: procs.log(n)[-1500:] for n in procs.procs}
    finally:
        codes = procs.stop()
        cache.close()
    assert all(code == 0 for code in codes.values()), (codes, logs)

    # Ingest: every record once, numbered on across its restart.
    trade_ids = Counter(r["trade_id"] for r in got[TRADES])
    assert len(got[TRADES]) == n_trades and max(trade_ids.values()) == 1
    assert len(got[QUOTES]) == n_quotes
    seqs = sorted(r["ingest_seq"] for r in got[TRADES] + got[QUOTES])
    assert seqs == list(range(n_trades + n_quotes))

    # Feature and inference: repeats there are, each under its original's id: one id per
    # bar, one per scored vector. (Not always the same values: a restart that catches up on
    # a backlog can outrun the arrival buffer, see tickpipe.arrival; a repeat is dropped
    # downstream by its id all the same, and the first copy stands.)
    what = {
        FEATURES: lambda r: (r["exchange"], r["symbol"], r["feature_set"], r["bar_start"]),
        SIGNALS: lambda r: (r["causation_id"], r["model_version"], r["strategy_id"]),
    }
    for topic, expected in ((FEATURES, vectors), (SIGNALS, signals)):
        ids: dict[str, set[tuple[Any, ...]]] = defaultdict(set)
        for r in got[topic]:
            ids[r["event_id"]].add(what[topic](r))
        assert set(ids) == expected, topic
        assert len(got[topic]) > len(ids), f"no repeats on {topic}: the redo tested nothing"
        assert all(len(v) == 1 for v in ids.values()), topic  # an id names one event
        assert len({next(iter(v)) for v in ids.values()}) == len(ids), topic  # and vice versa
    assert {r["causation_id"] for r in got[SIGNALS]} == vectors

    # Risk: a repeated signal is the same order, never a second one.
    coids = Counter(r["client_order_id"] for r in got[ORDERS])
    assert got[ORDERS], logs.get("risk")
    assert max(coids.values()) == 1
    assert {r["causation_id"] for r in got[ORDERS]} <= signals


def test_kafka_bus_tail_when_asked_returns_the_last_records_of_each_partition(
    kafka_bootstrap: str,
) -> None:
    names = TopicNames(f"tail{uuid.uuid4().hex[:8]}")
    create_topics(kafka_bootstrap, names)
    bus = KafkaBus(kafka_bootstrap, names)
    producer = bus.producer("test")
    symbols = [f"S{n}/USDT" for n in range(8)]
    for i, symbol in zip(range(40), itertools.cycle(symbols), strict=False):
        producer.send(encode_emit(Emit(TRADES, _trade(symbol, i)), ()))
    producer.flush()

    tail = bus.tail([TRADES, QUOTES], count=3, client_id="tail-test")
    everything = bus.tail([TRADES], count=1_000, client_id="tail-test")

    assert len(everything) == 40
    by_partition: dict[int, list[int]] = defaultdict(list)
    for r in everything:
        by_partition[r.partition].append(r.offset)
    assert sorted((r.partition, r.offset) for r in tail) == sorted(
        (p, o) for p, offsets in by_partition.items() for o in offsets[-3:]
    )
    assert all(r.topic == TRADES for r in tail)
    with pytest.raises(BusError, match="not found"):
        bus.tail(["no.such.topic"], count=1, client_id="tail-test")


def _trade(symbol: str, n: int) -> TradeTick:
    return TradeTick(
        event_id=f"01TAIL{n:04d}",
        ts_event=1_723_161_255_000_000_000 + n,
        ts_init=1_723_161_255_000_000_000 + n,
        exchange="binance",
        symbol=symbol,
        trade_id=str(n),
        price=100.0,
        size=1.0,
        side="buy",
        ingest_seq=n,
    )
