"""Live mode without the network: the stream thread's disconnect protections (with a
stand-in for the ccxt.pro client: which exchanges have a dead-man switch is ccxt's business),
and the ledger-backed OMS over the in-memory bus."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal
from typing import Any

import ccxt  # type: ignore[import-untyped]

from tests.polling import wait_until
from tests.unit import factories as f
from tickpipe.bus.memory import MemoryBus
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.embedded import simulated_context
from tickpipe.ids import EventIds
from tickpipe.messages import ControlAction, ExecutionReport, OrderStatus
from tickpipe.runner import encode_emit
from tickpipe.service import Emit, Stateful
from tickpipe.topics import CONTROL, EXECUTIONS, ORDERS
from tickpipe_execution.domain.paper import PaperConfig, PaperExchange
from tickpipe_execution.handlers import ExecutionHandler
from tickpipe_execution.live.oms import LedgerBackedHandler
from tickpipe_execution.live.stream import DisconnectPolicy, UserStream

S = OrderStatus


class ProClient:
    """Stands in for a ccxt.pro exchange: what `UserStream` calls, recorded (with the time of
    each call, on the stream thread's event loop, so tests can tell how long it has run)."""

    def __init__(self, dead_man: bool, down: bool = False, watch_s: float = 3600) -> None:
        self.has = {"watchOrders": True, "watchMyTrades": False, "cancelAllOrdersAfter": dead_man}
        self.down = down
        self.watch_s = watch_s  # how long a watch waits for updates (none come)
        self.attempts: list[float] = []  # (re)subscriptions
        self.watches: list[float] = []
        self.after: list[int] = []
        self.beats: list[float] = []
        self.cancelled: list[str] = []

    async def authenticate(self) -> None:
        self.attempts.append(time.monotonic())
        if self.down:
            raise ccxt.NetworkError("connection refused")

    async def watch_orders(self) -> list[dict[str, Any]]:
        self.watches.append(time.monotonic())
        await asyncio.sleep(self.watch_s)
        return []

    async def cancel_all_orders_after(self, ms: int) -> None:
        self.after.append(ms)
        self.beats.append(time.monotonic())

    async def cancel_all_orders(self, symbol: str) -> None:
        self.cancelled.append(symbol)

    async def close(self) -> None:
        return None


@contextmanager
def _running(client: ProClient, policy: DisconnectPolicy) -> Iterator[UserStream]:
    stream = UserStream(client, lambda: {"BTC/USDT", "ETH/USDT"}, policy, retry_s=0.05).start()
    try:
        yield stream
    finally:
        stream.stop()


def _ran_until(calls: list[float], t: float) -> Callable[[], bool]:
    """The stream's event loop made one of `calls` at `t` or later: it was running then, and
    so was its watchdog, which shares the loop (ticking every 0.1 s)."""
    return lambda: bool(calls) and calls[-1] >= t


def test_user_stream_when_exchange_has_dead_man_switch_keeps_it_armed_instead() -> None:
    client = ProClient(dead_man=True)
    policy = DisconnectPolicy(cancel_on_disconnect=True, dead_man_s=0.3)

    with _running(client, policy):
        wait_until(lambda: len(client.after) >= 3, lambda: f"three beats, got {client.after}", 10)

    assert set(client.after) == {300}  # the exchange's timer, re-armed on every beat
    gaps = [b - a for a, b in itertools.pairwise(client.beats)]
    # A beat every heartbeat (0.1 s), never as late as the timer: it never runs out.
    assert all(0.9 * policy.heartbeat_s <= g < policy.dead_man_s for g in gaps), gaps
    assert client.cancelled == []


def test_user_stream_when_not_opted_in_arms_no_dead_man_switch() -> None:
    client = ProClient(dead_man=True, watch_s=0.02)
    policy = DisconnectPolicy(dead_man_s=0.3)

    with _running(client, policy) as stream:
        wait_until(lambda: stream.connected, "the stream subscribed", 10)
        # Connected for three heartbeats: an armed switch would have beaten by then.
        since = time.monotonic()
        wait_until(_ran_until(client.watches, since + 3 * policy.heartbeat_s), "watches", 10)

    assert not stream.dead_man
    assert client.after == [] and client.cancelled == []
    assert stream.connected


def test_user_stream_when_down_past_grace_cancels_all_once_per_outage() -> None:
    client = ProClient(dead_man=False, down=True)
    policy = DisconnectPolicy(cancel_on_disconnect=True, grace_s=0.2)

    with _running(client, policy) as stream:
        wait_until(lambda: stream.cancel_alls > 0, "a cancel-all past the grace period", 10)
        # Two more grace periods of the same outage: time to cancel again, were it to.
        again = time.monotonic() + 2 * policy.grace_s
        wait_until(_ran_until(client.attempts, again), "resubscribe attempts", 10)

    assert client.cancelled == ["BTC/USDT", "ETH/USDT"]
    assert stream.cancel_alls == 1 and not stream.connected


def test_user_stream_when_down_within_grace_cancels_nothing() -> None:
    client = ProClient(dead_man=False, down=True)
    policy = DisconnectPolicy(cancel_on_disconnect=True, grace_s=5)

    with _running(client, policy) as stream:
        down_since = stream.down_since
        assert down_since is not None
        # Down for half a second (five watchdog ticks), well within the grace period.
        wait_until(_ran_until(client.attempts, down_since + 0.5), "resubscribe attempts", 10)
        still_within_grace = time.monotonic() - down_since < policy.grace_s

    assert still_within_grace  # else the test checked nothing
    assert client.cancelled == []


def _ledger_handler(bus: MemoryBus, cache: MemoryCache, seed: int) -> LedgerBackedHandler:
    """A started live-mode handler: `on_start` folded the ledger and control.v1 on `bus`."""
    inner = ExecutionHandler(EventIds(SimClock(f.T0), seed=seed), PaperExchange(PaperConfig()))
    handler = LedgerBackedHandler(inner, cache)
    handler.on_start(replace(simulated_context(), bus=bus))
    return handler


def _publish(bus: MemoryBus, emits: Any) -> list[ExecutionReport]:
    producer = bus.producer("test")
    out = []
    for e in emits:
        producer.send(encode_emit(e, ()))
        out.append(e.event)
    return out


def test_ledger_backed_handler_when_restarted_rebuilds_orders_and_kill_switch() -> None:
    bus = MemoryBus()
    cache = MemoryCache(SimClock(f.T0))  # written for operators; the restart reads Kafka
    first = _ledger_handler(bus, cache, seed=1)
    send: Callable[[Any, str], Any] = lambda e, topic: first.handle(e, topic, f.T0)  # noqa: E731
    resting = f.order(client_order_id="tp-l1", order_type="limit", limit_price=Decimal(1))
    filled = f.order(client_order_id="tp-l2", event_id="01L2")
    _publish(bus, send(f.quote(), "md.quotes.v1"))
    published = _publish(bus, [*send(resting, ORDERS), *send(filled, ORDERS)])
    kill = f.control(ControlAction.KILL_SWITCH_ON)
    _publish(bus, [Emit(CONTROL, kill, key=kill.compaction_key)])  # on control.v1...
    send(kill, CONTROL)  # ...and handled (its cancels are not published)

    after = _ledger_handler(bus, MemoryCache(SimClock(f.T0)), seed=2)  # an empty cache
    again = after.handle(resting, ORDERS, f.T0)

    assert not isinstance(after, Stateful)  # the runner keeps no snapshot to replay from
    assert [r.status for r in published] == [S.ACKNOWLEDGED, S.ACKNOWLEDGED, S.FILLED]
    assert again == ()  # known from the ledger: never placed twice
    assert after.inner.orders["tp-l1"].status is S.ACKNOWLEDGED
    assert after.inner.orders["tp-l2"].cum_qty == f.order().quantity
    assert after.inner.kill_switch
    assert len(bus.records(EXECUTIONS)) == 3
