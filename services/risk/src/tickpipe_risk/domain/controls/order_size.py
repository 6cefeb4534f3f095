"""Fat-finger limits on one order: quantity and notional."""

from __future__ import annotations

from decimal import Decimal

MAX_QTY = "max_order_qty"
MAX_NOTIONAL = "max_order_notional"


def check_order_size(
    qty: Decimal, price: Decimal | None, max_qty: Decimal | None, max_notional: Decimal | None
) -> list[str]:
    """`qty` unsigned; `price` None when no price is known (the notional cannot be judged)."""
    reasons = []
    if max_qty is not None and qty > max_qty:
        reasons.append(MAX_QTY)
    if price is not None and max_notional is not None and qty * price > max_notional:
        reasons.append(MAX_NOTIONAL)
    return reasons
