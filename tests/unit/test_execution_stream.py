"""Live mode without the network: the stream thread's disconnect protections (with a
stand-in for the ccxt.pro client: which exchanges have a dead-man switch is ccxt's business),
and the ledger-backed OMS over the in-memory bus."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import ccxt  # type: ignore[import-untyped]

from tests.unit import factories as f
from tickpipe.bus.memory import MemoryBus
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import ControlAction, ExecutionReport, OrderStatus
from tickpipe.runner import encode_emit
from tickpipe.service import Stateful
from tickpipe.topics import CONTROL, EXECUTIONS, ORDERS
from tickpipe_execution.domain.paper import PaperConfig, PaperExchange
from tickpipe_execution.handlers import ExecutionHandler
from tickpipe_execution.live.oms import LedgerBackedHandler, read_ledger
from tickpipe_execution.live.stream import DisconnectPolicy, UserStream

S = OrderStatus


class ProClient:
    """Stands in for a ccxt.pro exchange: what `UserStream` calls, recorded."""

    def __init__(self, dead_man: bool, down: bool = False) -> None:
        self.has = {"watchOrders": True, "watchMyTrades": False, "cancelAllOrdersAfter": dead_man}
        self.down = down
        self.after: list[int] = []
        self.cancelled: list[str] = []

    async def authenticate(self) -> None:
        if self.down:
            raise ccxt.NetworkError("connection refused")

    async def watch_orders(self) -> list[dict[str, Any]]:
        await asyncio.sleep(3600)
        return []

    async def cancel_all_orders_after(self, ms: int) -> None:
        self.after.append(ms)

    async def cancel_all_orders(self, symbol: str) -> None:
        self.cancelled.append(symbol)

    async def close(self) -> None:
        return None


def _run(client: ProClient, policy: DisconnectPolicy, seconds: float) -> UserStream:
    stream = UserStream(client, lambda: {"BTC/USDT", "ETH/USDT"}, policy, retry_s=0.05).start()
    time.sleep(seconds)
    stream.stop()
    return stream


def test_user_stream_when_exchange_has_dead_man_switch_keeps_it_armed_instead() -> None:
    client = ProClient(dead_man=True)

    _run(client, DisconnectPolicy(cancel_on_disconnect=True, dead_man_s=0.3), 0.8)

    assert len(client.after) >= 3 and set(client.after) == {300}  # a beat every 0.1 s
    assert client.cancelled == []


def test_user_stream_when_not_opted_in_arms_no_dead_man_switch() -> None:
    client = ProClient(dead_man=True)

    stream = _run(client, DisconnectPolicy(dead_man_s=0.3), 0.5)

    assert client.after == [] and client.cancelled == []
    assert stream.connected


def test_user_stream_when_down_past_grace_cancels_all_once_per_outage() -> None:
    client = ProClient(dead_man=False, down=True)

    stream = _run(client, DisconnectPolicy(cancel_on_disconnect=True, grace_s=0.2), 0.8)

    assert client.cancelled == ["BTC/USDT", "ETH/USDT"]
    assert stream.cancel_alls == 1 and not stream.connected


def test_user_stream_when_down_within_grace_cancels_nothing() -> None:
    client = ProClient(dead_man=False, down=True)

    _run(client, DisconnectPolicy(cancel_on_disconnect=True, grace_s=5), 0.5)

    assert client.cancelled == []


def _ledger_handler(bus: MemoryBus, cache: MemoryCache, seed: int) -> LedgerBackedHandler:
    inner = ExecutionHandler(EventIds(SimClock(f.T0), seed=seed), PaperExchange(PaperConfig()))
    return LedgerBackedHandler(inner, lambda: read_ledger(bus, quiet_s=0.05), cache)


def _publish(bus: MemoryBus, emits: Any) -> list[ExecutionReport]:
    producer = bus.producer("test")
    out = []
    for e in emits:
        producer.send(encode_emit(e, ()))
        out.append(e.event)
    return out


def test_ledger_backed_handler_when_restarted_rebuilds_orders_and_kill_switch() -> None:
    bus, cache = MemoryBus(), MemoryCache(SimClock(f.T0))
    first = _ledger_handler(bus, cache, seed=1)
    send: Callable[[Any, str], Any] = lambda e, topic: first.handle(e, topic, f.T0)  # noqa: E731
    resting = f.order(client_order_id="tp-l1", order_type="limit", limit_price=Decimal(1))
    filled = f.order(client_order_id="tp-l2", event_id="01L2")
    _publish(bus, send(f.quote(), "md.quotes.v1"))
    published = _publish(bus, [*send(resting, ORDERS), *send(filled, ORDERS)])
    send(f.control(ControlAction.KILL_SWITCH_ON), CONTROL)  # (its cancels are not published)

    after = _ledger_handler(bus, cache, seed=2)
    again = after.handle(resting, ORDERS, f.T0)

    assert not isinstance(after, Stateful)  # the runner keeps no snapshot to replay from
    assert [r.status for r in published] == [S.ACKNOWLEDGED, S.ACKNOWLEDGED, S.FILLED]
    assert again == ()  # known from the ledger: never placed twice
    assert after.inner.orders["tp-l1"].status is S.ACKNOWLEDGED
    assert after.inner.orders["tp-l2"].cum_qty == f.order().quantity
    assert after.inner.kill_switch
    assert len(bus.records(EXECUTIONS)) == 3
