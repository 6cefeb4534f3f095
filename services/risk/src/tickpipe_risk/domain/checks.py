"""Pre-trade checks. Each returns a reason code when the order must not go out."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class Limits:
    allowed_symbols: frozenset[str] = field(default_factory=frozenset)  # empty: all allowed
    max_order_qty: Decimal = Decimal(5)
    max_order_notional: Decimal = Decimal(25_000)
    max_position_notional: Decimal = Decimal(50_000)
    max_reference_age_ns: int = 5_000_000_000


@dataclass(frozen=True)
class OrderCheck:
    """What the checks need to know about one prospective order."""

    key: str
    signed_qty: Decimal
    reference_price: Decimal | None
    reference_ts: int | None
    position_qty: Decimal  # current position plus open orders
    now_ns: int
    kill_switch: bool = False


def check_order(o: OrderCheck, limits: Limits) -> list[str]:
    reasons: list[str] = []
    if o.kill_switch:
        reasons.append("kill_switch")
    if limits.allowed_symbols and o.key not in limits.allowed_symbols:
        reasons.append("symbol_not_allowed")
    if o.reference_price is None or o.reference_ts is None:
        return [*reasons, "no_reference_price"]
    if o.now_ns - o.reference_ts > limits.max_reference_age_ns:
        reasons.append("stale_reference_price")
    qty = abs(o.signed_qty)
    if qty > limits.max_order_qty:
        reasons.append("max_order_qty")
    if qty * o.reference_price > limits.max_order_notional:
        reasons.append("max_order_notional")
    resulting = abs(o.position_qty + o.signed_qty) * o.reference_price
    if (
        resulting > limits.max_position_notional
        and resulting > abs(o.position_qty) * o.reference_price
    ):
        # Only orders that grow exposure past the cap are refused; reducing is always allowed.
        reasons.append("max_position")
    return reasons
