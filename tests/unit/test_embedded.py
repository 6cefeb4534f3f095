"""The five services in one process over the sample: deterministic and consistent."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import orjson
import pytest
from opentelemetry.trace import NoOpTracer

from tests.unit import factories as f
from tickpipe.app import load_specs
from tickpipe.cache.base import get_json
from tickpipe.embedded import EmbeddedPipeline
from tickpipe.runner import EVENT_TYPE
from tickpipe.topics import (
    DLQ,
    EXECUTIONS,
    FEATURES,
    ORDERS,
    QUOTES,
    RISK_DECISIONS,
    SIGNALS,
    TOPICS,
    TRADES,
)

LIMIT = 10_000


@dataclass
class _Run:
    published: int
    values: dict[str, list[bytes]]
    event_types: dict[str, Counter[bytes | None]]
    pnl: dict[str, str]
    position: dict[str, str] | None


def _run_pipeline() -> _Run:
    specs = load_specs()
    pipeline = EmbeddedPipeline(list(specs.values()), seed=0, tracer_factory=lambda _: NoOpTracer())
    try:
        published = pipeline.run()
        values = {t.name: [r.value for r in pipeline.bus.records(t.name)] for t in TOPICS}
        event_types = {
            t.name: Counter(r.header(EVENT_TYPE) for r in pipeline.bus.records(t.name))
            for t in TOPICS
        }
        return _Run(
            published,
            values,
            event_types,
            get_json(pipeline.cache, "pnl:paper"),
            get_json(pipeline.cache, f"positions:paper:{f.KEY}"),
        )
    finally:
        pipeline.close()


@pytest.fixture(scope="module")
def runs() -> Iterator[tuple[_Run, _Run]]:
    with pytest.MonkeyPatch.context() as mp:
        for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
            mp.delenv(var, raising=False)
        mp.setenv("TICKPIPE_INGEST_LIMIT", str(LIMIT))
        mp.setenv("TICKPIPE_INGEST_FILE", str(f.SAMPLE))
        mp.setenv("TICKPIPE_INGEST_LOOPS", "1")
        mp.setenv("TICKPIPE_INFERENCE_MODEL_DIR", str(f.MODEL_DIR))
        mp.setenv("TICKPIPE_RISK_EXCHANGE_INFO", str(f.EXCHANGE_INFO))
        yield _run_pipeline(), _run_pipeline()


def test_embedded_pipeline_when_run_twice_orders_and_executions_are_byte_identical(
    runs: tuple[_Run, _Run],
) -> None:
    a, b = runs

    assert a.values[ORDERS], "the run placed no orders: nothing was compared"
    assert a.values[ORDERS] == b.values[ORDERS]
    assert a.values[EXECUTIONS] == b.values[EXECUTIONS]


def test_embedded_pipeline_when_run_twice_every_topic_is_identical(
    runs: tuple[_Run, _Run],
) -> None:
    a, b = runs

    assert a.values == b.values
    assert a.pnl == b.pnl


def test_embedded_pipeline_when_limited_reads_exactly_the_limit(runs: tuple[_Run, _Run]) -> None:
    run, _ = runs
    ingested = len(run.values[TRADES]) + len(run.values[QUOTES]) + len(run.values[DLQ])

    assert run.published == LIMIT
    assert ingested == LIMIT
    assert len(run.values[TRADES]) > 0 and len(run.values[QUOTES]) > 0


def test_embedded_pipeline_when_quotes_exist_fills_every_order_whole(
    runs: tuple[_Run, _Run],
) -> None:
    run, _ = runs
    orders = [orjson.loads(v) for v in run.values[ORDERS]]
    reports = [orjson.loads(v) for v in run.values[EXECUTIONS]]
    fills = [r for r in reports if Decimal(r["last_qty"]) > 0]

    assert len(fills) == len(orders) > 0
    assert Counter(r["status"] for r in reports) == {
        "acknowledged": len(orders),
        "filled": len(orders),
    }
    filled = {r["client_order_id"]: Decimal(r["last_qty"]) for r in fills}
    assert filled == {o["client_order_id"]: Decimal(o["quantity"]) for o in orders}


def test_embedded_pipeline_when_run_stages_counts_agree(runs: tuple[_Run, _Run]) -> None:
    run, _ = runs
    decisions = [orjson.loads(v) for v in run.values[RISK_DECISIONS]]

    assert len(run.values[FEATURES]) > 0
    assert len(run.values[SIGNALS]) == len(run.values[FEATURES])  # no feature was refused
    assert sum(d["approved"] for d in decisions) == len(run.values[ORDERS])
    for topic in (TRADES, QUOTES, FEATURES, SIGNALS, ORDERS, EXECUTIONS, RISK_DECISIONS):
        assert None not in run.event_types[topic]


def test_embedded_pipeline_when_orders_filled_books_match_fills(runs: tuple[_Run, _Run]) -> None:
    run, _ = runs
    reports = [orjson.loads(v) for v in run.values[EXECUTIONS]]
    signed = sum(
        Decimal(r["last_qty"]) * (1 if r["side"] == "buy" else -1)
        for r in reports
        if Decimal(r["last_qty"]) > 0
    )
    fees = sum(Decimal(r["fee"]) for r in reports)

    assert run.position is not None
    assert Decimal(run.position["qty"]) == signed
    pnl = {k: Decimal(v) for k, v in run.pnl.items()}
    assert pnl["fees"] == fees
    assert pnl["net"] == pnl["realized"] + pnl["unrealized"] - pnl["fees"]
