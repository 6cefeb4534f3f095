"""kill -9 of the risk service mid-stream, against real Kafka and Redis: after the restart no
order is produced twice and none is lost — orders.v1 equals an uninterrupted run's."""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.integration.recovery import (
    collect,
    kill_with_replay_pending,
    replayed,
    service_env,
    wait_consumed,
    wait_snapshot,
)
from tickpipe.bus.admin import create_topics
from tickpipe.bus.kafka import KafkaBus
from tickpipe.bus.memory import MemoryBus
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import LiveClock
from tickpipe.ids import EventIds
from tickpipe.messages import Event, OrderRequest, Signal
from tickpipe.processes import ServiceProcesses
from tickpipe.runner import encode_emit
from tickpipe.service import Emit, ServiceContext
from tickpipe.settings import PlatformSettings
from tickpipe.topics import ORDERS, SIGNALS, TopicNames
from tickpipe_risk.app import SERVICE as RISK
from tickpipe_risk.app import build as build_risk

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SIGNALS_TOTAL = 240
# The reference run decides in a tight loop, the real one at its own pace and again on replay
# after the restart: staleness is judged on processing time, so replayed signals (and the
# touch they carry) stay fresh; every signal has one market time, so rate and duplicate
# windows are off. Nothing fills here, so open orders pile up: their notional cap is off.
ENV = {
    "TICKPIPE_RISK_MAX_REFERENCE_AGE_S": "86400",
    "TICKPIPE_RISK_MAX_SIGNAL_AGE_S": "86400",
    "TICKPIPE_RISK_MAX_ORDERS_PER_SYMBOL": "0",
    "TICKPIPE_RISK_MAX_ORDERS_GLOBAL": "0",
    "TICKPIPE_RISK_DUPLICATE_WINDOW_S": "0",
    "TICKPIPE_RISK_MAX_OPEN_NOTIONAL": "none",
    "TICKPIPE_RISK_ACCOUNT_MAX_OPEN_NOTIONAL": "none",
}


def _inputs(seed: int) -> list[Signal]:
    rng = random.Random(seed)
    ids = EventIds(LiveClock(), seed=seed)
    now = time.time_ns()
    base = {"exchange": "binance", "symbol": "BTC/USDT", "ts_event": now, "ts_init": now}
    touch = {"bid": 60_019.0, "ask": 60_019.5}  # what the feature saw when the bar closed
    signals = []
    for _ in range(SIGNALS_TOTAL):
        p = rng.choice([0.1, 0.3, 0.5, 0.7, 0.9])
        direction = 1 if p > 0.55 else -1 if p < 0.45 else 0
        signals.append(
            Signal(
                event_id=ids.new(),
                strategy_id="baseline",
                model_version="m:v1",
                direction=direction,
                probability=p,
                score=2 * p - 1,
                feature_ts=now,
                price=60_000.0,
                volatility=0.0004,
                **base,
                **touch,
            )
        )
    return signals


def _expected(signals: list[Signal], monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    clock = LiveClock()
    handler = build_risk(
        ServiceContext(
            PlatformSettings(),
            MemoryBus(),
            MemoryCache(),
            clock,
            EventIds(clock),
        ),
        RISK.settings_from_env(),  # as the process: ENV over the defaults
    )
    out: list[Event] = []
    for s in signals:
        out += [e.event for e in handler.handle(s, SIGNALS, clock.now_ns()) if e.topic == ORDERS]
    return [
        (o.client_order_id, o.side, str(o.quantity)) for o in out if isinstance(o, OrderRequest)
    ]


def _publish(producer: Any, signals: list[Signal]) -> None:
    for s in signals:
        producer.send(encode_emit(Emit(SIGNALS, s), ()))
        producer.flush()
        time.sleep(0.01)  # a paced stream, not a wait


def _order_row(o: dict[str, Any]) -> tuple[str, str, str]:
    return (o["client_order_id"], o["side"], o["quantity"])


@dataclass(frozen=True)
class KillRun:
    got: list[tuple[str, str, str]]  # orders.v1 after the restart, in order
    first_log: str  # the killed process's log
    restarted_log: str
    replays: float  # tickpipe_replayed_total of the restarted process
    pending: int  # records committed after the last snapshot when it was killed


def kill_and_restart(
    procs: ServiceProcesses,
    producer: Any,
    cache: Any,
    bootstrap: str,
    names: TopicNames,
    namespace: str,
    signals: list[Signal],
    expected_orders: int,
) -> KillRun:
    """The scenario: risk takes half the signals, is SIGKILLed mid-stream with a replay
    pending (records committed after its snapshot), restarts, and the rest follow."""
    procs.start("risk")
    procs.wait_ready(["risk"])
    half = SIGNALS_TOTAL // 2
    for s in signals[:half]:
        producer.send(encode_emit(Emit(SIGNALS, s), ()))
        producer.flush()
        time.sleep(0.02)
    wait_snapshot(procs, cache, namespace, "risk")
    # Keep the stream moving while it dies, killed where records came after its snapshot.
    moving = threading.Thread(target=_publish, args=(producer, signals[half : half + 40]))
    moving.start()
    try:
        wait_consumed(procs, "risk", SIGNALS, half + 5)
        pending = kill_with_replay_pending(procs, "risk", cache, bootstrap, names, namespace)
    finally:
        moving.join(60)
    first_log = procs.log("risk")
    for s in signals[half + 40 :]:
        producer.send(encode_emit(Emit(SIGNALS, s), ()))
    producer.flush()
    procs.start("risk")
    got = collect(bootstrap, names, ORDERS, b"order", _order_row, expected_orders)
    return KillRun(got, first_log, procs.log("risk"), replayed(procs, "risk"), pending)


def test_risk_when_killed_mid_stream_then_orders_are_exactly_those_of_an_uninterrupted_run(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = f"rk{uuid.uuid4().hex[:8]}"
    names = TopicNames(namespace)
    create_topics(kafka_bootstrap, names)
    signals = _inputs(seed=7)
    expected = _expected(signals, monkeypatch)
    assert len(expected) > 40  # the scenario really trades

    producer = KafkaBus(kafka_bootstrap, names).producer("test")
    env = service_env(kafka_bootstrap, redis_url, namespace, **ENV)
    procs = ServiceProcesses(env, tmp_path / "logs", base_port=None)
    cache = redis.Redis.from_url(redis_url)
    try:
        run = kill_and_restart(
            procs, producer, cache, kafka_bootstrap, names, namespace, signals, len(expected)
        )
    finally:
        procs.stop()
        producer.close()
        cache.close()
    got, restarted_log, replays, pending = run.got, run.restarted_log, run.replays, run.pending

    assert len(got) == len(set(got)), "an order was produced twice"
    assert got == expected
    # The restarted instance rebuilt its state from the snapshot plus a replay of the records
    # committed after it, whose orders (already on orders.v1) it did not publish again.
    assert '"msg":"state restored"' in restarted_log
    assert replays >= pending > 0, f"{replays} records replayed, {pending} committed after"
