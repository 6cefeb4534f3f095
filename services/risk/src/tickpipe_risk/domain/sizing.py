"""Signal -> order size: a volatility-targeted position, capped, and the step toward it.

The target is direction × strength × capital × vol_target / volatility, capped per symbol.
Only the difference to what is held (position plus open orders) is ordered, sliced to the
per-order limits, rounded toward zero to the lot step, and dropped when below the exchange's
minimum quantity or notional.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tickpipe_risk.domain.market import MarketRules

ZERO = Decimal(0)


@dataclass(frozen=True)
class SizingConfig:
    capital: Decimal = Decimal(100_000)
    vol_target: float = 0.0005  # target per-bar volatility of the position's value, fraction
    max_position_notional: Decimal | None = Decimal(50_000)  # None: the limits alone cap it
    vol_floor: float = 1e-5  # a quiet market must not produce an enormous position


def target_qty(
    direction: int,
    score: float,
    price: Decimal,
    volatility: float | None,
    cfg: SizingConfig,
    cap: Decimal | None = None,
) -> Decimal:
    """Signed target quantity: direction × strength × vol-targeted notional, capped."""
    if direction == 0 or price <= 0:
        return ZERO
    vol = max(volatility or cfg.vol_floor, cfg.vol_floor)
    notional = (
        cfg.capital * Decimal(str(cfg.vol_target / vol)) * Decimal(str(min(1.0, abs(score) * 2)))
    )
    for c in (cfg.max_position_notional, cap):
        if c is not None:
            notional = min(notional, c)
    return Decimal(direction) * notional / price


def order_qty(
    target: Decimal,
    exposure: Decimal,
    price: Decimal,
    max_order_notional: Decimal | None,
    max_order_qty: Decimal | None,
) -> Decimal:
    """The step toward `target`, sliced so one order stays inside the per-order limits."""
    delta = target - exposure
    if price <= 0:
        return ZERO
    cap = max_order_qty
    if max_order_notional is not None:
        by_notional = max_order_notional / price
        cap = by_notional if cap is None else min(cap, by_notional)
    if cap is None:
        return delta
    return delta if abs(delta) <= cap else cap.copy_sign(delta)


def tradable(qty: Decimal, price: Decimal, rules: MarketRules) -> Decimal:
    """`qty` rounded toward zero to the lot step; zero when below the exchange minimums."""
    rounded = rules.round_qty(qty)
    if rounded == 0 or abs(rounded) < rules.min_qty or abs(rounded) * price < rules.min_notional:
        return ZERO
    return rounded
