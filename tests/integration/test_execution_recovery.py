"""kill -9 of the execution service (paper mode) with resting limit orders while trades fill
them, against real Kafka and Redis: after the restart executions.v1 equals an uninterrupted
run's — no order acknowledged twice, no fill counted twice, none lost."""

from __future__ import annotations

import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
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
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import Event, OrderRequest, OrderType, QuoteTick, TradeTick
from tickpipe.processes import ServiceProcesses
from tickpipe.runner import encode_emit
from tickpipe.service import Emit
from tickpipe.topics import EXECUTIONS, ORDERS, QUOTES, TRADES, TopicNames
from tickpipe_execution.domain.paper import PaperConfig, PaperExchange
from tickpipe_execution.handlers import ExecutionHandler

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ORDERS_TOTAL = 24
TRADES_TOTAL = 400
Row = tuple[str, str, str, str, str | None]  # client id, status, cum, last qty, trade id


def _inputs() -> tuple[list[QuoteTick], list[OrderRequest], list[TradeTick]]:
    ids = EventIds(SimClock(1), seed=11)
    t0 = time.time_ns()
    base = {"exchange": "binance", "symbol": "BTC/USDT"}
    quotes = [
        QuoteTick(
            event_id=ids.new(),
            ts_event=t0,
            ts_init=t0,
            bid=60_000.0,
            bid_size=1.0,
            ask=60_000.5,
            ask_size=1.0,
            **base,
        )
    ]
    orders = []
    for i in range(ORDERS_TOTAL):
        buy = i % 2 == 0
        price = Decimal(59_990 - 5 * i) if buy else Decimal(60_010 + 5 * i)
        orders.append(
            OrderRequest(
                event_id=ids.new(),
                ts_event=t0,
                ts_init=t0,
                client_order_id=f"tp-crash-{i}",
                account="paper",
                strategy_id="crash",
                side="buy" if buy else "sell",
                order_type=OrderType.LIMIT,
                quantity=Decimal("0.05"),
                limit_price=price,
                reference_price=Decimal(60_000),
                **base,
            )
        )
    trades = []
    for i in range(TRADES_TOTAL):
        # The price swings ever wider, through more and more resting limits on both sides.
        swing = (i // 2) * 0.9
        px = 60_000.0 - swing if i % 2 == 0 else 60_000.0 + swing
        trades.append(
            TradeTick(
                event_id=ids.new(),
                ts_event=t0 + i * 1_000_000,
                ts_init=t0 + i * 1_000_000,
                trade_id=str(i),
                price=px,
                size=0.013,
                side="sell" if i % 2 == 0 else "buy",
                **base,
            )
        )
    return quotes, orders, trades


def _row(d: dict[str, object]) -> Row:
    tid = d.get("trade_id")
    return (
        str(d["client_order_id"]),
        str(d["status"]),
        str(Decimal(str(d["cum_qty"]))),
        str(Decimal(str(d["last_qty"]))),
        None if tid is None else str(tid),
    )


def _publish(producer: Any, trades: list[TradeTick]) -> None:
    for t in trades:
        producer.send(encode_emit(Emit(TRADES, t), ()))
        producer.flush()
        time.sleep(0.003)  # a paced stream, not a wait


def _expected(events: list[Event]) -> list[Row]:
    handler = ExecutionHandler(EventIds(SimClock(1), seed=1), PaperExchange(PaperConfig()))
    topics = {QuoteTick: QUOTES, OrderRequest: ORDERS, TradeTick: TRADES}
    out = []
    for e in events:
        for emit in handler.handle(e, topics[type(e)], e.ts_event):
            out.append(_row(orjson.loads(emit.event.model_dump_json())))
    return out


def test_execution_when_killed_while_fills_arrive_then_ledger_equals_uninterrupted_run(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    namespace = f"ex{uuid.uuid4().hex[:8]}"
    names = TopicNames(namespace)
    create_topics(kafka_bootstrap, names)
    quotes, orders, trades = _inputs()
    expected = _expected([*quotes, *orders, *trades])
    fills = [r for r in expected if r[4] is not None]
    assert len(fills) > 60 and any(r[1] == "partially_filled" for r in fills)

    producer = KafkaBus(kafka_bootstrap, names).producer("test")
    env = service_env(kafka_bootstrap, redis_url, namespace)
    procs = ServiceProcesses(env, tmp_path / "logs", base_port=None)
    cache = redis.Redis.from_url(redis_url)
    try:
        procs.start("execution")
        procs.wait_ready(["execution"])
        # Topics are not ordered against each other: quotes, then orders, then trades.
        for batch, topic in ((quotes, QUOTES), (orders, ORDERS)):
            for e in batch:
                producer.send(encode_emit(Emit(topic, e), ()))
            producer.flush()
            wait_consumed(procs, "execution", topic, len(batch))
        half = TRADES_TOTAL // 2
        for t in trades[:half]:
            producer.send(encode_emit(Emit(TRADES, t), ()))
            producer.flush()
            time.sleep(0.005)
        wait_snapshot(procs, cache, namespace, "execution")
        # Fills keep arriving while it dies, killed where records came after its snapshot.
        moving = threading.Thread(target=_publish, args=(producer, trades[half : half + 60]))
        moving.start()
        try:
            wait_consumed(procs, "execution", TRADES, half + 5)
            pending = kill_with_replay_pending(
                procs, "execution", cache, kafka_bootstrap, names, namespace
            )
        finally:
            moving.join(60)
        for t in trades[half + 60 :]:
            producer.send(encode_emit(Emit(TRADES, t), ()))
        producer.flush()
        procs.start("execution")
        got = collect(kafka_bootstrap, names, EXECUTIONS, b"execution", _row, len(expected))
        restarted_log = procs.log("execution")
        replays = replayed(procs, "execution")
    finally:
        procs.stop()
        producer.close()
        cache.close()

    acks = [r[0] for r in got if r[1] == "acknowledged"]
    trade_ids = [r[4] for r in got if r[4] is not None]
    assert len(acks) == len(set(acks)) == ORDERS_TOTAL, "an order was placed twice or lost"
    assert len(trade_ids) == len(set(trade_ids)), "a fill was counted twice"
    assert got == expected
    # State from the snapshot, then a replay of the records committed after it, whose reports
    # (already on executions.v1) were not published again.
    assert '"msg":"state restored"' in restarted_log
    assert replays >= pending > 0, f"{replays} records replayed, {pending} committed after"
