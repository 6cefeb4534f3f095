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


def gross(exposures: Mapping[str, Decimal], prices: Mapping[str, Decimal]) -> Decimal:
    """Sum of |signed quantity| × price over symbols."""
    total = ZERO
    for k, q in exposures.items():
        total += abs(q) * prices[k]
    return total


def check_exposure(
    exposures: Mapping[str, Decimal],
    prices: Mapping[str, Decimal],
    key: str,
    qty: Decimal,
    position_cap: Decimal | None,
    gross_cap: Decimal | None,
    prefix: str = "",
) -> list[str]:
    """The order's symbol against `position_cap`, the sum over symbols against `gross_cap`.

    `exposures`: signed quantities held (positions plus open orders); `prices` values each
    of them, and the order's own symbol at the order's price.
    """
    price = prices[key]
    held = exposures.get(key, ZERO)
    before, after = abs(held) * price, abs(held + qty) * price
    reasons = []
    if grows_past(before, after, position_cap):
        reasons.append(prefix + MAX_POSITION)
    if gross_cap is not None:
        total = gross(exposures, prices)
        if grows_past(total, total - before + after, gross_cap):
            reasons.append(prefix + MAX_GROSS)
    return reasons


def reduces(before_qty: Decimal, qty: Decimal) -> bool:
    """True when the order only shrinks the exposure: toward zero, never through it."""
    after = before_qty + qty
    return before_qty != 0 and abs(after) < abs(before_qty) and after * before_qty >= 0
