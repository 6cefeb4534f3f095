"""Parity: the backtest and a Kafka replay through the five running services, on the same
slice of real data, produce the same orders (and the same fills).

The Kafka run is the deployment: five processes, the real broker, Redis, ingest replaying
the file at full speed on the wall clock, topics interleaving however the consumers' fetches
return. The backtest is one process on the in-memory bus with a simulated clock. Event ids
differ (each run draws its own), and so do client order ids made from them; everything
an order says about the trade is compared.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.recovery import service_env
from tickpipe.backtest.config import BacktestConfig
from tickpipe.backtest.engine import run_backtest
from tickpipe.bus.admin import create_topics
from tickpipe.bus.kafka import KafkaBus
from tickpipe.processes import ServiceProcesses
from tickpipe.runner import EVENT_TYPE
from tickpipe.topics import EXECUTIONS, ORDERS, TopicNames

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SAMPLE = Path("data/sample/binance-spot-btcusdt-20240808.gz")
START, END = datetime(2024, 8, 8, 23, 55), datetime(2024, 8, 8, 23, 58)
SERVICES = ["feature", "inference", "risk", "execution"]
# Controls that judge how fast the venue answers can only agree when it answers at once:
# the paper exchange fills at market time in both runs, but over Kafka risk hears of a
# fill some milliseconds later, and meanwhile the order still counts as open (open-order
# notional) and its answer as slow or not (the breaker). Every other control stays on.
TIMING = {"max_open_notional": "none", "account_max_open_notional": "none", "cb_slow_s": 3600}


def _order(o: dict[str, Any]) -> tuple[Any, ...]:
    return (
        o["ts_event"],
        o["symbol"],
        o["side"],
        o["order_type"],
        o["quantity"],
        o["limit_price"],
        o["reference_price"],
        o["market_seq"],
    )


def _fill(e: dict[str, Any]) -> tuple[Any, ...]:
    return (e["ts_event"], e["side"], e["last_qty"], e["last_price"], e["fee"], e["status"])


def _read(bootstrap: str, names: TopicNames, idle_s: float = 8.0) -> tuple[list[Any], list[Any]]:
    """Every committed order and fill on the topics, until nothing new for `idle_s`."""
    link = KafkaBus(bootstrap, names).link(
        group=f"{uuid.uuid4().hex}.parity", topics=[ORDERS, EXECUTIONS], client_id="parity"
    )
    orders: list[Any] = []
    fills: list[Any] = []
    last = time.monotonic()
    try:
        while time.monotonic() - last < idle_s:
            records = link.poll(1000, 0.5)
            if records:
                last = time.monotonic()
            for r in records:
                body = orjson.loads(r.value)
                if r.topic.endswith(ORDERS):
                    orders.append(_order(body))
                elif r.header(EVENT_TYPE) == b"execution" and body["last_qty"] != "0":
                    fills.append(_fill(body))
    finally:
        link.close()
    return orders, fills


def test_backtest_when_compared_with_a_kafka_replay_places_the_same_orders(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    config = BacktestConfig(data=(SAMPLE,), start=START, end=END, settings={"risk": TIMING})
    backtest = run_backtest(config)
    expected_orders = [_order(orjson.loads(r.value)) for r in backtest.orders]
    expected_fills = [
        _fill(e)
        for e in (orjson.loads(r.value) for r in backtest.executions)
        if e["last_qty"] != "0"
    ]
    assert len(expected_orders) >= 15  # the slice really trades

    namespace = f"par{uuid.uuid4().hex[:8]}"
    names = TopicNames(namespace)
    create_topics(kafka_bootstrap, names)
    env = service_env(
        kafka_bootstrap,
        redis_url,
        namespace,
        TICKPIPE_INGEST_FILE=str(SAMPLE),
        TICKPIPE_INGEST_START=START.isoformat(),
        TICKPIPE_INGEST_END=END.isoformat(),
        **{f"TICKPIPE_RISK_{k.upper()}": str(v) for k, v in TIMING.items()},
    )
    procs = ServiceProcesses(env, tmp_path / "logs", base_port=None)
    try:
        for name in SERVICES:
            procs.start(name)
        procs.wait_ready(SERVICES)
        procs.start("ingest")
        assert procs.procs["ingest"].wait(120) == 0, procs.log("ingest")[-2000:]
        orders, fills = _read(kafka_bootstrap, names)
    finally:
        codes = procs.stop()
    assert all(code == 0 for code in codes.values()), codes

    logs = {n: procs.log(n)[-1500:] for n in SERVICES}
    assert orders == expected_orders, logs
    assert fills == expected_fills
