"""Position limits on what the order would produce: per symbol, gross over symbols.

Exposure counts open orders as if filled. Only an order that grows exposure past its cap is
refused: one that shrinks an already oversized exposure always passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

MAX_POSITION = "max_position"
MAX_GROSS = "max_gross_exposure"
ZERO = Decimal(0)


def grows_past(before: Decimal, after: Decimal, cap: Decimal | None) -> bool:
    return cap is not None and after > cap and after > before


def check_position(
    before_qty: Decimal, qty: Decimal, price: Decimal, cap: Decimal | None, reason: str
) -> list[str]:
    before = abs(before_qty) * price
    after = abs(before_qty + qty) * price
    return [reason] if grows_past(before, after, cap) else []


def gross(exposures: Mapping[str, Decimal], prices: Mapping[str, Decimal]) -> Decimal:
    """Sum of |signed quantity| × price over symbols."""
    return sum((abs(q) * prices[k] for k, q in exposures.items()), ZERO)


def check_gross(
    exposures: Mapping[str, Decimal],
    prices: Mapping[str, Decimal],
    key: str,
    qty: Decimal,
    cap: Decimal | None,
    reason: str,
) -> list[str]:
    if cap is None:
        return []
    before = gross(exposures, prices)
    held = exposures.get(key, ZERO)
    after = before - abs(held) * prices[key] + abs(held + qty) * prices[key]
    return [reason] if grows_past(before, after, cap) else []


def reduces(before_qty: Decimal, qty: Decimal) -> bool:
    """True when the order only shrinks the exposure: toward zero, never through it."""
    after = before_qty + qty
    return before_qty != 0 and abs(after) < abs(before_qty) and after * before_qty >= 0
