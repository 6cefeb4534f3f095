"""Poison records on every consumed topic, over real Kafka and Redis, while traffic flows.

The five services run as processes on the sample capture. A raw (non-transactional)
confluent-kafka producer writes every kind of bad record into each topic a service consumes:
no value (a tombstone), a missing, non-UTF-8 or unknown `event-type` header, an event type
the topic does not carry, bytes that are not JSON, JSON that is not the event, a value near
the broker's 1 MiB record limit with a non-UTF-8 key. Good records go around them, among
them market data whose origin-time header is not a number (processed; the header is
counted and ignored).

Then, once every consumer has caught up: each poison record is on dlq.v1 (read_committed)
once per consuming service, with its reason; no service has exited; and per consumed topic
and service, the records on the topic = records the service consumed (/metrics) = records
its handler processed (/metrics) + records dead-lettered before the handler (dlq.v1), and
its dead-letter counter agrees with dlq.v1 reason by reason.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Message
from confluent_kafka import Producer as RawProducer

from tests.integration.recovery import service_env, wait_until
from tests.unit import factories as f
from tickpipe.app import load_specs
from tickpipe.bus.admin import create_topics
from tickpipe.bus.kafka import KafkaBus
from tickpipe.messages import (
    TOPIC_EVENT_TYPES,
    ControlAction,
    DeadLetter,
    Event,
    FeedStatus,
    decode,
    encode,
)
from tickpipe.messages.deadletter import PAYLOAD_LIMIT
from tickpipe.processes import ServiceProcesses
from tickpipe.runner import EVENT_TYPE, ORIGIN_TS
from tickpipe.topics import CONTROL, DLQ, QUALITY, QUOTES, TRADES, TopicNames

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SAMPLE = Path("data/sample/binance-spot-btcusdt-20240808.gz")
RECORDS = 12_000
CONSUMERS = ["feature", "inference", "risk", "execution"]
KEY = f.KEY.encode()
# Just under the broker's default record limit (message.max.bytes 1048588), with room for
# the key, the headers and the batch framing.
NEAR_LIMIT = 1_040_000
# Dead-lettered by the runner before any handler sees the record.
DECODE_REASONS = {
    "empty_value",
    "missing_event_type",
    "invalid_event_type",
    "unknown_event_type",
    "unexpected_event_type",
    "invalid_payload",
}


@dataclass(frozen=True)
class Injected:
    topic: str
    name: str
    reason: str | None  # None: a good record, processed
    key: bytes
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    bad_origin: bool = False  # a good record whose origin-time header is not a number


def _poison(topic: str) -> list[Injected]:
    (carried,) = TOPIC_EVENT_TYPES[topic]
    own = (EVENT_TYPE, carried.event_type.encode())
    other: Event = f.quote() if topic == TRADES else f.trade()
    # control.v1 is compacted: keys of its own, so that no real command is ever erased.
    key = b"poison:control" if topic == CONTROL else KEY
    bad_origin = (ORIGIN_TS, b"\xffnot-a-time")
    kinds = [
        ("tombstone", "empty_value", key, None, ()),
        ("no-event-type", "missing_event_type", key, b'{"type": "x"}', ()),
        ("event-type-not-utf8", "invalid_event_type", key, b"{}", ((EVENT_TYPE, b"\xfe\xff"),)),
        ("event-type-unknown", "unknown_event_type", key, b"{}", ((EVENT_TYPE, b"candle"),)),
        (
            "misplaced-type",
            "unexpected_event_type",
            key,
            encode(other),
            ((EVENT_TYPE, other.event_type.encode()),),
        ),
        ("not-json", "invalid_payload", key, b"\xff\xfe\x00 not json", (own,)),
        ("schema-invalid", "invalid_payload", key, b'{"type": "%s"}' % own[1], (own,)),
        (
            "near-limit",
            "invalid_payload",
            b"\xff\xfepoison",
            b"\x01" * NEAR_LIMIT,
            (own, bad_origin, ("traceparent", b"\xff" * 2000)),
        ),
    ]
    out = [Injected(topic, *k) for k in kinds]
    # Good records around the poison, for an instrument nobody trades: on market data with an
    # origin time that is not a number (ignored and counted; the record is processed).
    nobody = "binance:POI/SON"
    if topic in (TRADES, QUOTES):
        ok: Event = (
            f.trade(symbol="POI/SON", trade_id="ok")
            if topic == TRADES
            else f.quote(symbol="POI/SON")
        )
        for i, origin in enumerate([b"soon", b"\xff\xfe", b"-1"]):
            headers = (own, (ORIGIN_TS, origin))
            out.append(
                Injected(topic, f"bad-origin-{i}", None, nobody.encode(), encode(ok), headers, True)
            )
    elif topic == CONTROL:
        command = f.control(ControlAction.RESUME_SYMBOL, target=nobody)
        out.append(
            Injected(topic, "ok", None, command.compaction_key.encode(), encode(command), (own,))
        )
    elif topic == QUALITY:
        healthy = f.data_quality(symbol="POI/SON", status=FeedStatus.HEALTHY, issue=None)
        out.append(Injected(topic, "ok", None, nobody.encode(), encode(healthy), (own,)))
    return out


def _inject(bootstrap: str, names: TopicNames, records: list[Injected]) -> dict[int, Message]:
    """Produce each record raw; returns its delivery report (partition, offset) by index."""
    producer = RawProducer(
        {
            "bootstrap.servers": bootstrap,
            "message.max.bytes": 1_048_588,
            "linger.ms": 5,
        }
    )
    delivered: dict[int, Message] = {}
    errors: list[str] = []

    def report(i: int) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                errors.append(f"{records[i].topic} {records[i].name}: {err}")
            else:
                delivered[i] = msg

        return on_delivery

    for i, r in enumerate(records):
        producer.produce(
            names.physical(r.topic),
            value=r.value,
            key=r.key,
            headers=list(r.headers),
            on_delivery=report(i),
        )
        producer.poll(0)
    assert producer.flush(30) == 0
    assert errors == []
    return delivered


_SAMPLE_LINE = re.compile(r"^(\w+)\{(.*)\} (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _samples(text: str, name: str) -> Iterator[tuple[dict[str, str], float]]:
    for line in text.splitlines():
        m = _SAMPLE_LINE.match(line)
        if m and m.group(1) == name:
            yield dict(_LABEL.findall(m.group(2))), float(m.group(3))


def _metric(text: str, name: str, **labels: str) -> float:
    return sum(v for got, v in _samples(text, name) if labels.items() <= got.items())


class _Topics:
    """Every committed record of the pipeline's topics, read as they come (read_committed)."""

    def __init__(self, bootstrap: str, names: TopicNames) -> None:
        topics = [*TOPIC_EVENT_TYPES]
        self._reader = KafkaBus(bootstrap, names).reader(
            topics, from_ms=0, client_id=f"poison-check-{uuid.uuid4().hex[:6]}"
        )
        self.counts: Counter[str] = Counter()
        self.letters: list[DeadLetter] = []

    def read(self) -> None:
        while records := self._reader.poll(1000, 0.2):
            for r in records:
                self.counts[r.topic] += 1
                if r.topic == DLQ:
                    letter = decode(r.value, "dead_letter")
                    assert isinstance(letter, DeadLetter)
                    self.letters.append(letter)

    def close(self) -> None:
        self._reader.close()


def _running_metrics(procs: ServiceProcesses, name: str) -> str:
    """The service's /metrics; a service that went away fails the test with its log."""
    try:
        return procs.metrics(name)
    except OSError:
        procs.procs[name].wait(10)  # on its way out: the HTTP server stops first
    raise AssertionError(
        f"{name} exited {procs.procs[name].returncode}:\n{procs.log(name)[-3000:]}"
    )


@dataclass
class Run:
    """What a run left behind: what was injected and where it landed, what the topics hold,
    and each consumer's /metrics at the end."""

    inputs: dict[str, tuple[str, ...]]
    injected: list[Injected]
    delivered: dict[int, Message]
    topics: _Topics
    metrics: dict[str, str]

    def consumers(self, topic: str) -> list[str]:
        return [s for s in CONSUMERS if topic in self.inputs[s]]


def _run(bootstrap: str, redis_url: str, tmp_path: Path) -> Run:
    namespace = f"poison{uuid.uuid4().hex[:8]}"
    names = TopicNames(namespace)
    create_topics(bootstrap, names)
    specs = load_specs()
    inputs = {name: specs[name].inputs for name in CONSUMERS}
    env = service_env(
        bootstrap,
        redis_url,
        namespace,
        TICKPIPE_INGEST_FILE=str(SAMPLE),
        TICKPIPE_INGEST_LIMIT=str(RECORDS),
    )
    procs = ServiceProcesses(env, tmp_path / "logs", base_port=None)
    topics: _Topics | None = None
    try:
        for name in CONSUMERS:
            procs.start(name)
        procs.wait_ready(CONSUMERS)
        topics = _Topics(bootstrap, names)  # every partition has its leader by now
        procs.start("ingest")
        # Traffic flowing (ingest publishing, feature consuming), then the poison.
        wait_until(
            lambda: _metric(procs.metrics("feature"), "tickpipe_messages_in_total") >= 500,
            lambda: procs.log("feature")[-2000:],
        )
        injected = [
            r for t in sorted({t for ts in inputs.values() for t in ts}) for r in _poison(t)
        ]
        delivered = _inject(bootstrap, names, injected)

        # Until every consumer has consumed every record of its topics and nothing moves.
        texts: dict[str, str] = {}
        settled = 0

        def settle() -> bool:
            nonlocal texts, settled
            assert topics is not None
            topics.read()
            texts = {n: _running_metrics(procs, n) for n in CONSUMERS}
            caught_up = procs.procs["ingest"].poll() is not None and all(
                _metric(texts[s], "tickpipe_messages_in_total", service=s, topic=t)
                == topics.counts[t]
                for s in CONSUMERS
                for t in inputs[s]
            )
            settled = settled + 1 if caught_up else 0
            return settled >= 3

        wait_until(settle, lambda: f"{topics.counts} {procs.log('ingest')[-1000:]}", 60)
        topics.read()

        running = {n: procs.procs[n].poll() for n in CONSUMERS}
        assert running == dict.fromkeys(CONSUMERS), {n: procs.log(n)[-3000:] for n in CONSUMERS}
        assert procs.procs["ingest"].returncode == 0, procs.log("ingest")[-2000:]
    finally:
        if topics is not None:
            topics.close()
        codes = procs.stop()
    assert all(code == 0 for code in codes.values()), codes
    return Run(inputs, injected, delivered, topics, texts)


def test_poison_kafka_when_on_every_consumed_topic_then_dead_lettered_counted_services_run_on(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    run = _run(kafka_bootstrap, redis_url, tmp_path)

    consumed = {t for ts in run.inputs.values() for t in ts}
    assert consumed == {
        "md.trades.v1",
        "md.quotes.v1",
        "md.quality.v1",
        "features.v1",
        "signals.v1",
        "orders.v1",
        "executions.v1",
        "control.v1",
    }
    # Real traffic went through the stages around the poison.
    for t in ("md.trades.v1", "md.quotes.v1", "features.v1", "signals.v1"):
        injected = sum(r.topic == t for r in run.injected)
        assert run.topics.counts[t] > injected + 10, (t, run.topics.counts)
    _assert_each_poison_record_dead_lettered(run)
    for service in CONSUMERS:
        for topic in run.inputs[service]:
            _assert_accounted(run, service, topic)


def _letters_of_records(run: Run) -> dict[tuple[str, str, int | None, int | None], DeadLetter]:
    """Dead letters of consumed records by (service, source, partition, offset); a handler's
    own (feature's late trades) carry no offset."""
    of_records = [d for d in run.topics.letters if d.offset is not None]
    letters = {(d.service, d.source, d.partition, d.offset): d for d in of_records}
    assert len(letters) == len(of_records), "a record dead-lettered twice"
    return letters


def _assert_each_poison_record_dead_lettered(run: Run) -> None:
    letters = _letters_of_records(run)
    for i, r in enumerate(run.injected):
        where = (run.delivered[i].partition(), run.delivered[i].offset())
        for service in run.consumers(r.topic):
            letter = letters.get((service, r.topic, *where))
            if r.reason is None:
                assert letter is None, (service, r.name, letter)
                continue
            assert letter is not None, (service, r.topic, r.name)
            assert letter.reason == r.reason, (service, r.topic, r.name, letter.detail)
            value = r.value or b""
            head = base64.b64decode(letter.payload_b64)
            if len(value) <= PAYLOAD_LIMIT:
                assert head == value
                assert letter.key == r.key.decode()
                continue
            assert head == value[:PAYLOAD_LIMIT]
            assert letter.payload_size == len(value)
            assert letter.payload_sha256 == hashlib.sha256(value).hexdigest()
            assert letter.key_b64 is not None
            assert base64.b64decode(letter.key_b64) == r.key


def _assert_accounted(run: Run, service: str, topic: str) -> None:
    """Records on the topic = consumed = processed by the handler + dead-lettered before it;
    the dead letters are exactly the poison; the counters agree with dlq.v1."""
    text = run.metrics[service]
    mine = [d for d in run.topics.letters if (d.service, d.source) == (service, topic)]
    undecoded = sum(d.reason in DECODE_REASONS and d.offset is not None for d in mine)
    poison = sum(r.topic == topic and r.reason is not None for r in run.injected)
    labels = {"service": service, "topic": topic}
    consumed = _metric(text, "tickpipe_messages_in_total", **labels)
    processed = _metric(text, "tickpipe_handler_duration_seconds_count", **labels)
    on_topic = run.topics.counts[topic]
    assert on_topic == consumed == processed + undecoded, (
        service,
        topic,
        on_topic,
        consumed,
        processed,
        undecoded,
    )
    assert undecoded == poison, (service, topic, Counter(d.reason for d in mine))
    # The dead-letter counter agrees with dlq.v1, reason by reason (handler rejections too).
    counted = {
        got["reason"]: v
        for got, v in _samples(text, "tickpipe_dead_letters_total")
        if (got["service"], got["source"]) == (service, topic) and v
    }
    assert counted == dict(Counter(d.reason for d in mine)), (service, topic)
    bad_origin = sum(r.topic == topic and r.bad_origin for r in run.injected)
    header = {"service": service, "topic": topic, "header": ORIGIN_TS}
    assert _metric(text, "tickpipe_bad_headers_total", **header) == bad_origin, (service, topic)
