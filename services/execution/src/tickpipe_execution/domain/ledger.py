"""OMS state as a fold over `executions.v1`: replaying the ledger rebuilds it exactly.

Every report was sent to (or refused by) a venue, so an order's first report implies NEW ->
SUBMITTED. Fills are applied once per trade id; a report whose cumulative quantity
disagrees with the fold means the ledger and the OMS diverged, and that must not pass quietly.
"""

from __future__ import annotations

from collections.abc import Iterable

from tickpipe.messages import ExecutionReport
from tickpipe.messages import OrderStatus as S
from tickpipe_execution.domain.orders import InvalidTransition, Order


class LedgerMismatch(ValueError):
    pass


def apply(orders: dict[str, Order], r: ExecutionReport) -> Order:
    """Fold one report into `orders` (in place); returns the order it touched."""
    order = orders.get(r.client_order_id)
    if order is None:
        order = Order(
            r.client_order_id,
            r.quantity,
            exchange=r.exchange,
            symbol=r.symbol,
            side=r.side,
            account=r.account,
            strategy_id=r.strategy_id,
            causation_id=r.causation_id,
        )
        order.transition(S.SUBMITTED)
        orders[r.client_order_id] = order
    if r.exchange_order_id is not None:
        order.exchange_order_id = r.exchange_order_id
    if r.is_fill:
        if r.last_price is None:
            raise LedgerMismatch(f"{r.client_order_id}: fill without a price")
        order.fill(r.last_qty, r.trade_id, r.last_price, r.fee)
        if order.status is not r.status:
            order.transition(r.status)  # e.g. the last fill of an order being cancelled
    elif r.status is not order.status:
        order.transition(r.status)
    if order.cum_qty != r.cum_qty:
        raise LedgerMismatch(f"{r.client_order_id}: cum_qty {order.cum_qty} != {r.cum_qty}")
    return order


def replay(reports: Iterable[ExecutionReport]) -> dict[str, Order]:
    """The OMS state that a sequence of reports (in ledger order) describes."""
    orders: dict[str, Order] = {}
    for r in reports:
        apply(orders, r)
    return orders


__all__ = ["InvalidTransition", "LedgerMismatch", "apply", "replay"]
