"""Orders -> paper fills -> execution reports on `executions.v1`."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import orjson

from tickpipe.ids import EventIds
from tickpipe.messages import (
    Event,
    ExecutionReport,
    Liquidity,
    OrderRequest,
    OrderStatus,
    OrderType,
    QuoteTick,
)
from tickpipe.service import Emit
from tickpipe.topics import EXECUTIONS
from tickpipe_execution.domain.orders import Order
from tickpipe_execution.domain.paper import PaperExchange
from tickpipe_execution.metrics import ORDERS_BY_STATE


class ExecutionHandler:
    def __init__(self, ids: EventIds, exchange: PaperExchange) -> None:
        self._ids = ids
        self._exchange = exchange
        self.orders: dict[str, Order] = {}

    def handle(self, event: Event, topic: str, now_ns: int) -> Sequence[Emit]:
        if isinstance(event, QuoteTick):
            self._exchange.on_quote(event.key, event.bid, event.ask, event.ts_event)
            return ()
        if isinstance(event, OrderRequest):
            return self._on_order(event, now_ns)
        return ()

    def snapshot(self) -> bytes:
        return orjson.dumps(
            {
                "orders": {
                    c: [str(o.quantity), o.status.value, str(o.cum_qty)]
                    for c, o in self.orders.items()
                },
                "touch": self._exchange.snapshot(),
            }
        )

    def restore(self, data: bytes) -> None:
        state = orjson.loads(data)
        self.orders = {
            c: Order(c, Decimal(q), OrderStatus(s), Decimal(cum))
            for c, (q, s, cum) in state["orders"].items()
        }
        self._exchange.restore(state["touch"])

    def _report(self, o: OrderRequest, order: Order, now_ns: int, **fill: object) -> Emit:
        ORDERS_BY_STATE.labels(order.status.value).inc()
        report = ExecutionReport(
            event_id=self._ids.new(),
            ts_event=now_ns,
            ts_init=now_ns,
            causation_id=o.event_id,
            exchange=o.exchange,
            symbol=o.symbol,
            client_order_id=o.client_order_id,
            exchange_order_id=f"paper-{o.client_order_id}",
            account=o.account,
            strategy_id=o.strategy_id,
            side=o.side,
            status=order.status,
            quantity=o.quantity,
            cum_qty=order.cum_qty,
            leaves_qty=order.leaves_qty,
            **fill,
        )
        return Emit(EXECUTIONS, report)

    def _on_order(self, o: OrderRequest, now_ns: int) -> Sequence[Emit]:
        if o.client_order_id in self.orders:
            return ()  # the same order again (a redelivery): never placed twice
        order = self.orders[o.client_order_id] = Order(o.client_order_id, o.quantity)
        order.transition(OrderStatus.SUBMITTED)
        if o.order_type is not OrderType.MARKET:
            order.transition(OrderStatus.REJECTED)
            return (self._report(o, order, now_ns, reason="order_type_not_supported"),)
        fill = self._exchange.market_fill(o.key, o.side, o.quantity)
        if fill is None:
            order.transition(OrderStatus.REJECTED)
            return (self._report(o, order, now_ns, reason="no_market_data"),)
        order.transition(OrderStatus.ACKNOWLEDGED)
        ack = self._report(o, order, now_ns)
        order.fill(fill.qty)
        filled = self._report(
            o,
            order,
            now_ns,
            last_qty=fill.qty,
            last_price=fill.price,
            fee=fill.fee,
            fee_currency=o.symbol.split("/")[-1],
            liquidity=Liquidity.TAKER,
            trade_id=f"paper-{o.client_order_id}-1",
        )
        return (ack, filled)
