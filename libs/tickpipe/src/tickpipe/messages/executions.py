"""Execution reports: every order state change and fill. `executions.v1` is the ledger."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field

from tickpipe.messages.market import Instrument, Side


class OrderStatus(StrEnum):
    NEW = "new"
    SUBMITTED = "submitted"
    ACKNOWLEDGED = "acknowledged"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    PENDING_CANCEL = "pending_cancel"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


class ExecutionReport(Instrument):
    event_type: ClassVar[str] = "execution"
    type: Literal["execution"] = "execution"
    client_order_id: str
    exchange_order_id: str | None = None
    account: str
    strategy_id: str
    side: Side
    status: OrderStatus
    quantity: Decimal = Field(gt=0, description="Order quantity.")
    cum_qty: Decimal = Field(ge=0)
    leaves_qty: Decimal = Field(ge=0)
    last_qty: Decimal = Field(default=Decimal(0), ge=0, description="Filled by this report.")
    last_price: Decimal | None = Field(default=None, gt=0)
    fee: Decimal = Decimal(0)
    fee_currency: str | None = None
    liquidity: Liquidity | None = None
    trade_id: str | None = Field(default=None, description="Exchange trade id of this fill.")
    reason: str | None = Field(default=None, description="Why, for rejections/cancels.")

    @property
    def is_fill(self) -> bool:
        return self.last_qty > 0
