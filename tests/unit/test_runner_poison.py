"""Any bytes on a consumed topic: a counted dead letter with its reason, and the runner goes on.

Every kind of poison record goes through a StreamRunner on the in-memory bus, with a plain
handler and with a batch handler, between good records: each poison record is dead-lettered
once with its reason and counted, every good record reaches the handler in order, nothing
is raised.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracer, Tracer
from prometheus_client import REGISTRY

from tests.unit import factories as f
from tickpipe.app import load_specs
from tickpipe.bus.base import Headers, Offsets, OutRecord
from tickpipe.bus.memory import MemoryBus
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import (
    EVENT_TYPES,
    TOPIC_EVENT_TYPES,
    DeadLetter,
    Event,
    TradeTick,
    decode,
    encode,
)
from tickpipe.messages.deadletter import DETAIL_LIMIT, KEY_LIMIT, PAYLOAD_LIMIT
from tickpipe.runner import EVENT_TYPE, ORIGIN_TS, StreamRunner
from tickpipe.service import Emit
from tickpipe.telemetry.tracing import make_tracer
from tickpipe.topics import CONTROL, DLQ, QUOTES, TRADES

OUT = "test.out.v1"
KEY = f.KEY.encode()
_services = itertools.count()

# A value near Kafka's default record limit (`max.message.bytes`, 1 MiB).
NEAR_LIMIT = 1_040_000


class _Recorder:
    """Takes trades: each one seen is remembered and answered with one quote on OUT."""

    def __init__(self) -> None:
        self.seen: list[Event] = []

    def handle(self, event: Event, topic: str, now_ns: int) -> Sequence[Emit]:
        self.seen.append(event)
        if not isinstance(event, TradeTick):
            return ()
        return (Emit(OUT, f.quote(causation_id=event.event_id, ts_init=now_ns)),)


class _BatchRecorder(_Recorder):
    """The same, one call per consumed batch (as inference does)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches = 0

    def handle_batch(
        self, items: Sequence[tuple[Event, str]], now_ns: int
    ) -> Sequence[Sequence[Emit] | Exception]:
        self.batches += 1
        return [self.handle(event, topic, now_ns) for event, topic in items]


def _tracer(service: str, exporter: InMemorySpanExporter | None) -> Tracer:
    if exporter is None:
        return NoOpTracer()
    return make_tracer(service, processors=[SimpleSpanProcessor(exporter)])


def _service() -> str:
    return f"poison-{next(_services)}"


def _runner(
    bus: MemoryBus,
    handler: _Recorder,
    service: str,
    topics: Sequence[str] = (TRADES,),
    batch_size: int = 4,
    tracer: Tracer | None = None,
    resume: Offsets | None = None,
) -> StreamRunner:
    clock = SimClock(f.T0)
    ids = EventIds(clock, seed=7)
    link = bus.link(group=service, topics=list(topics), client_id=f"{service}-1")
    if resume is not None:
        link.resume_from(resume)
    return StreamRunner(
        service=service,
        group=service,
        handler=handler,
        link=link,
        clock=clock,
        ids=ids,
        tracer=tracer or NoOpTracer(),
        batch_size=batch_size,
    )


def _run(runner: StreamRunner) -> int:
    total = 0
    while n := runner.step(0.0):
        total += n
    return total


def _good(bus: MemoryBus, trade_id: str, headers: Headers = (), key: bytes = KEY) -> None:
    event = f.trade(trade_id=trade_id, event_id=f"01GOOD{trade_id}")
    bus.producer("test").send(
        OutRecord(TRADES, key, encode(event), ((EVENT_TYPE, b"trade"), *headers))
    )


def _letters(bus: MemoryBus) -> list[DeadLetter]:
    out = []
    for r in bus.records(DLQ):
        assert r.header(EVENT_TYPE) == b"dead_letter"
        letter = decode(r.value, "dead_letter")
        assert isinstance(letter, DeadLetter)
        assert r.key == letter.source.encode()
        out.append(letter)
    return out


def _dead(service: str, reason: str, source: str = TRADES) -> float:
    labels = {"service": service, "source": source, "reason": reason}
    return REGISTRY.get_sample_value("tickpipe_dead_letters_total", labels) or 0.0


def _bad_headers(service: str, topic: str = TRADES) -> float:
    labels = {"service": service, "topic": topic, "header": ORIGIN_TS}
    return REGISTRY.get_sample_value("tickpipe_bad_headers_total", labels) or 0.0


def _latencies(service: str, topic: str = TRADES) -> float:
    labels = {"service": service, "topic": topic}
    return REGISTRY.get_sample_value("tickpipe_end_to_end_latency_seconds_count", labels) or 0.0


@dataclass(frozen=True)
class Poison:
    name: str
    reason: str
    key: bytes | None
    value: bytes
    headers: Headers


_TRADE = encode(f.trade())
_TYPE = (EVENT_TYPE, b"trade")
_BAD_ORIGIN = (ORIGIN_TS, b"\xff not a number")

POISON = [
    Poison("tombstone", "empty_value", KEY, b"", ()),
    Poison("empty-value-with-type", "empty_value", KEY, b"", (_TYPE,)),
    Poison("no-event-type", "missing_event_type", KEY, _TRADE, ()),
    Poison("event-type-not-utf8", "invalid_event_type", KEY, _TRADE, ((EVENT_TYPE, b"\xfftr"),)),
    Poison("event-type-empty", "unknown_event_type", KEY, _TRADE, ((EVENT_TYPE, b""),)),
    Poison("event-type-unknown", "unknown_event_type", KEY, b"{}", ((EVENT_TYPE, b"candle"),)),
    Poison(
        "event-type-huge",
        "unknown_event_type",
        KEY,
        _TRADE,
        ((EVENT_TYPE, b"x" * 500_000),),
    ),
    Poison(
        "quote-on-trades",
        "unexpected_event_type",
        KEY,
        encode(f.quote()),
        ((EVENT_TYPE, b"quote"),),
    ),
    Poison(
        "dead-letter-on-trades",
        "unexpected_event_type",
        KEY,
        encode(f.dead_letter()),
        ((EVENT_TYPE, b"dead_letter"),),
    ),
    Poison("body-not-utf8", "invalid_payload", KEY, b"\xff\xfe\x00garbage", (_TYPE,)),
    Poison("body-not-json", "invalid_payload", KEY, b"not json at all", (_TYPE,)),
    Poison("body-schema-invalid", "invalid_payload", KEY, b'{"type": "trade"}', (_TYPE,)),
    Poison("body-wrong-type", "invalid_payload", KEY, encode(f.quote()), (_TYPE,)),
    Poison("body-deeply-nested", "invalid_payload", KEY, b"[" * 100_000, (_TYPE,)),
    Poison("body-near-limit", "invalid_payload", KEY, b"\x00" * NEAR_LIMIT, (_TYPE,)),
    Poison("key-not-utf8", "invalid_payload", b"\xff\xfekey", b"{", (_TYPE,)),
    Poison("bad-origin-too", "invalid_payload", KEY, b"{", (_TYPE, _BAD_ORIGIN)),
    Poison(
        "huge-trace-headers",
        "invalid_payload",
        KEY,
        b"{",
        (_TYPE, ("traceparent", b"0" * 600_000), ("tracestate", b"k=" + b"v" * 300_000)),
    ),
]


def _send(bus: MemoryBus, poison: Poison, topic: str = TRADES) -> None:
    bus.producer("test").send(OutRecord(topic, poison.key, poison.value, poison.headers))


HANDLERS: dict[str, Callable[[], _Recorder]] = {"handler": _Recorder, "batch": _BatchRecorder}


@pytest.mark.parametrize("batch_size", [1, 3, 500])
@pytest.mark.parametrize("kind", list(HANDLERS))
def test_runner_when_every_poison_kind_between_good_records_dead_letters_each_and_goes_on(
    kind: str, batch_size: int
) -> None:
    bus, service, handler = MemoryBus(), _service(), HANDLERS[kind]()
    before = {p.reason: _dead(service, p.reason) for p in POISON}
    _good(bus, "0")
    for i, poison in enumerate(POISON, start=1):
        _send(bus, poison)
        _good(bus, str(i))
    runner = _runner(bus, handler, service, batch_size=batch_size)

    consumed = _run(runner)

    good = [str(i) for i in range(len(POISON) + 1)]
    assert consumed == len(POISON) + len(good)
    assert [e.trade_id for e in handler.seen if isinstance(e, TradeTick)] == good
    assert len(handler.seen) == len(good)  # no poison reached the handler
    assert len(bus.records(OUT)) == len(good)
    letters = _letters(bus)
    sent = bus.records(TRADES)[1::2]  # the poison records, where they landed
    assert [(d.reason, d.partition, d.offset) for d in letters] == [
        (p.reason, r.partition, r.offset) for p, r in zip(POISON, sent, strict=True)
    ], [(p.name, d.reason, d.detail[:100]) for p, d in zip(POISON, letters, strict=False)]
    assert all((d.service, d.source) == (service, TRADES) for d in letters)
    for reason, was in before.items():
        assert _dead(service, reason) == was + sum(p.reason == reason for p in POISON), reason
    if isinstance(handler, _BatchRecorder):
        assert handler.batches >= 1
    # Every dead letter fits well within a Kafka record, whatever it carries.
    assert max(len(r.value) + sum(len(v) for _, v in r.headers) for r in bus.records(DLQ)) < (
        PAYLOAD_LIMIT * 4 // 3 + 16 * 1024
    )


@pytest.mark.parametrize("poison", POISON, ids=lambda p: p.name)
def test_runner_when_poison_alone_dead_letters_it_with_a_clear_detail(poison: Poison) -> None:
    bus, service = MemoryBus(), _service()
    _send(bus, poison)
    _run(_runner(bus, _Recorder(), service))

    (letter,) = _letters(bus)
    assert letter.reason == poison.reason
    assert letter.detail
    assert len(letter.detail) <= DETAIL_LIMIT + 40
    assert letter.causation_id is None
    payload = base64.b64decode(letter.payload_b64)
    if len(poison.value) <= PAYLOAD_LIMIT:
        assert payload == poison.value
        assert (letter.payload_size, letter.payload_sha256) == (None, None)
    else:
        assert payload == poison.value[:PAYLOAD_LIMIT]
        assert letter.payload_size == len(poison.value)
        assert letter.payload_sha256 == hashlib.sha256(poison.value).hexdigest()


def test_runner_when_event_type_header_not_utf8_says_so() -> None:
    bus, service = MemoryBus(), _service()
    _send(bus, POISON[3])
    _run(_runner(bus, _Recorder(), service))

    (letter,) = _letters(bus)
    assert letter.reason == "invalid_event_type"
    assert "not UTF-8" in letter.detail
    assert "\\xfftr" in letter.detail


def test_runner_when_type_misplaced_names_what_the_topic_carries() -> None:
    bus, service = MemoryBus(), _service()
    _send(bus, POISON[7])
    _run(_runner(bus, _Recorder(), service))

    (letter,) = _letters(bus)
    assert letter.detail == "md.trades.v1 carries trade, not quote"


def test_runner_when_key_not_utf8_keeps_its_exact_bytes() -> None:
    bus, service = MemoryBus(), _service()
    _send(bus, Poison("k", "invalid_payload", b"\xff\xfe:BTC", b"{", (_TYPE,)))
    _run(_runner(bus, _Recorder(), service))

    (letter,) = _letters(bus)
    assert letter.key == "\ufffd\ufffd:BTC"
    assert letter.key_b64 is not None
    assert base64.b64decode(letter.key_b64) == b"\xff\xfe:BTC"
    assert letter.key_size is None


def test_runner_when_key_huge_keeps_its_head_and_size() -> None:
    bus, service = MemoryBus(), _service()
    key = b"k" * 200_000
    _send(bus, Poison("k", "invalid_payload", key, b"{", (_TYPE,)))
    _run(_runner(bus, _Recorder(), service))

    (letter,) = _letters(bus)
    assert letter.key == "k" * KEY_LIMIT
    assert letter.key_b64 is not None
    assert base64.b64decode(letter.key_b64) == key[:KEY_LIMIT]
    assert letter.key_size == len(key)


def test_runner_when_key_is_utf8_keeps_it_as_text_only() -> None:
    bus, service = MemoryBus(), _service()
    _send(bus, Poison("k", "invalid_payload", "binance:BTC/€".encode(), b"{", (_TYPE,)))
    _run(_runner(bus, _Recorder(), service))

    (letter,) = _letters(bus)
    assert (letter.key, letter.key_b64, letter.key_size) == ("binance:BTC/€", None, None)


def test_runner_when_validation_errors_are_huge_bounds_the_detail() -> None:
    bus, service = MemoryBus(), _service()
    body = orjson.dumps({**orjson.loads(_TRADE), "x" * 300_000: 1})  # an unknown field
    _send(bus, Poison("detail", "invalid_payload", KEY, body, (_TYPE,)))
    _run(_runner(bus, _Recorder(), service))

    (letter,) = _letters(bus)
    assert letter.reason == "invalid_payload"
    assert len(letter.detail) <= DETAIL_LIMIT + 40
    assert letter.detail.endswith("characters)")
    assert letter.payload_size == len(body)


def test_runner_when_poison_is_replayed_after_restart_counts_and_publishes_it_once() -> None:
    bus, service = MemoryBus(), _service()
    _good(bus, "0")
    _send(bus, POISON[2])
    _good(bus, "1")
    _run(_runner(bus, _Recorder(), service))
    assert _dead(service, "missing_event_type") == 1

    # A restart from a snapshot taken at offset 0: the three records come back as replays.
    partition = bus.records(TRADES)[0].partition
    again = _runner(bus, _Recorder(), service, resume={(TRADES, partition): 0})
    assert _run(again) == 3

    assert len(_letters(bus)) == 1
    assert _dead(service, "missing_event_type") == 1
    assert len(bus.records(OUT)) == 2


@pytest.mark.parametrize("tracing", [False, True], ids=["no-tracing", "tracing"])
@pytest.mark.parametrize("kind", list(HANDLERS))
@pytest.mark.parametrize(
    "origin",
    [b"soon", b"\xff\xfe", b"", b"-5", b" 1723161254000000000", b"1_000", b"9" * 40],
    ids=["word", "not-utf8", "empty", "negative", "space", "underscore", "too-long"],
)
def test_runner_when_origin_header_bad_ignores_and_counts_it_and_processes_the_record(
    origin: bytes, kind: str, tracing: bool
) -> None:
    bus, service, handler = MemoryBus(), _service(), HANDLERS[kind]()
    exporter = InMemorySpanExporter() if tracing else None
    _good(bus, "0", headers=((ORIGIN_TS, str(f.T0 - 1000).encode()),))
    _good(bus, "1", headers=((ORIGIN_TS, origin),))
    _good(bus, "2", headers=((ORIGIN_TS, str(f.T0 - 1000).encode()),))
    runner = _runner(bus, handler, service, tracer=_tracer(service, exporter))

    assert _run(runner) == 3

    assert [e.trade_id for e in handler.seen if isinstance(e, TradeTick)] == ["0", "1", "2"]
    assert _letters(bus) == []
    assert _bad_headers(service) == 1
    assert _latencies(service) == 2  # the good origins only
    outputs = bus.records(OUT)
    assert [r.header(ORIGIN_TS) for r in outputs] == [
        str(f.T0 - 1000).encode(),
        None,  # not passed on
        str(f.T0 - 1000).encode(),
    ]


def test_runner_when_trace_headers_huge_does_not_pass_them_on() -> None:
    bus, service = MemoryBus(), _service()
    big = (("traceparent", b"0" * 600_000), ("tracestate", b"k=" + b"v" * 300_000))
    _good(bus, "0", headers=((ORIGIN_TS, b"1723161254000000000"), *big))
    _run(_runner(bus, _Recorder(), service))

    (out,) = bus.records(OUT)
    assert {k for k, _ in out.headers} == {EVENT_TYPE, "schema-version", ORIGIN_TS}


class _Unencodable(_Recorder):
    """Answers trade `bad` with an event that cannot be serialized."""

    def handle(self, event: Event, topic: str, now_ns: int) -> Sequence[Emit]:
        out = super().handle(event, topic, now_ns)
        if isinstance(event, TradeTick) and event.trade_id == "bad":
            broken = TradeTick.model_construct(**{**dict(f.trade()), "price": object()})
            return (*out, Emit(OUT, broken))
        return out


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_runner_when_an_output_cannot_be_encoded_dead_letters_its_input() -> None:
    bus, service = MemoryBus(), _service()
    before = _dead(service, "handler_error")
    _good(bus, "0")
    _good(bus, "bad")
    _good(bus, "2")

    assert _run(_runner(bus, _Unencodable(), service)) == 3

    (letter,) = _letters(bus)
    assert (letter.reason, letter.offset) == ("handler_error", 1)
    assert letter.causation_id == "01GOODbad"
    assert len(bus.records(OUT)) == 2  # the input's outputs go with it
    assert _dead(service, "handler_error") == before + 1


_FACTORIES: dict[str, Callable[[], Event]] = {
    "trade": f.trade,
    "quote": f.quote,
    "features": f.feature_vector,
    "signal": f.signal,
    "order": f.order,
    "execution": f.execution,
    "risk_decision": f.risk_decision,
    "control": f.control,
    "dead_letter": f.dead_letter,
    "data_quality": f.data_quality,
}


def test_factories_cover_every_event_type() -> None:
    assert set(_FACTORIES) == set(EVENT_TYPES)


# Not dlq.v1: no runner consumes it (and its dead letters would land among its inputs).
@pytest.mark.parametrize("topic", [t for t in TOPIC_EVENT_TYPES if t != DLQ])
def test_runner_when_topic_carries_the_type_hands_it_over_and_any_other_is_dead_lettered(
    topic: str,
) -> None:
    bus, service, handler = MemoryBus(), _service(), _Recorder()
    carried = {cls.event_type for cls in TOPIC_EVENT_TYPES[topic]}
    for event_type, make in sorted(_FACTORIES.items()):
        event = make()
        headers = ((EVENT_TYPE, event_type.encode()),)
        bus.producer("test").send(OutRecord(topic, b"k", encode(event), headers))

    assert _run(_runner(bus, handler, service, topics=[topic])) == len(_FACTORIES)

    assert {e.event_type for e in handler.seen} == carried
    letters = _letters(bus)
    assert {d.reason for d in letters} == {"unexpected_event_type"}
    assert len(letters) == len(_FACTORIES) - len(carried)


def test_runner_when_topic_not_listed_takes_any_event_type() -> None:
    bus, service, handler = MemoryBus(), _service(), _Recorder()
    for event_type, make in sorted(_FACTORIES.items()):
        headers = ((EVENT_TYPE, event_type.encode()),)
        bus.producer("test").send(OutRecord("test.any.v1", b"k", encode(make()), headers))

    _run(_runner(bus, handler, service, topics=["test.any.v1"]))

    assert len(handler.seen) == len(_FACTORIES)
    assert _letters(bus) == []


def test_every_consumed_topic_declares_what_it_carries() -> None:
    consumed = {t for spec in load_specs().values() for t in spec.inputs}
    assert consumed  # the services are installed
    assert consumed <= set(TOPIC_EVENT_TYPES)


@pytest.mark.parametrize("kind", list(HANDLERS))
def test_runner_when_poison_on_several_topics_dead_letters_each_by_source(kind: str) -> None:
    bus, service, handler = MemoryBus(), _service(), HANDLERS[kind]()
    _good(bus, "0")
    for topic in (TRADES, QUOTES, CONTROL):
        _send(bus, POISON[0], topic)
        _send(bus, POISON[2], topic)
    _good(bus, "1")

    assert _run(_runner(bus, handler, service, topics=[TRADES, QUOTES, CONTROL])) == 8

    assert [e.trade_id for e in handler.seen if isinstance(e, TradeTick)] == ["0", "1"]
    letters = _letters(bus)
    assert sorted((d.source, d.reason) for d in letters) == sorted(
        (t, r) for t in (TRADES, QUOTES, CONTROL) for r in ("empty_value", "missing_event_type")
    )
    for topic in (QUOTES, CONTROL):
        assert _dead(service, "empty_value", source=topic) == 1


def test_runner_when_poison_floods_counts_all_and_logs_the_first_few(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus, service = MemoryBus(), _service()
    for _ in range(25):
        _send(bus, POISON[2])
    caplog.set_level("WARNING", logger="tickpipe.runner")

    _run(_runner(bus, _Recorder(), service, batch_size=500))

    assert _dead(service, "missing_event_type") == 25
    assert len(_letters(bus)) == 25
    logged = [r for r in caplog.records if r.getMessage() == "dead letter"]
    assert [getattr(r, "count", None) for r in logged] == list(range(1, 11))
