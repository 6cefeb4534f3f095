"""What a venue (the paper exchange or a live exchange) tells the OMS about an order.

Both venues speak these, so the handler turns them into state changes and reports the
same way whatever is behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tickpipe.messages import Liquidity


@dataclass(frozen=True)
class Acked:
    client_order_id: str
    exchange_order_id: str
    ts: int | None = None  # the venue's time of the event (paper: market time); None: now


@dataclass(frozen=True)
class Refused:
    client_order_id: str
    reason: str


@dataclass(frozen=True)
class Filled:
    client_order_id: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str | None
    liquidity: Liquidity
    trade_id: str
    exchange_order_id: str | None = None
    ts: int | None = None  # the venue's time of the fill (paper: market time); None: now


@dataclass(frozen=True)
class Cancelled:
    client_order_id: str
    reason: str


VenueEvent = Acked | Refused | Filled | Cancelled


class VenueUnavailable(RuntimeError):
    """The venue could not be reached to answer (after its own retries)."""
