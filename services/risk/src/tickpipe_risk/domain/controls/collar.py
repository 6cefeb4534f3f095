"""Price collar: a limit price too far from the latest reference is refused.

A market order is priced at the reference itself, so it passes the collar; what guards it is
the reference's existence and freshness (`freshness`), which fail closed.
"""

from __future__ import annotations

from decimal import Decimal

REASON = "price_collar"
BPS = Decimal(10_000)


def check_collar(limit_price: Decimal | None, reference: Decimal, collar_bps: Decimal) -> list[str]:
    if limit_price is None or not collar_bps:
        return []
    return [REASON] if abs(limit_price - reference) * BPS > collar_bps * reference else []
