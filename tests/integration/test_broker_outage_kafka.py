"""The Kafka broker killed for 20 s mid-stream under the whole pipeline: five services as
processes on the sample data, a broker of this test's own (a JVM from the project's Maven
jars, on free ports, in tmp), SIGKILLed and started again on the same data and ports.

Afterwards the fills on executions.v1 are exactly those of an uninterrupted run on the same
data (the backtest, as in test_backtest_parity.py): none lost, none twice. A service that
exits on a bus failure (crash-only: `run_service` returns 1) is restarted, as a supervisor
would; the restarts are written to `outage-summary.json` in the test's tmp dir. Every
service's /readyz says 503 while the broker is away, and 200 once it is back.

What it found, now fixed and covered here:
- librdkafka can block in send_offsets_to_transaction past its timeout when the broker dies
  mid-transaction (confluentinc/librdkafka#5456): the link's watchdog exits the process
  (crash-only) after the transaction timeout, and /readyz is 503 while a call blocks;
- a synchronous offset commit blocked for as long as the broker was away, serving no
  callbacks (so /readyz stayed 200): plain links commit asynchronously, after the acks;
- a member dropped by its group (session timed out while the broker was away) that rejoined
  fetched nothing from some partitions again: a lost assignment now exits (crash-only);
- a consumer catching up on a backlog read one topic thousands of records ahead of the
  other and overran `tickpipe.arrival`'s hold limit: the runner pauses the partition that
  runs ahead (flow control);
- the paper exchange's recent-trade history was not in execution's snapshot, so an order in
  flight across a restart filled at the touch of its arrival, not its point.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.brokers import unavailable
from tests.integration.outage import (
    NS,
    Fleet,
    ReadyProbe,
    behind,
    kill_group,
    metric,
    read_topic,
)
from tests.integration.recovery import service_env
from tests.polling import wait_until
from tickpipe.backtest.config import BacktestConfig
from tickpipe.backtest.engine import run_backtest
from tickpipe.bus.admin import create_topics
from tickpipe.infra import InfraError, LocalKafka
from tickpipe.infra._process import terminate
from tickpipe.infra.kafka_local import MAIN_CLASS
from tickpipe.topics import (
    EXECUTIONS,
    FEATURES,
    ORDERS,
    QUALITY,
    QUOTES,
    SIGNALS,
    TRADES,
    TopicNames,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(420)]

SAMPLE = Path("data/sample/binance-spot-btcusdt-20240808.gz")
START, END = datetime(2024, 8, 8, 23, 55), datetime(2024, 8, 8, 23, 58)  # ~17,700 records
STREAM = ["feature", "inference", "risk", "execution"]
SERVICES = ["ingest", *STREAM]
RATE = 400  # records/s: ingest is still replaying for half a minute after the outage
OUTAGE_S = 20.0
# As in test_backtest_parity.py, the controls that judge how fast the venue answers are off
# (they cannot agree between the two runs). So are the staleness checks: they judge time in
# the pipeline, and a 20 s outage makes every signal in flight stale by design. What is left
# to differ is delivery itself: a record lost or handled twice.
RISK = {
    "max_open_notional": "none",
    "account_max_open_notional": "none",
    "cb_slow_s": 3600,
    "max_signal_age_s": 86400,
    "max_reference_age_s": 86400,
}
Fill = tuple[str, str, str, str, str, int]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalKafka]:
    """A single-node Kafka (KRaft) of this test's own: it is killed and restarted here."""
    kafka = LocalKafka(tmp_path / "kafka")
    try:
        kafka.start(timeout_s=120)
    except InfraError as exc:
        unavailable(f"no local Kafka for the broker outage test: {exc}")
    try:
        yield kafka
    finally:
        kafka.stop()


def _fill(e: dict[str, Any]) -> Fill:
    return (
        e["client_order_id"],
        e["side"],
        e["last_qty"],
        e["last_price"],
        e["fee"],
        e["ts_event"],
    )


def _expected() -> list[Fill]:
    config = BacktestConfig(data=(SAMPLE,), start=START, end=END, settings={"risk": RISK})
    reports = (orjson.loads(r.value) for r in run_backtest(config).executions)
    return [_fill(e) for e in reports if e["last_qty"] != "0"]


def _kill_broker(kafka: LocalKafka) -> None:
    """SIGKILL the broker's JVM: no controlled shutdown, its clients just lose it."""
    assert kafka.pid is not None
    pid, kafka.pid = kafka.pid, None
    kill_group(pid)
    terminate(pid, 10, MAIN_CLASS)  # reaped


def _lagging(bootstrap: str, names: TopicNames, namespace: str) -> dict[str, object]:
    """The stages that have not committed all their input, in pipeline order, with the
    partitions behind (none: every output is on its topic, since outputs are acknowledged
    before inputs are committed)."""
    stages: list[tuple[str, list[str], list[str]]] = [
        ("feature", [TRADES, QUOTES], []),
        ("inference", [FEATURES], []),
        ("risk", [SIGNALS, QUALITY], []),
        ("execution", [ORDERS, TRADES, QUOTES], [ORDERS]),
    ]
    lag = {
        service: behind(bootstrap, names, f"{namespace}.{service}", topics, transactional)
        for service, topics, transactional in stages
    }
    return {service: partitions for service, partitions in lag.items() if partitions}


def test_broker_killed_for_20s_mid_stream_then_fills_equal_an_uninterrupted_run(
    broker: LocalKafka, redis_url: str, tmp_path: Path
) -> None:
    expected = _expected()
    assert len(expected) >= 15  # the slice really trades

    namespace = f"bo{uuid.uuid4().hex[:8]}"
    names = TopicNames(namespace)
    bootstrap = broker.bootstrap
    create_topics(bootstrap, names)
    env = service_env(
        bootstrap,
        redis_url,
        namespace,
        TICKPIPE_INGEST_FILE=str(SAMPLE),
        TICKPIPE_INGEST_START=START.isoformat(),
        TICKPIPE_INGEST_END=END.isoformat(),
        TICKPIPE_INGEST_RATE=str(RATE),
        **{f"TICKPIPE_RISK_{k.upper()}": str(v) for k, v in RISK.items()},
    )
    fleet = Fleet({**env, "PYTHONFAULTHANDLER": "1"}, tmp_path / "logs")
    probe = ReadyProbe(fleet, SERVICES)
    at: dict[str, int] = {}  # when each step happened, wall ns
    try:
        _run(fleet, probe, broker, at, lambda: _lagging(bootstrap, names, namespace))
    except AssertionError as exc:
        # A service that hangs says where: every live one's stack, also in its log.
        fleet.dump_stacks(STREAM)
        stacks = {n: fleet.stacks(n) for n in STREAM}
        where = "\n".join(f"--- {n} was in:\n{s}" for n, s in stacks.items() if s)
        raise AssertionError(f"{exc}\n{where}") from exc
    finally:
        probe.stop()
        codes = fleet.stop()
        summary = _summary(fleet, probe, at, codes)
        (tmp_path / "outage-summary.json").write_text(json.dumps(summary, indent=2))
        print(json.dumps(summary))  # shown with -s
    fills = [
        _fill(r.body)
        for r in read_topic(bootstrap, names, EXECUTIONS)
        if r.event_type == "execution" and r.body["last_qty"] != "0"
    ]

    # Exactly the uninterrupted run's fills: none lost, none twice, none different.
    assert len(fills) == len(set(fills)), "a fill was published twice"
    assert fills == expected, {
        "lost": sorted(set(expected) - set(fills)),
        "extra": sorted(set(fills) - set(expected)),
        "summary": summary,
    }
    # Every service: 503 while the broker was away, 200 once it was back (ingest ends by
    # itself after the replay: its 200 is looked for while it still ran).
    down, back = (at["broker_killed"], at["broker_restarting"]), (at["broker_up"], at["drained"])
    not_503 = [n for n in SERVICES if 503 not in probe.between(n, *down)]
    not_200 = [n for n in SERVICES if 200 not in probe.between(n, *back)]
    assert not not_503 and not not_200, {
        "never 503 while the broker was away": not_503,
        "never 200 once it was back": not_200,
        "summary": summary,
    }
    assert all(code == 0 for code in codes.values()), codes


def _run(
    fleet: Fleet,
    probe: ReadyProbe,
    broker: LocalKafka,
    at: dict[str, int],
    lagging: Callable[[], dict[str, object]],
) -> None:
    """The pipeline on the sample, the broker killed mid-stream and started again after
    OUTAGE_S, then until every stage has consumed everything."""
    for name in STREAM:
        fleet.start(name)
    fleet.wait_ready(STREAM)
    fleet.supervise(STREAM)
    fleet.start("ingest")
    fleet.supervise(["ingest"], sources=["ingest"])
    probe.start()
    at["ingest_started"] = time.time_ns()
    # Mid-stream: fills already made, ingest still replaying.
    wait_until(
        lambda: metric(fleet.metrics("execution"), "tickpipe_orders_total", state="filled") >= 3,
        fleet.logs_tail,
        120,
    )
    assert not fleet.ended("ingest"), "the replay ended before the outage"
    bootstrap = broker.bootstrap
    at["broker_killed"] = time.time_ns()
    _kill_broker(broker)
    time.sleep(max(0.0, OUTAGE_S - (time.time_ns() - at["broker_killed"]) / NS))  # the outage
    at["broker_restarting"] = time.time_ns()
    broker.start(timeout_s=120)  # same data dir, same ports
    at["broker_up"] = time.time_ns()
    assert broker.bootstrap == bootstrap
    wait_until(
        lambda: all(fleet.readyz(n) == 200 for n in STREAM),
        lambda: f"not ready again: {_readiness(fleet, STREAM)}\n{fleet.logs_tail()}",
        90,
    )
    at["stream_ready"] = time.time_ns()
    wait_until(lambda: fleet.ended("ingest"), fleet.logs_tail, 180)
    at["ingest_ended"] = time.time_ns()
    wait_until(
        lambda: not lagging(),
        lambda: f"never consumed all their input: {lagging()}\n{fleet.logs_tail(chars=800)}",
        60,
        interval_s=1.0,
    )
    at["drained"] = time.time_ns()


def _summary(
    fleet: Fleet, probe: ReadyProbe, at: dict[str, int], codes: dict[str, int]
) -> dict[str, Any]:
    """What happened, for the report and for a failure's diagnosis."""
    t0 = at.get("broker_killed", at.get("ingest_started", 0))
    phases = {
        "before": (at.get("ingest_started", 0), at.get("broker_killed", 0)),
        "outage": (at.get("broker_killed", 0), at.get("broker_restarting", 0)),
        "restart": (at.get("broker_restarting", 0), at.get("broker_up", 0)),
        "after": (at.get("broker_up", 0), at.get("drained", time.time_ns())),
    }
    return {
        "seconds_from_broker_kill": {k: round((v - t0) / NS, 2) for k, v in at.items()},
        "exit_codes": fleet.restarts(),  # of the runs that ended before the stop
        "runs": fleet.runs,
        "codes_at_stop": codes,
        "readyz": {
            n: {
                phase: dict(Counter(str(s) for s in probe.between(n, *window)))
                for phase, window in phases.items()
            }
            for n in SERVICES
        },
    }


def _readiness(fleet: Fleet, names: list[str]) -> dict[str, int | None]:
    return {n: fleet.readyz(n) for n in names}
