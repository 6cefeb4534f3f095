"""Ingest as its own process into a real Kafka broker: every input is accounted for.

A replay of real files (nautilus' Binance trades and quotes in Parquet, plus the bad-input
CSV corpus) must leave exactly one record per input on the broker: on md.trades.v1 or
md.quotes.v1 when valid, on dlq.v1 with the expected reason when not.
"""

from __future__ import annotations

import gc
import json
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.fixtures.paths import BAD_INPUTS, shared_data
from tickpipe.bus.admin import create_topics
from tickpipe.bus.kafka import KafkaBus
from tickpipe.marketdata import read_market_data
from tickpipe.processes import ServiceProcesses
from tickpipe.topics import DLQ, QUOTES, TRADES, TopicNames

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _drain(
    bootstrap: str, names: TopicNames, want: int, timeout_s: float = 30.0
) -> dict[str, list[bytes]]:
    """Every record on the three topics: until `want` have arrived, then one quiet second."""
    link = KafkaBus(bootstrap, names).link(
        group=f"{uuid.uuid4().hex}.count", topics=[TRADES, QUOTES, DLQ], client_id="count"
    )
    records: dict[str, list[bytes]] = {TRADES: [], QUOTES: [], DLQ: []}
    deadline = time.monotonic() + timeout_s
    try:
        while sum(map(len, records.values())) < want and time.monotonic() < deadline:
            for r in link.poll(1000, 0.5):
                records[r.topic].append(r.value)
        for r in link.poll(1000, 1.0):
            records[r.topic].append(r.value)
    finally:
        link.close()
        del link
        gc.collect()  # frees librdkafka handles now, not after the broker has stopped
    return records


def _ingest(env: dict[str, str], bootstrap: str, namespace: str, logs: Path) -> None:
    procs = ServiceProcesses(
        {
            "TICKPIPE_BUS": "kafka",
            "TICKPIPE_KAFKA_BOOTSTRAP": bootstrap,
            "TICKPIPE_TOPIC_NAMESPACE": namespace,
            "TICKPIPE_LOG_LEVEL": "WARNING",
            **env,
        },
        logs,
        base_port=None,
    )
    procs.start("ingest")
    try:
        code = procs.procs["ingest"].wait(90)
    finally:
        procs.stop()
    assert code == 0, procs.log("ingest")[-3000:]


def test_ingest_when_real_files_replayed_into_kafka_publishes_or_dead_letters_every_input(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    files = [
        shared_data("nautilus_trader/tests/test_data/binance/btcusdt-trades.parquet"),
        shared_data("nautilus_trader/tests/test_data/binance/btcusdt-quotes.parquet"),
        BAD_INPUTS / "BTCUSDT-trades.csv",
    ]
    inputs = sum(len(list(read_market_data(f, exchange="binance"))) for f in files)
    expected_reasons = Counter(
        o
        for o in json.loads((BAD_INPUTS / "cases.json").read_text())["BTCUSDT-trades.csv"]
        if o != "ok"
    )
    namespace = f"ingestk{uuid.uuid4().hex[:8]}"
    names = TopicNames(namespace)
    create_topics(kafka_bootstrap, names)

    _ingest(
        {"TICKPIPE_INGEST_FILE": ",".join(map(str, files)), "TICKPIPE_INGEST_EXCHANGE": "binance"},
        kafka_bootstrap,
        namespace,
        tmp_path / "logs",
    )

    records = _drain(kafka_bootstrap, names, want=inputs)
    published = len(records[TRADES]) + len(records[QUOTES])
    assert published + len(records[DLQ]) == inputs
    assert len(records[TRADES]) == 2_001 + 2  # nautilus' trades and the corpus' two good lines
    assert len(records[QUOTES]) == 451
    letters = [orjson.loads(v) for v in records[DLQ]]
    assert Counter(d["reason"] for d in letters) == expected_reasons
    assert {d["source"] for d in letters} == {
        "file:btcusdt-trades.parquet+btcusdt-quotes.parquet+BTCUSDT-trades.csv"
    }
    trade_ids = [orjson.loads(v)["trade_id"] for v in records[TRADES]]
    assert len(set(trade_ids)) == len(trade_ids)
