"""Signal -> target position: volatility-targeted, capped per symbol."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class SizingConfig:
    capital: Decimal = Decimal(100_000)
    vol_target: float = 0.0005  # target per-bar volatility of the position's value, fraction
    max_position_notional: Decimal = Decimal(50_000)
    vol_floor: float = 1e-5  # a quiet market must not produce an enormous position


def target_qty(
    direction: int, score: float, price: Decimal, volatility: float | None, cfg: SizingConfig
) -> Decimal:
    """Signed target quantity: direction × strength × vol-targeted notional, capped."""
    if direction == 0 or price <= 0:
        return Decimal(0)
    vol = max(volatility or cfg.vol_floor, cfg.vol_floor)
    notional = (
        cfg.capital * Decimal(str(cfg.vol_target / vol)) * Decimal(str(min(1.0, abs(score) * 2)))
    )
    notional = min(notional, cfg.max_position_notional)
    return Decimal(direction) * notional / price


def order_qty(
    target: Decimal,
    exposure: Decimal,
    price: Decimal,
    max_order_notional: Decimal,
    max_order_qty: Decimal,
) -> Decimal:
    """The step toward `target`, sliced so one order stays inside the per-order limits."""
    delta = target - exposure
    cap = min(max_order_notional / price, max_order_qty) if price > 0 else Decimal(0)
    return delta if abs(delta) <= cap else cap.copy_sign(delta)
