"""StreamRunner over the in-memory bus: dead letters, headers, and tracing across hops."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, Tracer
from prometheus_client import REGISTRY

from tests.unit import factories as f
from tickpipe.bus.base import OutRecord, Record
from tickpipe.bus.memory import MemoryBus
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import DeadLetter, Event, QuoteTick, TradeTick, decode
from tickpipe.runner import (
    EVENT_TYPE,
    ORIGIN_TS,
    SCHEMA_VERSION,
    SourceRunner,
    StreamRunner,
    encode_emit,
)
from tickpipe.service import Emit, Rejected
from tickpipe.telemetry.tracing import make_tracer
from tickpipe.topics import DLQ

IN, MID, OUT = "test.in.v1", "test.mid.v1", "test.out.v1"
SERVICE = "runner-test"


class _Relay:
    """TradeTick in -> QuoteTick on `out`; trade ids `reject` and `boom` fail as named."""

    def __init__(self, ids: EventIds, out: str) -> None:
        self._ids = ids
        self._out = out

    def handle(self, event: Event, topic: str, now_ns: int) -> Sequence[Emit]:
        if not isinstance(event, TradeTick | QuoteTick):
            return ()
        trade_id = event.trade_id if isinstance(event, TradeTick) else "quote"
        if trade_id == "reject":
            raise Rejected("size_below_minimum", "0.00001 < 0.0001")
        if trade_id == "boom":
            raise ZeroDivisionError("division by zero")
        derived = f.quote(event_id=self._ids.new(), ts_init=now_ns, causation_id=event.event_id)
        return (Emit(self._out, derived),)


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    return InMemorySpanExporter()


def _tracer(service: str, exporter: InMemorySpanExporter) -> Tracer:
    return make_tracer(service, processors=[SimpleSpanProcessor(exporter)])


def _runner(
    bus: MemoryBus, tracer: Tracer, group: str = "g1", topic: str = IN, out: str = MID
) -> StreamRunner:
    clock = SimClock(f.T0)
    ids = EventIds(clock, seed=11)
    link = bus.link(group=group, topics=[topic], client_id=f"{group}-1")
    return StreamRunner(
        service=SERVICE,
        group=group,
        handler=_Relay(ids, out),
        link=link,
        clock=clock,
        ids=ids,
        tracer=tracer,
        batch_size=4,
    )


def _send_trade(
    bus: MemoryBus, trade_id: str, headers: tuple[tuple[str, bytes], ...] = ()
) -> bytes:
    record = encode_emit(Emit(IN, f.trade(trade_id=trade_id)), headers)
    bus.producer("test").send(record)
    return record.value


def _send_raw(bus: MemoryBus, value: bytes, event_type: bytes | None) -> None:
    headers = () if event_type is None else ((EVENT_TYPE, event_type),)
    bus.producer("test").send(OutRecord(IN, b"raw-key", value, headers))


def _run(runner: StreamRunner) -> int:
    total = 0
    while n := runner.step(0.0):
        total += n
    return total


def _letters(bus: MemoryBus) -> list[DeadLetter]:
    out = []
    for r in bus.records(DLQ):
        assert r.header(EVENT_TYPE) == b"dead_letter"
        letter = decode(r.value, "dead_letter")
        assert isinstance(letter, DeadLetter)
        out.append(letter)
    return out


def _dlq_count(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "tickpipe_dead_letters_total", {"service": SERVICE, "source": IN, "reason": reason}
    )
    return value or 0.0


def test_stream_runner_when_input_bad_dead_letters_each_and_keeps_going(
    exporter: InMemorySpanExporter,
) -> None:
    bus = MemoryBus()
    before = _dlq_count("handler_error")
    _send_trade(bus, "1")
    _send_raw(bus, b"\xff\xfe not json", b"trade")
    _send_raw(bus, f.trade().model_dump_json().encode(), None)
    _send_raw(bus, b"{}", b"candle")
    rejected = _send_trade(bus, "reject")
    boom = _send_trade(bus, "boom")
    _send_trade(bus, "2")
    runner = _runner(bus, _tracer(SERVICE, exporter))

    consumed = _run(runner)

    assert consumed == 7
    assert len(bus.records(MID)) == 2  # the good records before and after the bad ones
    letters = _letters(bus)
    assert [d.reason for d in letters] == [
        "invalid_payload",
        "missing_event_type",
        "unknown_event_type",
        "size_below_minimum",
        "handler_error",
    ]
    assert all((d.service, d.source, d.partition) == (SERVICE, IN, 0) for d in letters)
    assert [d.offset for d in letters] == [1, 2, 3, 4, 5]
    assert base64.b64decode(letters[0].payload_b64) == b"\xff\xfe not json"
    assert base64.b64decode(letters[3].payload_b64) == rejected
    assert base64.b64decode(letters[4].payload_b64) == boom
    assert letters[0].key == "raw-key"
    assert letters[3].detail == "0.00001 < 0.0001"
    assert letters[4].detail == "ZeroDivisionError: division by zero"
    assert letters[3].causation_id == f.trade().event_id
    assert letters[0].causation_id is None
    assert {r.key for r in bus.records(DLQ)} == {IN.encode()}
    assert _dlq_count("handler_error") == before + 1


def test_stream_runner_when_batch_completed_commits_its_offsets(
    exporter: InMemorySpanExporter,
) -> None:
    bus = MemoryBus()
    for i in range(10):
        _send_trade(bus, str(i))
    runner = _runner(bus, _tracer(SERVICE, exporter))
    assert _run(runner) == 10
    runner.close()

    restarted = _runner(bus, _tracer(SERVICE, exporter))

    assert _run(restarted) == 0
    assert len(bus.records(MID)) == 10


def _header(record: Record, name: str) -> bytes:
    value = record.header(name)
    assert value is not None, f"no {name} header"
    return value


def _traceparent(record: Record) -> tuple[int, int]:
    _, trace_id, span_id, _ = _header(record, "traceparent").decode().split("-")
    return int(trace_id, 16), int(span_id, 16)


def test_stream_runner_when_publishing_outputs_sets_headers(
    exporter: InMemorySpanExporter,
) -> None:
    bus = MemoryBus()
    _send_trade(bus, "1", headers=((ORIGIN_TS, b"1723161254000000123"),))
    _send_trade(bus, "2")
    _run(_runner(bus, _tracer(SERVICE, exporter)))

    with_origin, without_origin = bus.records(MID)

    for record in (with_origin, without_origin):
        assert _header(record, EVENT_TYPE) == b"quote"
        assert _header(record, SCHEMA_VERSION) == b"1"
    assert _header(with_origin, ORIGIN_TS) == b"1723161254000000123"
    assert without_origin.header(ORIGIN_TS) is None
    spans = {s.context.span_id: s for s in exporter.get_finished_spans()}
    for record in (with_origin, without_origin):
        trace_id, span_id = _traceparent(record)
        assert spans[span_id].context.trace_id == trace_id
        assert spans[span_id].name == f"process {IN}"


def test_stream_runner_when_processing_records_spans_follow_messaging_conventions(
    exporter: InMemorySpanExporter,
) -> None:
    bus = MemoryBus()
    _send_trade(bus, "1")
    _send_trade(bus, "boom")
    _run(_runner(bus, _tracer(SERVICE, exporter), group="feature-test"))

    ok, failed = exporter.get_finished_spans()

    for span, offset in ((ok, 0), (failed, 1)):
        assert span.name == f"process {IN}"
        assert span.kind is SpanKind.CONSUMER
        attrs = dict(span.attributes or {})
        assert attrs["messaging.system"] == "kafka"
        assert attrs["messaging.destination.name"] == IN
        assert attrs["messaging.destination.partition.id"] == "0"
        assert attrs["messaging.kafka.offset"] == offset
        assert attrs["messaging.consumer.group.name"] == "feature-test"
        assert attrs["messaging.kafka.message.key"] == f.KEY
        assert span.resource.attributes["service.name"] == f"tickpipe-{SERVICE}"
    assert ok.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR


class _Trades:
    def __init__(self, n: int) -> None:
        self._n = n

    def __iter__(self) -> Iterator[Emit]:
        for i in range(self._n):
            yield Emit(IN, f.trade(trade_id=str(i), ts_init=f.T0 + i))


def test_runners_when_chained_share_one_trace_with_parent_links(
    exporter: InMemorySpanExporter,
) -> None:
    bus = MemoryBus()
    source = SourceRunner(
        service="ingest-test",
        source=_Trades(3),
        producer=bus.producer("src"),
        tracer=_tracer("ingest-test", exporter),
    )
    first = _runner(bus, _tracer("first", exporter), group="first", topic=IN, out=MID)
    second = _runner(bus, _tracer("second", exporter), group="second", topic=MID, out=OUT)

    assert source.run() == 3
    _run(first)
    _run(second)

    spans = exporter.get_finished_spans()
    sends = [s for s in spans if s.name == f"send {IN}"]
    firsts = [s for s in spans if s.name == f"process {IN}"]
    seconds = [s for s in spans if s.name == f"process {MID}"]
    assert [len(sends), len(firsts), len(seconds)] == [3, 3, 3]
    assert all(s.kind is SpanKind.PRODUCER for s in sends)
    for send, hop1, hop2 in zip(sends, firsts, seconds, strict=True):
        assert hop1.context.trace_id == hop2.context.trace_id == send.context.trace_id
        _assert_child(hop1, send)
        _assert_child(hop2, hop1)
    assert len({s.context.trace_id for s in sends}) == 3  # one trace per market-data record
    finals = bus.records(OUT)
    assert [_header(r, ORIGIN_TS) for r in finals] == [str(f.T0 + i).encode() for i in range(3)]
    assert [_traceparent(r)[1] for r in finals] == [s.context.span_id for s in seconds]


def _assert_child(child: ReadableSpan, parent: ReadableSpan) -> None:
    assert child.parent is not None
    assert child.parent.span_id == parent.context.span_id
    assert [link.context.span_id for link in child.links] == [parent.context.span_id]
