"""Redis going away under risk and execution, against real Kafka and a dedicated
redis-server (the session's Redis is never touched): Kafka is the source of truth, Redis a
cache that may be flushed or down.

- Flushed: with the kill switch on, Redis emptied (FLUSHALL) and risk and execution
  restarted, new orders are still refused, and risk's books (positions, realized PnL, fees)
  and open orders are those folded from the executions.v1 ledger, to the decimal.
- Down for 30 s: every signal still gets exactly one decision; those decided while Redis
  is away refuse with `state_unavailable`; approvals resume once it answers again.
"""

from __future__ import annotations

import base64
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from tests.integration.outage import (
    NS,
    Fleet,
    caught_up,
    kill_group,
    metric,
    read_topic,
)
from tests.integration.recovery import service_env
from tests.polling import wait_until
from tickpipe.bus.admin import create_topics
from tickpipe.bus.kafka import KafkaBus
from tickpipe.cache.resilient import MAX_PROBE_INTERVAL_S
from tickpipe.clock import LiveClock
from tickpipe.ids import EventIds
from tickpipe.infra import LocalRedis
from tickpipe.infra._process import terminate
from tickpipe.infra.redis_local import PROCESS_NAME
from tickpipe.messages import (
    ControlAction,
    ControlCommand,
    Event,
    OrderRequest,
    OrderType,
    QuoteTick,
    Signal,
    TradeTick,
)
from tickpipe.runner import encode_emit
from tickpipe.service import Emit
from tickpipe.topics import (
    EXECUTIONS,
    ORDERS,
    QUOTES,
    RISK_DECISIONS,
    SIGNALS,
    TRADES,
    TopicNames,
)
from tickpipe_api.control import BusControlPublisher

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(240)]

ACCOUNT = "paper"
KEY = "binance:BTC/USDT"
INSTRUMENT = {"exchange": "binance", "symbol": "BTC/USDT"}
# Controls that would refuse for reasons other than the ones under test are off: the
# stream's signals are all fresh but the machine may be slow (staleness); nothing answers
# orders in the outage test, so open orders pile up (open notional, the breaker's slow
# answers); signals come faster than the default order rates (throttles, duplicate window).
RISK_ENV = {
    "TICKPIPE_RISK_ACCOUNT": ACCOUNT,
    "TICKPIPE_RISK_MAX_REFERENCE_AGE_S": "86400",
    "TICKPIPE_RISK_MAX_SIGNAL_AGE_S": "86400",
    "TICKPIPE_RISK_MAX_ORDERS_PER_SYMBOL": "0",
    "TICKPIPE_RISK_MAX_ORDERS_GLOBAL": "0",
    "TICKPIPE_RISK_DUPLICATE_WINDOW_S": "0",
    "TICKPIPE_RISK_MAX_OPEN_NOTIONAL": "none",
    "TICKPIPE_RISK_ACCOUNT_MAX_OPEN_NOTIONAL": "none",
    "TICKPIPE_RISK_CB_SLOW_S": "3600",
}
# The touch each signal carries (risk prices on it) and the one execution's paper exchange
# sees on md.quotes.v1: 5 bps through the signal's mid, a buy limit (60049.25) sits under
# the venue's ask and rests; a sell limit (59989.24) is under its bid and fills at once.
SIGNAL_TOUCH = {"bid": 60_019.0, "ask": 60_019.5}
VENUE_BID = 60_060.0  # its ask is 10 above
THROUGH = 60_040.0  # a print under the buy limits: fills the resting buys (maker)
ENDED = {"filled", "rejected", "cancelled", "expired"}


@pytest.fixture
def dedicated_redis(tmp_path: Path) -> Iterator[LocalRedis]:
    """A redis-server of this test's own, on a free port in tmp: flushed and killed here."""
    server = LocalRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _signal(ids: EventIds, direction: int) -> Signal:
    now = time.time_ns()
    return Signal(
        event_id=ids.new(),
        ts_event=now,
        ts_init=now,
        strategy_id="outage",
        model_version="m:v1",
        direction=direction,
        probability=0.5 + 0.3 * direction,
        score=0.6 * direction,
        feature_ts=now,
        price=60_000.0,
        volatility=0.0004,
        **INSTRUMENT,
        **SIGNAL_TOUCH,
    )


class Stream:
    """Publishes on a paced timer until stopped: each tick a signal (directions alternate,
    so every one wants to trade), and optionally a trade print; keeps what it sent."""

    def __init__(self, producer: Any, every_s: float, with_trades: bool = False) -> None:
        self._producer = producer
        self._every = every_s
        self._trades = with_trades
        self._ids = EventIds(LiveClock())
        self.signals: list[tuple[str, int]] = []  # (event_id, when it was sent: wall ns)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def start(self) -> Stream:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            i = 0
            while not self._stop.is_set():
                s = _signal(self._ids, 1 if i % 2 == 0 else -1)
                self._producer.send(encode_emit(Emit(SIGNALS, s), ()))
                if self._trades:
                    now = time.time_ns()
                    t = TradeTick(
                        event_id=self._ids.new(),
                        ts_event=now,
                        ts_init=now,
                        trade_id=f"flow-{i}",
                        price=THROUGH,
                        size=0.01,
                        side="sell",
                        **INSTRUMENT,
                    )
                    self._producer.send(encode_emit(Emit(TRADES, t), ()))
                self._producer.flush()
                self.signals.append((s.event_id, time.time_ns()))
                i += 1
                self._stop.wait(self._every)  # the stream's pace, not a synchronisation
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def stop(self) -> list[tuple[str, int]]:
        self._stop.set()
        self._thread.join(30)
        assert self.error is None, f"the publisher failed: {self.error!r}"
        return list(self.signals)


def _send(producer: Any, topic: str, *events: Event) -> None:
    for e in events:
        producer.send(encode_emit(Emit(topic, e), ()))
    producer.flush()


def _decisions(fleet: Fleet, reason: str) -> float:
    return metric(fleet.metrics("risk"), "tickpipe_risk_decisions_total", reason=reason)


# -- the ledger, folded independently (average cost, fills counted once) -----------------------


@dataclass
class Book:
    qty: Decimal = Decimal(0)
    avg_price: Decimal = Decimal(0)
    realized: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)

    def fill(self, signed: Decimal, price: Decimal, fee: Decimal) -> None:
        self.fees += fee
        if self.qty == 0 or (self.qty > 0) == (signed > 0):
            total = self.qty + signed
            self.avg_price = (self.avg_price * abs(self.qty) + price * abs(signed)) / abs(total)
            self.qty = total
            return
        closed = min(abs(signed), abs(self.qty))
        self.realized += (price - self.avg_price) * closed * (1 if self.qty > 0 else -1)
        left = self.qty + signed
        if left == 0:
            self.avg_price = Decimal(0)
        elif (left > 0) != (self.qty > 0):
            self.avg_price = price
        self.qty = left


@dataclass
class Ledger:
    books: dict[str, Book] = field(default_factory=dict)
    fills: int = 0
    open_orders: dict[str, Decimal] = field(default_factory=dict)  # client id -> signed leaves


def fold(orders: list[dict[str, Any]], reports: list[dict[str, Any]]) -> Ledger:
    ledger = Ledger()
    seen: set[tuple[str, str]] = set()
    for r in reports:
        if r["account"] != ACCOUNT or Decimal(r["last_qty"]) == 0:
            continue
        ident = (r["client_order_id"], r["trade_id"] or f"cum:{r['cum_qty']}")
        if ident in seen:
            continue
        seen.add(ident)
        ledger.fills += 1
        sign = 1 if r["side"] == "buy" else -1
        key = f"{r['exchange']}:{r['symbol']}"
        book = ledger.books.setdefault(key, Book())
        book.fill(sign * Decimal(r["last_qty"]), Decimal(r["last_price"]), Decimal(r["fee"]))
    last = {r["client_order_id"]: r for r in reports}  # each order's latest report
    for o in orders:
        if o["account"] != ACCOUNT:
            continue
        report = last.get(o["client_order_id"])
        if report is not None and report["status"] in ENDED:
            continue
        done = Decimal(report["cum_qty"]) if report is not None else Decimal(0)
        leaves = Decimal(o["quantity"]) - done
        if leaves > 0:
            ledger.open_orders[o["client_order_id"]] = leaves if o["side"] == "buy" else -leaves
    return ledger


def _q(x: Decimal) -> Decimal:
    return x.quantize(Decimal("0.00000001"))


def _risk_snapshot(cache: redis.Redis, namespace: str) -> dict[str, Any] | None:
    raw = cache.get(f"{namespace}:snapshot:{namespace}.risk")
    if raw is None:
        return None
    state: dict[str, Any] = orjson.loads(base64.b64decode(orjson.loads(raw)["state"]))
    return state


# -- 1a: kill switch on, Redis flushed, risk and execution restarted -----------------------------


@dataclass
class Scene:
    """Risk and execution over the session's Kafka and this test's Redis."""

    bootstrap: str
    names: TopicNames
    fleet: Fleet
    producer: Any
    cache: redis.Redis
    ids: EventIds = field(default_factory=lambda: EventIds(LiveClock()))
    signals_sent: int = 0

    def consumed(self, service: str, topic: str) -> float:
        return metric(self.fleet.metrics(service), "tickpipe_messages_in_total", topic=topic)

    def until(self, predicate: Callable[[], bool], timeout_s: float = 30) -> None:
        wait_until(predicate, self.fleet.logs_tail, timeout_s)

    def quote(self, bid: float) -> None:
        """A new touch at the paper venue, taken by execution before anything else is sent
        (topics are not ordered against each other)."""
        now, seen = time.time_ns(), self.consumed("execution", QUOTES)
        _send(
            self.producer,
            QUOTES,
            QuoteTick(
                event_id=self.ids.new(),
                ts_event=now,
                ts_init=now,
                bid=bid,
                bid_size=5.0,
                ask=bid + 10,
                ask_size=5.0,
                **INSTRUMENT,
            ),
        )
        self.until(lambda: self.consumed("execution", QUOTES) > seen)

    def signals(self, *directions: int) -> None:
        """Signals, then until risk has decided them and execution taken its orders."""
        _send(self.producer, SIGNALS, *(_signal(self.ids, d) for d in directions))
        self.signals_sent += len(directions)
        self.until(lambda: self.consumed("risk", SIGNALS) >= self.signals_sent)
        sent = metric(self.fleet.metrics("risk"), "tickpipe_messages_out_total", topic=ORDERS)
        self.until(lambda: self.consumed("execution", ORDERS) >= sent)

    def through(self) -> None:
        """A print under every resting buy: they fill (as makers) at their limits."""
        now, seen = time.time_ns(), self.consumed("execution", TRADES)
        trade = TradeTick(
            event_id=self.ids.new(),
            ts_event=now,
            ts_init=now,
            trade_id="through",
            price=THROUGH,
            size=10.0,
            side="sell",
            **INSTRUMENT,
        )
        _send(self.producer, TRADES, trade)
        self.until(lambda: self.consumed("execution", TRADES) > seen)

    def orders_in_state(self, state: str) -> float:
        return metric(self.fleet.metrics("execution"), "tickpipe_orders_total", state=state)


def _trade_then_switch(scene: Scene) -> None:
    """Buys rest and sells fill, at a touch that moves every round (so average prices are
    not round numbers); a print fills the resting buys; a last sell fills and a last buy
    rests. Then the kill switch, as the operator API publishes it."""
    for i in range(6):
        scene.quote(VENUE_BID + 3.17 * i)
        scene.signals(1, -1)
    scene.through()
    scene.quote(VENUE_BID + 7.31)
    scene.signals(-1, 1)
    now = time.time_ns()
    command = ControlCommand(
        event_id=scene.ids.new(),
        ts_event=now,
        ts_init=now,
        action=ControlAction.KILL_SWITCH_ON,
        target="*",
        issued_by="ops",
        reason="redis outage test",
    )
    api = BusControlPublisher(KafkaBus(scene.bootstrap, scene.names).producer("api"))
    try:
        api.publish(command)
    finally:
        api.close()
    scene.until(
        lambda: (
            metric(scene.fleet.metrics("risk"), "tickpipe_risk_kill_switch", account=ACCOUNT) == 1
        )
    )
    scene.until(lambda: scene.orders_in_state("cancelled") >= 1)  # the resting buy


def _flush_and_restart(scene: Scene, flow: Stream) -> int:
    """FLUSHALL under the running services, then risk killed (SIGKILL) and execution
    stopped (SIGTERM), and started again on a cache as empty as the flush left it (what the
    old processes wrote after the flush is flushed too): no snapshot, no flag, no books.
    Returns how many of the stream's signals were sent before the restart."""
    fleet, cache = scene.fleet, scene.cache
    scene.until(lambda: _decisions(fleet, "kill_switch") >= 3)
    assert cache.dbsize() > 0  # books, snapshots, the kill-switch flag
    cache.flushall()
    flushed_at = len(flow.signals)
    scene.until(lambda: len(flow.signals) >= flushed_at + 5)
    assert fleet.kill("risk", signal.SIGKILL) == -signal.SIGKILL
    assert fleet.kill("execution", signal.SIGTERM) == 0, fleet.log("execution")[-2000:]
    cache.flushall()
    assert cache.dbsize() == 0
    restarted_at = len(flow.signals)
    fleet.start("risk")
    fleet.start("execution")
    fleet.wait_ready(["risk", "execution"])
    return restarted_at


def _stray_order(scene: Scene) -> OrderRequest:
    """An order straight onto orders.v1, as if from a risk that missed the switch."""
    now = time.time_ns()
    stray = OrderRequest(
        event_id=scene.ids.new(),
        ts_event=now,
        ts_init=now,
        client_order_id=f"tp-stray-{uuid.uuid4().hex[:8]}",
        account=ACCOUNT,
        strategy_id="outage",
        side="buy",
        order_type=OrderType.LIMIT,
        quantity=Decimal("0.01"),
        limit_price=Decimal("60100"),
        reference_price=Decimal("60019.25"),
        **INSTRUMENT,
    )
    _send(scene.producer, ORDERS, stray)
    return stray


def _books_in_cache(cache: redis.Redis, namespace: str) -> tuple[dict[str, Any], dict[str, Any]]:
    prefix = f"{namespace}:positions:{ACCOUNT}:"
    positions = {
        k.decode().removeprefix(prefix): orjson.loads(cache.get(k) or b"{}")
        for k in cache.scan_iter(match=f"{prefix}*")
    }
    return positions, orjson.loads(cache.get(f"{namespace}:pnl:{ACCOUNT}") or b"{}")


def _assert_books(
    ledger: Ledger,
    positions: dict[str, Any],
    pnl: dict[str, Any],
    snapshot: dict[str, Any] | None,
) -> None:
    # In the cache (8 decimals: what dashboards and the API read) ...
    assert set(positions) == set(ledger.books)
    for key, book in ledger.books.items():
        got = positions[key]
        assert Decimal(got["qty"]) == book.qty, (key, got, book)
        assert Decimal(got["avg_price"]) == _q(book.avg_price), (key, got, book)
        assert Decimal(got["realized"]) == _q(book.realized), (key, got, book)
        assert Decimal(got["fees"]) == _q(book.fees), (key, got, book)
    total = Book(
        realized=sum((b.realized for b in ledger.books.values()), Decimal(0)),
        fees=sum((b.fees for b in ledger.books.values()), Decimal(0)),
    )
    assert (Decimal(pnl["realized"]), Decimal(pnl["fees"])) == (
        _q(total.realized),
        _q(total.fees),
    ), (pnl, total)
    # ... and in risk's own state, its snapshot: exact decimals, open orders, the switch.
    assert snapshot is not None
    account = {k: [Decimal(x) for x in v] for k, v in snapshot["books"]["account"].items()}
    assert set(account) == set(ledger.books)
    for key, book in ledger.books.items():
        qty, avg, realized, fees, _ = account[key]
        assert (qty, avg, realized, fees) == (book.qty, book.avg_price, book.realized, book.fees)
    open_orders = {c: Decimal(o[2]) for c, o in snapshot["open_orders"].items()}
    assert open_orders == ledger.open_orders
    assert snapshot["halts"]["kill_switch"] is True, snapshot["halts"]


def _assert_refused(
    decisions: list[dict[str, Any]],
    orders: list[dict[str, Any]],
    reports: list[dict[str, Any]],
    before_restart: list[tuple[str, int]],
    after_restart: list[tuple[str, int]],
    stray: OrderRequest,
) -> None:
    """Refused, before and after the restart: no signal of the stream became an order, and
    execution's rebuilt switch refused the stray order."""
    post_switch = {e for e, _ in [*before_restart, *after_restart]}
    restarted = {e for e, _ in after_restart}
    late = [d for d in decisions if d["causation_id"] in post_switch]
    assert sum(d["causation_id"] in restarted for d in late) >= 10
    not_refused = [d for d in late if d["approved"] or "kill_switch" not in d["reasons"]]
    assert not not_refused, not_refused[:5]
    assert not [o for o in orders if o["causation_id"] in post_switch]
    stray_reports = [r for r in reports if r["client_order_id"] == stray.client_order_id]
    assert [(r["status"], r["reason"]) for r in stray_reports] == [("rejected", "kill_switch")]


def test_redis_flushed_under_kill_switch_then_restarted_services_still_refuse_and_rebuild_books(
    kafka_bootstrap: str, dedicated_redis: LocalRedis, tmp_path: Path
) -> None:
    namespace = f"rf{uuid.uuid4().hex[:8]}"
    names = TopicNames(namespace)
    create_topics(kafka_bootstrap, names)
    env = service_env(
        kafka_bootstrap,
        dedicated_redis.url,
        namespace,
        **RISK_ENV,
        TICKPIPE_RISK_ORDER_TYPE="limit",
        TICKPIPE_RISK_LIMIT_OFFSET_BPS="5",
    )
    scene = Scene(
        kafka_bootstrap,
        names,
        Fleet(env, tmp_path / "logs"),
        KafkaBus(kafka_bootstrap, names).producer("test"),
        redis.Redis.from_url(dedicated_redis.url),
    )
    fleet, cache = scene.fleet, scene.cache
    flow: Stream | None = None
    try:
        fleet.start("risk")
        fleet.start("execution")
        fleet.wait_ready(["risk", "execution"])
        _trade_then_switch(scene)
        # Signals and prints flow from here to the end: every one of them is post-switch.
        flow = Stream(scene.producer, every_s=0.1, with_trades=True).start()
        restarted_at = _flush_and_restart(scene, flow)
        stray = _stray_order(scene)
        scene.until(lambda: _decisions(fleet, "kill_switch") >= 10, 60)
        scene.until(lambda: scene.orders_in_state("rejected") >= 1)  # the stray order
        # Books back in the cache (the rebuild writes them), and a snapshot of the new state.
        scene.until(lambda: cache.get(f"{namespace}:positions:{ACCOUNT}:{KEY}") is not None)
        scene.until(lambda: _risk_snapshot(cache, namespace) is not None)
        published = flow.stop()
        flow = None
        scene.until(lambda: caught_up(kafka_bootstrap, names, f"{namespace}.risk", [SIGNALS]), 60)
        snapshot = _risk_snapshot(cache, namespace)
        positions, pnl = _books_in_cache(cache, namespace)
        risk_metrics = fleet.metrics("risk")
        restarted_log = fleet.log("risk", run=2)
    finally:
        if flow is not None:
            flow.stop()
        codes = fleet.stop()
        scene.producer.close()
        cache.close()
    assert codes == {"risk": 0, "execution": 0}, fleet.logs_tail()

    decisions = [r.body for r in read_topic(kafka_bootstrap, names, RISK_DECISIONS)]
    orders = [r.body for r in read_topic(kafka_bootstrap, names, ORDERS)]
    reports = [r.body for r in read_topic(kafka_bootstrap, names, EXECUTIONS)]
    ledger = fold(orders, reports)
    # The scenario really traded, realized, and had an order resting when the switch came.
    assert ledger.fills >= 10 and ledger.books[KEY].qty != 0 and ledger.books[KEY].realized != 0
    assert [r["reason"] for r in reports if r["status"] == "cancelled"] == ["kill_switch_on"]

    _assert_refused(
        decisions, orders, reports, published[:restarted_at], published[restarted_at:], stray
    )
    # The restarted risk rebuilt from Kafka alone (no snapshot to restore), to the ledger.
    assert '"msg":"state restored"' not in restarted_log
    assert metric(risk_metrics, "tickpipe_risk_kill_switch", account=ACCOUNT) == 1
    rebuilt = metric(risk_metrics, "tickpipe_risk_rebuilt_positions", account=ACCOUNT)
    assert rebuilt == len(ledger.books)
    _assert_books(ledger, positions, pnl, snapshot)


# -- 1b: Redis down for 30 s while signals stream into risk ----------------------------------

OUTAGE_S = 30.0
DETECT_S = 1.0  # ResilientCache probes a store that answered more than 0.5 s ago ...
# ... and a store that keeps failing ever less often, at most every MAX_PROBE_INTERVAL_S:
# after a 30 s outage, approvals resume within that (and a margin for a loaded machine).
RECOVER_S = MAX_PROBE_INTERVAL_S + 1.0


def test_redis_down_for_30s_then_every_signal_gets_one_decision_and_approvals_resume(
    kafka_bootstrap: str, dedicated_redis: LocalRedis, tmp_path: Path
) -> None:
    namespace = f"rd{uuid.uuid4().hex[:8]}"
    names = TopicNames(namespace)
    create_topics(kafka_bootstrap, names)
    env = service_env(kafka_bootstrap, dedicated_redis.url, namespace, **RISK_ENV)
    producer = KafkaBus(kafka_bootstrap, names).producer("test")
    fleet = Fleet(env, tmp_path / "logs")
    port, work_dir = dedicated_redis.port, dedicated_redis.work_dir
    flow: Stream | None = None
    try:
        fleet.start("risk")
        fleet.wait_ready(["risk"])
        flow = Stream(producer, every_s=0.05).start()
        wait_until(lambda: _decisions(fleet, "approved") >= 40, fleet.logs_tail)

        down_ns = time.time_ns()
        assert dedicated_redis.pid is not None
        kill_group(dedicated_redis.pid)  # SIGKILL: no goodbye to its clients
        terminate(dedicated_redis.pid, 5, PROCESS_NAME)  # reaped
        dedicated_redis.pid = None
        wait_until(lambda: _decisions(fleet, "state_unavailable") >= 1, fleet.logs_tail, 10)
        time.sleep(max(0.0, OUTAGE_S - (time.time_ns() - down_ns) / NS))  # the outage itself
        restart_ns = time.time_ns()  # nothing answers on the port before this
        dedicated_redis.start()  # same port, same dir, empty (no persistence)
        assert dedicated_redis.port == port and dedicated_redis.work_dir == work_dir
        up_ns = time.time_ns()
        # The stream goes on well past the recovery window, then stops.
        settled_from, stream = up_ns + int(RECOVER_S * NS), flow
        wait_until(
            lambda: sum(at > settled_from for _, at in stream.signals) >= 40, "the stream stalled"
        )
        published = flow.stop()
        flow = None
        wait_until(
            lambda: caught_up(kafka_bootstrap, names, f"{namespace}.risk", [SIGNALS]),
            fleet.logs_tail,
            60,
        )
        alive = fleet.alive("risk")
        with redis.Redis.from_url(dedicated_redis.url) as back:
            snapshot_back = back.get(f"{namespace}:snapshot:{namespace}.risk")
    finally:
        if flow is not None:
            flow.stop()
        codes = fleet.stop()
        producer.close()
    assert alive and codes == {"risk": 0}, fleet.logs_tail()
    assert snapshot_back is not None  # risk snapshots into the Redis that came back

    decisions = [r.body for r in read_topic(kafka_bootstrap, names, RISK_DECISIONS)]
    _assert_decided_through_outage(decisions, published, down_ns, restart_ns, up_ns)


def _assert_decided_through_outage(
    decisions: list[dict[str, Any]],
    published: list[tuple[str, int]],
    down_ns: int,
    restart_ns: int,
    up_ns: int,
) -> None:
    """One decision per signal; `state_unavailable` exactly while Redis was away (give or
    take the cache's probe interval); approvals before and again soon after."""
    sent = {e: at for e, at in published}
    per_signal = Counter(d["causation_id"] for d in decisions)
    assert set(per_signal) == set(sent), (
        f"{len(set(sent) - set(per_signal))} signals without a decision, "
        f"{len(set(per_signal) - set(sent))} decisions of no signal"
    )
    twice = [c for c, n in per_signal.items() if n > 1]
    assert not twice, f"{len(twice)} signals decided more than once"

    def when(d: dict[str, Any]) -> float:  # seconds from the kill of Redis
        return (int(d["ts_init"]) - down_ns) / NS

    unavailable = [d for d in decisions if d["reasons"] == ["state_unavailable"]]
    up_s, restart_s = (up_ns - down_ns) / NS, (restart_ns - down_ns) / NS
    # Before the outage: approved.
    before = [d for d in decisions if when(d) < 0]
    assert before and all(d["approved"] for d in before)
    # While Redis was away (past the probe interval): refused, state_unavailable, only.
    during = [d for d in decisions if DETECT_S <= when(d) <= restart_s]
    assert len(during) >= 100, len(during)
    wrong = [
        (round(when(d), 2), d["reasons"]) for d in during if d["reasons"] != ["state_unavailable"]
    ]
    assert not wrong, wrong[:10]
    assert all(not d["approved"] and d["quantity"] is None for d in unavailable)
    # Only then: no state_unavailable before the kill or past the recovery window.
    outside = [round(when(d), 2) for d in unavailable if not 0 <= when(d) <= up_s + RECOVER_S]
    assert not outside, outside[:10]
    # Approvals resume within a few seconds of Redis answering again, and stay on.
    after = sorted((d for d in decisions if when(d) > restart_s), key=when)
    first = next((d for d in after if d["approved"]), None)
    assert first is not None and when(first) <= up_s + RECOVER_S, (
        None if first is None else round(when(first) - up_s, 2)
    )
    settled = [d for d in after if when(d) > up_s + RECOVER_S]
    assert len(settled) >= 20 and all(d["approved"] for d in settled), [
        (round(when(d) - up_s, 2), d["reasons"]) for d in settled if not d["approved"]
    ][:10]
