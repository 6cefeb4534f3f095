"""Risk audit records: every approval and rejection, with reason codes."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Literal

from pydantic import Field

from tickpipe.messages.market import Instrument, Side


class RiskDecision(Instrument):
    event_type: ClassVar[str] = "risk_decision"
    type: Literal["risk_decision"] = "risk_decision"
    strategy_id: str
    account: str
    approved: bool
    reasons: list[str] = Field(default_factory=list, description="Reason codes; empty if approved.")
    client_order_id: str | None = None
    side: Side | None = None
    quantity: Decimal | None = None
    reference_price: Decimal | None = None
