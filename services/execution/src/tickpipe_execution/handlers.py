"""Orders, market data and commands in; execution reports on `executions.v1` out.

The handler is the OMS: it owns each order's state machine, keyed by the client order id
risk derived from the order event, so a redelivered or replayed order is never placed
twice. A venue (the paper exchange here) answers with venue events, which become state
transitions and one report per state change or fill.

Market data is put back in ingest's arrival order first (`tickpipe.arrival`), and orders
carry the point of the market stream they were decided at (`market_seq`): the paper
exchange then fills an order the same however the topics interleave on this consumer.
Reports carry the venue's clock (paper: market time) as `ts_event`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import orjson

from tickpipe.arrival import MarketArrival
from tickpipe.bus.history import events_by_topic
from tickpipe.ids import EventIds
from tickpipe.messages import (
    ControlAction,
    ControlCommand,
    Event,
    ExecutionReport,
    OrderRequest,
    OrderStatus,
    QuoteTick,
    TradeTick,
)
from tickpipe.service import Emit, ServiceContext
from tickpipe.telemetry.metrics import child
from tickpipe.topics import CONTROL, EXECUTIONS, ORDERS
from tickpipe_execution.domain.events import (
    Acked,
    Cancelled,
    Filled,
    Refused,
    VenueEvent,
    VenueUnavailable,
)
from tickpipe_execution.domain.ledger import LedgerMismatch, replay
from tickpipe_execution.domain.orders import Order
from tickpipe_execution.domain.reconcile import ExchangeOrder, reconcile
from tickpipe_execution.domain.venue import RestingOrder, Venue
from tickpipe_execution.metrics import ORDERS_BY_STATE

log = logging.getLogger(__name__)
CANCEL_ACTIONS = (ControlAction.CANCEL_ALL, ControlAction.KILL_SWITCH_ON)


class ExecutionHandler:
    def __init__(self, ids: EventIds, exchange: Venue) -> None:
        self._ids = ids
        self._exchange = exchange
        self.orders: dict[str, Order] = {}
        self.kill_switch = False
        self.orphans: list[ExchangeOrder] = []
        self._reconciled = False
        self._last_poll_ns = 0
        self._polled_once = False  # polling is paced from the first event's market time
        self._restored = False
        # Orders created before this instance started may have reached the venue already
        # (placed in a batch whose transaction died with the process): look those up first.
        self._started_ns: int | None = None
        self.arrival = MarketArrival()

    def on_start(self, ctx: ServiceContext) -> Sequence[Emit]:
        """State that matters comes from Kafka, the source of truth: the kill switch from
        `control.v1` read from the beginning, always; without a restored snapshot, the OMS
        from the ledger (`executions.v1`) and the orders still open rest at the venue again
        (`orders.v1` has their terms). Then reconcile with the venue before any order: what
        happened while this service was away is reported first."""
        now_ns = ctx.clock.now_ns()
        self._started_ns = now_ns
        topics = (CONTROL,) if self._restored else (CONTROL, ORDERS, EXECUTIONS)
        history = events_by_topic(ctx.bus, topics, "execution-rebuild", ctx.stop)
        try:
            self.rebuild(history)
        except LedgerMismatch as exc:
            # Not a bad input record: without the ledger nothing may be sent. Exit, restart.
            raise SystemExit(f"execution: cannot rebuild the OMS from the ledger: {exc}") from None
        return self._try_reconcile(now_ns) or ()

    def rebuild(self, history: Mapping[str, Sequence[Event]]) -> None:
        for c in history.get(CONTROL, ()):
            if isinstance(c, ControlCommand) and c.action is ControlAction.KILL_SWITCH_ON:
                self.kill_switch = True
            elif isinstance(c, ControlCommand) and c.action is ControlAction.KILL_SWITCH_OFF:
                self.kill_switch = False
        if EXECUTIONS not in history:
            return
        self.orders = replay(r for r in history[EXECUTIONS] if isinstance(r, ExecutionReport))
        terms = {
            o.client_order_id: o for o in history.get(ORDERS, ()) if isinstance(o, OrderRequest)
        }
        resting = []
        for order in self.open_orders():
            o = terms.get(order.client_order_id)
            if o is not None:
                resting.append(
                    RestingOrder(
                        o.client_order_id,
                        o.key,
                        o.side,
                        o.order_type,
                        o.quantity,
                        o.limit_price,
                        order.cum_qty,
                    )
                )
        self._exchange.adopt(resting)
        log.info(
            "OMS rebuilt from the ledger",
            extra={"orders": len(self.orders), "open": len(self.open_orders())},
        )

    def handle(self, event: Event, topic: str, now_ns: int) -> Sequence[Emit]:
        if self._started_ns is None:  # never started (a handler driven directly)
            self._started_ns = now_ns
        if not self._polled_once:
            self._polled_once = True
            self._last_poll_ns = event.ts_event
        if not self._reconciled:
            # Reconciliation failed at start: retried until it succeeds, refusing orders.
            settled = self._try_reconcile(now_ns)
            if settled is None:
                if isinstance(event, OrderRequest):
                    return self._refuse(event, "not_reconciled", now_ns)
                return self._handle(event, topic, now_ns)
            return (*settled, *self._handle(event, topic, now_ns))
        return self._handle(event, topic, now_ns)

    def _try_reconcile(self, now_ns: int) -> list[Emit] | None:
        try:
            settled = self.reconcile(now_ns)
        except VenueUnavailable as exc:
            log.error("reconciliation failed; refusing orders", extra={"error": str(exc)})
            return None
        self._reconciled = True
        return settled

    def _poll_due(self, market_ts: int) -> bool:
        """Trades pace polling (not quotes: they are latest-only); market time, not wall."""
        every = self._exchange.poll_interval_ns
        if every is None or not self.open_orders() or market_ts - self._last_poll_ns < every:
            return False
        self._last_poll_ns = market_ts
        return True

    def reconcile(self, now_ns: int) -> list[Emit]:
        """Bring the OMS in line with the venue (before any new order): missed fills once,
        acks and cancels that happened while we were away. Runs at start, then as polled."""
        result = reconcile(self.open_orders(), self._exchange.exchange_state(self.open_orders()))
        for orphan in result.orphans:
            log.warning(
                "open order at the exchange that the OMS does not know",
                extra={"client_order_id": orphan.client_order_id},
            )
        self.orphans = result.orphans
        return self._apply(result.events, now_ns)

    def _handle(self, event: Event, topic: str, now_ns: int) -> Sequence[Emit]:
        if isinstance(event, (QuoteTick, TradeTick)):
            out: list[Emit] = []
            for ready in self.arrival.push(event.key, event.ingest_seq, event, topic):
                out += self._market(ready, now_ns)
            return out
        if isinstance(event, OrderRequest):
            return self._on_order(event, now_ns)
        if isinstance(event, ControlCommand):
            return self._on_control(event, now_ns)
        return ()

    def _market(self, event: QuoteTick | TradeTick, now_ns: int) -> list[Emit]:
        venue, seq = self._exchange, event.ingest_seq
        if isinstance(event, QuoteTick):
            venue.on_quote(event.key, event.bid, event.ask, event.ts_event, seq)
            return []
        events = venue.on_trade(event.key, event.price, event.size, event.ts_event, seq)
        out = self._apply(events, now_ns)
        if self._poll_due(event.ts_event):
            out += self.reconcile(now_ns)  # a live venue's fills, found by polling
        return out

    def open_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if o.is_open]

    def running_ahead(self) -> list[tuple[str, str]]:
        """Market streams the arrival buffer holds too much of (flow control: `Paced`)."""
        return self.arrival.ahead()

    # -- state ------------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        return orjson.dumps(
            {
                "orders": [o.to_json() for o in self.orders.values()],
                "kill_switch": self.kill_switch,
                "last_poll_ns": self._last_poll_ns,
                "venue": self._exchange.snapshot(),
                "arrival": self.arrival.to_json(),
            }
        )

    def restore(self, data: bytes) -> None:
        self._restored = True
        state = orjson.loads(data)
        self.orders = {o["c"]: Order.from_json(o) for o in state["orders"]}
        self.kill_switch = bool(state["kill_switch"])
        self._last_poll_ns = int(state.get("last_poll_ns", 0))
        self._exchange.restore(state["venue"])
        self.arrival = MarketArrival.from_json(state.get("arrival", {}))

    # -- inputs -----------------------------------------------------------------------------

    def _on_order(self, o: OrderRequest, now_ns: int) -> Sequence[Emit]:
        if o.client_order_id in self.orders:
            return ()  # the same order again (a redelivery or replay): never placed twice
        if self.kill_switch:
            return self._refuse(o, "kill_switch", now_ns)
        order = self._new(o)
        order.transition(OrderStatus.SUBMITTED)
        maybe_sent = self._started_ns is not None and o.ts_init < self._started_ns
        events = self._exchange.submit(
            o.client_order_id,
            o.key,
            o.side,
            o.order_type,
            o.quantity,
            o.limit_price,
            maybe_sent=maybe_sent,
            market_seq=o.market_seq,
            order_ts=o.ts_event,
        )
        out = self._apply(events, now_ns)
        if order.status is OrderStatus.SUBMITTED:
            # In flight (venue latency): the ledger must know the order exists. When the
            # venue answers at once, its answer is the first report and implies SUBMITTED.
            out.append(self._report(order, now_ns))
        return out

    def _new(self, o: OrderRequest) -> Order:
        order = self.orders[o.client_order_id] = Order(
            o.client_order_id,
            o.quantity,
            exchange=o.exchange,
            symbol=o.symbol,
            side=o.side,
            account=o.account,
            strategy_id=o.strategy_id,
            causation_id=o.event_id,
        )
        return order

    def _refuse(self, o: OrderRequest, reason: str, now_ns: int) -> list[Emit]:
        """Rejected by the OMS itself, never sent: still one REJECTED report in the ledger."""
        if o.client_order_id in self.orders:
            return []
        self._new(o).transition(OrderStatus.SUBMITTED)  # as the ledger fold reads it
        return self._apply([Refused(o.client_order_id, reason)], now_ns)

    def _on_control(self, c: ControlCommand, now_ns: int) -> Sequence[Emit]:
        if c.action is ControlAction.KILL_SWITCH_OFF:
            self.kill_switch = False
        if c.action not in CANCEL_ACTIONS:
            return ()
        if c.action is ControlAction.KILL_SWITCH_ON:
            self.kill_switch = True
        return self._cancel_open(c.target, c.action.value, now_ns)

    def _cancel_open(self, target: str, reason: str, now_ns: int) -> list[Emit]:
        """Cancel every open order on `target` (`*`, an account, or an instrument key)."""
        out: list[Emit] = []
        for order in self.open_orders():
            if target not in ("*", order.key, order.account):
                continue
            if order.status is not OrderStatus.PENDING_CANCEL:
                order.transition(OrderStatus.PENDING_CANCEL)
                out.append(self._report(order, now_ns, reason=reason))
            out += self._apply(
                self._exchange.cancel(order.client_order_id, reason, order.key), now_ns
            )
        return out

    # -- venue events -> state -> reports ---------------------------------------------------

    def _apply(self, events: Sequence[VenueEvent], now_ns: int) -> list[Emit]:
        out: list[Emit] = []
        for ev in events:
            order = self.orders.get(ev.client_order_id)
            if order is None or order.is_terminal:
                continue  # not ours, or already settled: a venue echo changes nothing
            if isinstance(ev, Acked):
                order.exchange_order_id = ev.exchange_order_id
                if order.status is OrderStatus.SUBMITTED:  # else a lookup's echo: known
                    order.transition(OrderStatus.ACKNOWLEDGED)
                    out.append(self._report(order, now_ns, at=ev.ts))
            elif isinstance(ev, Refused):
                order.transition(OrderStatus.REJECTED)
                out.append(self._report(order, now_ns, reason=ev.reason))
            elif isinstance(ev, Cancelled):
                order.transition(OrderStatus.CANCELLED)
                out.append(self._report(order, now_ns, reason=ev.reason))
            elif isinstance(ev, Filled):
                if ev.exchange_order_id is not None:
                    order.exchange_order_id = ev.exchange_order_id
                if order.fill(ev.qty, ev.trade_id, ev.price, ev.fee):
                    out.append(
                        self._report(
                            order,
                            now_ns,
                            at=ev.ts,
                            last_qty=ev.qty,
                            last_price=ev.price,
                            fee=ev.fee,
                            fee_currency=ev.fee_currency,
                            liquidity=ev.liquidity,
                            trade_id=ev.trade_id,
                        )
                    )
        return out

    def _report(self, order: Order, now_ns: int, at: int | None = None, **extra: object) -> Emit:
        """`at`: the venue's time of the event; else the venue's clock, else `now_ns`."""
        child(ORDERS_BY_STATE, order.status.value).inc()
        if at is None:
            at = self._exchange.market_time(order.key)
        report = ExecutionReport(
            event_id=self._ids.new(),
            ts_event=now_ns if at is None else at,
            ts_init=now_ns,
            causation_id=order.causation_id,
            exchange=order.exchange,
            symbol=order.symbol,
            client_order_id=order.client_order_id,
            exchange_order_id=order.exchange_order_id,
            account=order.account,
            strategy_id=order.strategy_id,
            side=order.side,
            status=order.status,
            quantity=order.quantity,
            cum_qty=order.cum_qty,
            leaves_qty=order.leaves_qty,
            **extra,
        )
        return Emit(EXECUTIONS, report)
