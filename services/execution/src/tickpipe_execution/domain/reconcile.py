"""Start-up reconciliation: what the exchange says about our orders, as venue events.

Pure: the adapter fetches (each open order looked up by client id, the exchange's open
orders, recent fills); this decides. Missed fills are applied exactly once (by exchange trade
id), before an order's final state; exchange orders with client ids we do not know are
returned as orphans for an operator, never touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tickpipe.messages import OrderStatus as S
from tickpipe_execution.domain.events import Acked, Cancelled, Filled, Refused, VenueEvent
from tickpipe_execution.domain.orders import Order


@dataclass(frozen=True)
class ExchangeOrder:
    client_order_id: str
    exchange_order_id: str
    state: str  # ccxt's: open, closed, canceled, expired, rejected


@dataclass(frozen=True)
class ExchangeState:
    # Our open orders as looked up by client id: None when the exchange has no such order;
    # absent when not looked up (nothing is decided about those).
    orders: Mapping[str, ExchangeOrder | None]
    open_orders: tuple[ExchangeOrder, ...] = ()
    fills: tuple[Filled, ...] = ()


@dataclass(frozen=True)
class Reconciliation:
    events: list[VenueEvent] = field(default_factory=list)
    orphans: list[ExchangeOrder] = field(default_factory=list)


def reconcile(open_orders: Iterable[Order], exchange: ExchangeState) -> Reconciliation:
    ours = {o.client_order_id: o for o in open_orders}
    events: list[VenueEvent] = []
    fills_by_order: dict[str, list[Filled]] = {}
    seen: set[str] = set()
    for f in exchange.fills:
        if f.trade_id in seen:
            continue
        seen.add(f.trade_id)
        fills_by_order.setdefault(f.client_order_id, []).append(f)
    for coid, order in ours.items():
        if coid not in exchange.orders:
            continue
        there = exchange.orders[coid]
        if there is None:
            if order.status is S.SUBMITTED:
                # Looked up by client id and not found: the submit never reached the exchange.
                events.append(Refused(coid, "not_found_at_exchange"))
            continue
        if there.state == "rejected" and order.status is S.SUBMITTED:
            events.append(Refused(coid, "rejected_by_exchange"))
            continue
        events.append(Acked(coid, there.exchange_order_id))
        known = set(order.trade_ids)
        events += [f for f in fills_by_order.get(coid, []) if f.trade_id not in known]
        if there.state in ("canceled", "cancelled", "expired"):
            events.append(Cancelled(coid, f"{there.state}_at_exchange"))
    orphans = [o for o in exchange.open_orders if o.client_order_id not in ours]
    return Reconciliation(events, orphans)
