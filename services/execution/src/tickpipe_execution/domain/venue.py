"""The port the OMS places orders through: the paper exchange, or a live exchange adapter."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from tickpipe.messages import OrderType, Side
from tickpipe_execution.domain.events import VenueEvent
from tickpipe_execution.domain.orders import Order
from tickpipe_execution.domain.reconcile import ExchangeState


@dataclass(frozen=True, slots=True)
class RestingOrder:
    """An open order as rebuilt from `orders.v1` and `executions.v1`."""

    client_order_id: str
    key: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None
    filled: Decimal


class Venue(Protocol):
    # How often (market time) the OMS polls the venue for fills; None: it reports them itself.
    poll_interval_ns: int | None

    # `seq`: the record's `ingest_seq` (market data reaches the venue in arrival order).
    def on_quote(
        self, key: str, bid: float, ask: float, ts: int, seq: int | None = None
    ) -> None: ...

    def on_trade(
        self, key: str, price: float, size: float, ts: int, seq: int | None = None
    ) -> list[VenueEvent]: ...

    def market_time(self, key: str) -> int | None:
        """The venue's clock for `key` (paper: market time), stamped on reports; None: the
        handler's processing time (a live exchange runs on the wall clock)."""
        ...

    def submit(
        self,
        client_order_id: str,
        key: str,
        side: Side,
        order_type: OrderType,
        quantity: Decimal,
        limit_price: Decimal | None = None,
        maybe_sent: bool = False,
        market_seq: int | None = None,
        order_ts: int | None = None,
    ) -> list[VenueEvent]: ...

    def cancel(self, client_order_id: str, reason: str, key: str = "") -> list[VenueEvent]: ...

    def exchange_state(self, open_orders: list[Order]) -> ExchangeState:
        """What the venue holds for our open orders (start-up reconciliation)."""
        ...

    def adopt(self, orders: list[RestingOrder]) -> None:
        """Orders the ledger says are open, after a restart without a snapshot: a paper
        exchange rests them again; a live exchange holds them already (reconciliation)."""
        ...

    def snapshot(self) -> Any: ...

    def restore(self, data: Any) -> None: ...
