"""The whole path over real Kafka and Redis: five services as five processes.

Trades replayed by ingest travel through feature, inference, risk and execution and end as
fills on executions.v1; one fill's trace holds spans from all five services chained parent
to child; Prometheus counters move; positions land in Redis.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from tests.integration.otlp import OtlpReceiver, ReceivedSpan
from tickpipe.bus.admin import create_topics
from tickpipe.bus.kafka import KafkaBus
from tickpipe.processes import ServiceProcesses
from tickpipe.runner import EVENT_TYPE
from tickpipe.topics import EXECUTIONS, TRADES, TopicNames

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SAMPLE = Path("data/sample/binance-spot-btcusdt-20240808.gz")
RECORDS = 16_000  # ~2.5 minutes of the capture: enough bars to warm up and trade
SERVICES = ["feature", "inference", "risk", "execution"]


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()


def _fills(
    bootstrap: str, names: TopicNames, want: int, timeout_s: float
) -> list[tuple[dict[str, object], bytes]]:
    link = KafkaBus(bootstrap, names).link(
        group=f"{uuid.uuid4().hex}.check", topics=[EXECUTIONS], client_id="check"
    )
    fills: list[tuple[dict[str, object], bytes]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(fills) < want and time.monotonic() < deadline:
            for r in link.poll(500, 0.5):
                body = orjson.loads(r.value)
                if r.header(EVENT_TYPE) == b"execution" and body["last_qty"] != "0":
                    fills.append((body, r.header("traceparent") or b""))
    finally:
        link.close()
    return fills


def _count(bootstrap: str, names: TopicNames, topic: str) -> int:
    link = KafkaBus(bootstrap, names).link(
        group=f"{uuid.uuid4().hex}.count", topics=[topic], client_id="count"
    )
    n, quiet = 0, 0
    try:
        while quiet < 6:
            got = len(link.poll(1000, 0.5))
            n += got
            quiet = 0 if got else quiet + 1
    finally:
        link.close()
    return n


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _chain(spans: list[ReceivedSpan], leaf: ReceivedSpan) -> list[ReceivedSpan]:
    by_id = {s.span_id: s for s in spans}
    chain = [leaf]
    while chain[-1].parent_span_id:
        parent = by_id.get(chain[-1].parent_span_id)
        assert parent is not None, f"parent of {chain[-1].name} ({chain[-1].service}) missing"
        chain.append(parent)
    return chain


def test_pipeline_when_trades_replayed_over_kafka_then_fills_and_one_trace_spans_five_services(
    kafka_bootstrap: str, redis_url: str, otlp: OtlpReceiver, tmp_path: Path
) -> None:
    namespace = f"e2e{uuid.uuid4().hex[:8]}"
    names = TopicNames(namespace)
    create_topics(kafka_bootstrap, names)
    env = {
        "TICKPIPE_BUS": "kafka",
        "TICKPIPE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "TICKPIPE_REDIS_URL": redis_url,
        "TICKPIPE_TOPIC_NAMESPACE": namespace,
        "TICKPIPE_INGEST_FILE": str(SAMPLE),
        "TICKPIPE_INGEST_LIMIT": str(RECORDS),
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": otlp.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    procs = ServiceProcesses(env, tmp_path / "logs", base_port=None)
    try:
        for name in SERVICES:
            procs.start(name)
        procs.wait_ready(SERVICES)
        procs.start("ingest")
        fills = _fills(kafka_bootstrap, names, want=3, timeout_s=90)
        assert len(fills) >= 3, {n: procs.log(n)[-2000:] for n in procs.procs}
        assert procs.procs["ingest"].wait(60) == 0, procs.log("ingest")[-2000:]

        for name in SERVICES:
            text = procs.metrics(name)
            assert _metric(text, "tickpipe_messages_in_total", service=name) > 0, name
            assert f'tickpipe_consumer_lag{{service="{name}"' in text, name
        assert (
            _metric(
                procs.metrics("execution"),
                "tickpipe_messages_out_total",
                service="execution",
                topic=EXECUTIONS,
            )
            >= 3
        )
        assert (
            _metric(procs.metrics("risk"), "tickpipe_risk_decisions_total", reason="approved") >= 3
        )
    finally:
        codes = procs.stop()
    assert all(code == 0 for code in codes.values()), codes

    trades = _count(kafka_bootstrap, names, TRADES)
    assert trades > 3000  # every trade in the first RECORDS lines, validated and published

    cache = redis.Redis.from_url(redis_url)
    pnl = orjson.loads(cache.get(f"{namespace}:pnl:paper") or b"{}")
    cache.close()
    assert set(pnl) == {"realized", "unrealized", "fees", "net"}
    assert float(pnl["fees"]) > 0

    fill, traceparent = fills[0]
    trace_id = re.fullmatch(rb"00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}", traceparent)
    assert trace_id is not None, traceparent
    wanted = trace_id.group(1).decode()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        spans = [s for s in otlp.spans if s.trace_id == wanted]
        if {s.service for s in spans} >= {f"tickpipe-{n}" for n in ["ingest", *SERVICES]}:
            break
        time.sleep(0.2)
    leaf = next(
        s for s in spans if s.service == "tickpipe-execution" and s.name == "process orders.v1"
    )
    chain = _chain(spans, leaf)
    assert [s.service for s in chain] == [
        "tickpipe-execution",
        "tickpipe-risk",
        "tickpipe-inference",
        "tickpipe-feature",
        "tickpipe-ingest",
    ]
    # The bar closes on a trade; feature handles that trade when it arrives, or when the
    # quote ingest received before it arrives (arrival order restored): that record is the
    # parent either way, and its trace goes back to ingest.
    market = chain[3].name.removeprefix("process ")
    assert market in ("md.trades.v1", "md.quotes.v1")
    assert [s.name for s in chain] == [
        "process orders.v1",
        "process signals.v1",
        "process features.v1",
        f"process {market}",
        f"send {market}",
    ]
    consumer = chain[0]
    assert consumer.attributes["messaging.system"] == "kafka"
    assert consumer.attributes["messaging.destination.name"] == "orders.v1"
    assert consumer.attributes["messaging.kafka.message.key"] == "binance:BTC/USDT"
    assert fill["symbol"] == "BTC/USDT"
