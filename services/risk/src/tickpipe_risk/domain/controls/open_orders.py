"""Max open-order notional: what is sent but not yet filled, this order included."""

from __future__ import annotations

from decimal import Decimal

REASON = "max_open_notional"


def check_open_notional(
    open_notional: Decimal, order_notional: Decimal, cap: Decimal | None, reason: str = REASON
) -> list[str]:
    return [reason] if cap is not None and open_notional + order_notional > cap else []
