"""kill -9 of the execution service in live mode, against real Kafka and Redis and the local
fake exchange (REST + user-data stream): limit orders rest at the exchange and fill while
the process runs, while it is dead and after it restarts. Afterwards the OMS state in the
ledger (`executions.v1`, folded) equals the exchange's, every client order id was sent to the
exchange once, and every exchange trade id is counted once."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.execution.fake_binance import FakeBinance
from tests.integration.recovery import collect, replayed, service_env, wait_consumed
from tests.polling import wait_until
from tickpipe.bus.admin import create_topics
from tickpipe.bus.kafka import KafkaBus
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import ExecutionReport, OrderRequest, OrderStatus, OrderType, TradeTick
from tickpipe.processes import ServiceProcesses
from tickpipe.runner import encode_emit
from tickpipe.service import Emit
from tickpipe.topics import EXECUTIONS, ORDERS, TRADES, TopicNames
from tickpipe_execution.domain.ledger import replay
from tickpipe_execution.domain.orders import Order

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ORDERS_TOTAL = 16
STATUS = {
    "NEW": OrderStatus.ACKNOWLEDGED,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELLED,
}
BASE = {"exchange": "binance", "symbol": "BTC/USDT"}
P = "TICKPIPE_EXECUTION_"


def _orders(ids: EventIds, t0: int) -> list[OrderRequest]:
    return [
        OrderRequest(
            event_id=ids.new(),
            ts_event=t0,
            ts_init=t0,
            client_order_id=f"tp-live-{i}",
            account="live",
            strategy_id="crash",
            side="buy" if i % 2 == 0 else "sell",
            order_type=OrderType.LIMIT,
            quantity=Decimal("0.1"),  # ten fills of 0.01
            limit_price=Decimal(59_990 - i) if i % 2 == 0 else Decimal(60_010 + i),
            reference_price=Decimal(60_000),
            **BASE,
        )
        for i in range(ORDERS_TOTAL)
    ]


class Market:
    """Market trades on md.trades.v1 (they pace the service's polling and stream draining)."""

    def __init__(self, producer: Any, t0: int) -> None:
        self.producer = producer
        self.ts = t0
        self.ids = EventIds(SimClock(1), seed=12)
        self.n = 0

    def trade(self) -> None:
        self.ts += 100_000_000  # 100 ms of market time per trade
        self.n += 1
        t = TradeTick(
            event_id=self.ids.new(),
            ts_event=self.ts,
            ts_init=self.ts,
            trade_id=str(self.n),
            price=60_000.0,
            size=0.01,
            side="buy",
            **BASE,
        )
        self.producer.send(encode_emit(Emit(TRADES, t), ()))
        self.producer.flush()


class Filler(threading.Thread):
    """The exchange fills resting orders in 0.01 steps, round robin, up to `upto` fills."""

    def __init__(self, fake: FakeBinance, orders: list[str]) -> None:
        super().__init__(daemon=True)
        self.fake, self.orders = fake, orders
        self.upto = 0
        self.fills = 0
        self.done = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.done.is_set():
            if self.fills >= self.upto:
                time.sleep(0.005)
                continue
            coid = self.orders[i % len(self.orders)]
            i += 1
            o = self.fake.orders[coid]
            if o["status"] in ("NEW", "PARTIALLY_FILLED"):
                self.fake.fill(coid, "0.01", o["price"])
                self.fills += 1
                time.sleep(0.01)

    def until(self, n: int, market: Market, upto: int | None = None) -> None:
        """Fill up to `n` (and on to `upto`) while the market trades (pacing the service)."""
        self.upto = upto or n
        while self.fills < n:
            market.trade()
            time.sleep(0.02)


def _ledger(bootstrap: str, names: TopicNames) -> list[ExecutionReport]:
    return collect(
        bootstrap, names, EXECUTIONS, b"execution", ExecutionReport.model_validate, 0, 20
    )


def _fills(bootstrap: str, names: TopicNames, fake: FakeBinance) -> tuple[int, int]:
    """Fills in the ledger, and fills the exchange made, while the filler holds still."""
    return len([r for r in _ledger(bootstrap, names) if r.trade_id]), len(fake.trades)


def _live_env(
    bootstrap: str, redis_url: str, namespace: str, fake: FakeBinance, **extra: str
) -> dict[str, str]:
    live = {
        f"{P}MODE": "live",
        f"{P}API_KEY": "test-key",
        f"{P}API_SECRET": "test-secret",
        f"{P}REST_URL": fake.base_url,
        f"{P}WS_URL": fake.ws_url,
        f"{P}TIMEOUT_MS": "2000",
        f"{P}POLL_MS": "500",
    }
    return service_env(bootstrap, redis_url, namespace, **live, **extra)


def _settled(
    bootstrap: str, names: TopicNames, fake: FakeBinance, market: Market
) -> tuple[list[ExecutionReport], dict[str, Order]]:
    """The ledger and its fold once they agree with the exchange (or after 90 s)."""
    deadline = time.monotonic() + 90
    while True:
        for _ in range(10):
            market.trade()
        ledger = _ledger(bootstrap, names)
        oms = replay(ledger)
        if not _mismatches(fake, oms) or time.monotonic() > deadline:
            return ledger, oms


def _assert_consistent(
    fake: FakeBinance, ledger: list[ExecutionReport], oms: dict[str, Order], coids: list[str]
) -> None:
    assert _mismatches(fake, oms) == [], "the OMS and the exchange disagree"
    creates = Counter({c: fake.creates[c] for c in coids})
    assert set(creates.values()) == {1}, f"an order was sent twice: {creates}"
    trade_ids = [r.trade_id for r in ledger if r.trade_id]
    assert len(trade_ids) == len(set(trade_ids)), "a fill was counted twice"
    assert sorted(trade_ids) == sorted(t["id"] for t in fake.trades), "a fill was lost"
    acks = [r.client_order_id for r in ledger if r.status is OrderStatus.ACKNOWLEDGED]
    assert sorted(acks) == sorted(coids), "an order acknowledged twice or never"


def _mismatches(fake: FakeBinance, oms: dict[str, Order]) -> list[str]:
    """Where the OMS (the folded ledger) and the exchange disagree."""
    out = []
    for coid, o in fake.orders.items():
        ours = oms.get(coid)
        trades = [t["id"] for t in fake.trades if t["orderId"] == o["orderId"]]
        there = (STATUS[o["status"]], Decimal(o["executedQty"]), sorted(trades))
        here = None if ours is None else (ours.status, ours.cum_qty, sorted(ours.trade_ids))
        if here != there:
            out.append(f"{coid}: oms {here} != exchange {there}")
    return out


def test_live_execution_when_killed_while_fills_arrive_then_oms_equals_exchange(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    namespace = f"exl{uuid.uuid4().hex[:8]}"
    names = TopicNames(namespace)
    create_topics(kafka_bootstrap, names)
    fake = FakeBinance().start()
    t0 = time.time_ns()
    orders = _orders(EventIds(SimClock(1), seed=21), t0)
    coids = [o.client_order_id for o in orders]
    producer = KafkaBus(kafka_bootstrap, names).producer("test")
    market = Market(producer, t0)
    live = {f"{P}SYMBOLS": '["BTC/USDT"]', f"{P}STREAM_POLL_MS": "3000"}
    env = _live_env(kafka_bootstrap, redis_url, namespace, fake, **live)
    procs = ServiceProcesses(env, tmp_path / "logs", base_port=None)
    filler = Filler(fake, coids[: ORDERS_TOTAL - 4])  # 120 fills at most; four never fill
    try:
        procs.start("execution")
        procs.wait_ready(["execution"])
        for o in orders:
            producer.send(encode_emit(Emit(ORDERS, o), ()))
        producer.flush()
        wait_consumed(procs, "execution", ORDERS, ORDERS_TOTAL)
        wait_until(lambda: len(fake.placed) == ORDERS_TOTAL, lambda: procs.log("execution"))

        filler.start()
        filler.until(40, market)  # fills stream in while the service runs...
        reported_before, made_before = _fills(kafka_bootstrap, names, fake)
        filler.until(60, market, upto=70)
        procs.procs["execution"].kill()  # SIGKILL mid-burst: no flush, no commit, no cancel
        procs.procs["execution"].wait(10)
        filler.until(85, market)  # ...and while it is dead...
        fake.cancel_at_exchange(coids[-1])  # an operator cancels one on the website
        procs.start("execution")
        for o in orders[:4]:  # an upstream replay of orders already placed
            producer.send(encode_emit(Emit(ORDERS, o), ()))
        filler.until(110, market)  # ...and after the restart
        filler.done.set()

        ledger, oms = _settled(kafka_bootstrap, names, fake, market)
        restarted_log, replays = procs.log("execution"), replayed(procs, "execution")
        resting = sorted(o["clientOrderId"] for o in fake.open_orders())
        procs.stop()  # graceful, without cancel-on-shutdown: the resting orders stay
        still = sorted(o["clientOrderId"] for o in fake.open_orders())
    finally:
        procs.stop()
        producer.close()
        fake.stop()

    # Some fills reported before the kill, and no more than the exchange had made by then.
    assert 0 < reported_before <= made_before, f"{reported_before} of {made_before} reported"
    assert filler.fills == 110 and len(fake.trades) == 110
    _assert_consistent(fake, ledger, oms, coids)
    assert set(coids[-4:-1]) <= set(resting)
    assert still == resting, "an order was cancelled without cancel-on-shutdown"
    assert '"msg":"OMS rebuilt from the ledger"' in restarted_log
    # No snapshot, so nothing replayed: the records after the last commit are processed
    # afresh and their reports published. A replay would drop them, fills made while the
    # process was dead among them, and the ledger would lose them.
    assert "state restored" not in restarted_log
    assert replays == 0, f"{replays} records replayed: their reports were not published"


def test_live_execution_when_opted_in_cancels_on_stream_loss_and_on_graceful_stop(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    namespace = f"exd{uuid.uuid4().hex[:8]}"
    names = TopicNames(namespace)
    create_topics(kafka_bootstrap, names)
    fake = FakeBinance().start()
    t0 = time.time_ns()
    orders = _orders(EventIds(SimClock(1), seed=31), t0)
    first, second = orders[:3], orders[3:5]
    producer = KafkaBus(kafka_bootstrap, names).producer("test")
    market = Market(producer, t0)
    opt_in = {
        f"{P}CANCEL_ON_DISCONNECT": "true",
        f"{P}DISCONNECT_GRACE_MS": "500",
        f"{P}CANCEL_ON_SHUTDOWN": "true",
    }
    env = _live_env(kafka_bootstrap, redis_url, namespace, fake, **opt_in)
    procs = ServiceProcesses(env, tmp_path / "logs", base_port=None)
    log = lambda: procs.log("execution")[-3000:]  # noqa: E731
    try:
        procs.start("execution")
        procs.wait_ready(["execution"])
        for o in first:
            producer.send(encode_emit(Emit(ORDERS, o), ()))
        producer.flush()
        wait_until(lambda: len(fake.open_orders()) == 3 and len(fake.streams) == 1, log)

        fake.drop_streams(refuse=True)  # the exchange connection is lost and stays lost
        wait_until(lambda: fake.open_orders() == [], log, timeout_s=10)
        fake.refuse_streams = False  # it comes back: the service resubscribes, polls, reports
        reported: list[ExecutionReport] = []

        def cancels_reported() -> bool:
            market.trade()
            reported[:] = _ledger(kafka_bootstrap, names)
            return sum(r.status is OrderStatus.CANCELLED for r in reported) == 3

        wait_until(cancels_reported, log, timeout_s=60)
        for o in second:
            producer.send(encode_emit(Emit(ORDERS, o), ()))
        producer.flush()
        wait_until(lambda: len(fake.open_orders()) == 2, log)
        codes = procs.stop()  # SIGTERM: a graceful stop
        stopped_log = procs.log("execution")
    finally:
        procs.stop()
        producer.close()
        fake.stop()

    assert codes == {"execution": 0}
    assert fake.open_orders() == []  # cancelled on the way out
    assert [fake.orders[o.client_order_id]["status"] for o in second] == ["CANCELED"] * 2
    assert fake.subscriptions >= 2  # subscribed again after the outage
    assert "shutting down: cancelling all open orders" in stopped_log
