"""Orders from risk to execution. Prices and quantities are exact decimals, carried as strings."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field

from tickpipe.messages.market import Instrument, Side


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class OrderRequest(Instrument):
    """An approved order: a command to execution (`SubmitOrder`)."""

    event_type: ClassVar[str] = "order"
    type: Literal["order"] = "order"
    client_order_id: str = Field(
        min_length=1,
        max_length=36,
        description="Deterministic from the order event: retries "
        "and restarts never place the same order twice.",
    )
    account: str
    strategy_id: str
    side: Side
    order_type: OrderType = OrderType.MARKET
    quantity: Decimal = Field(gt=0)
    limit_price: Decimal | None = Field(default=None, gt=0)
    reference_price: Decimal = Field(gt=0, description="Price risk used for notional checks.")
    market_seq: int | None = Field(
        default=None,
        ge=0,
        description="The signal's `market_seq`: the point in the market "
        "stream this was decided at (replays and the paper exchange align on it).",
    )
