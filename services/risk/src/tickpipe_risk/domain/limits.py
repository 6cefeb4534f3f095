"""Limits: per-strategy defaults and overrides, account totals, and the names `set_limit` knows.

One risk service is the gateway for many strategies trading one account. Every strategy's own
book is held to `StrategyLimits` (defaults, with per-strategy overrides); the sum of all of
them to `AccountLimits`. `None` turns a limit off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from typing import Any

SECOND_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class StrategyLimits:
    max_order_qty: Decimal | None = Decimal(5)
    max_order_notional: Decimal | None = Decimal(25_000)
    max_position_notional: Decimal | None = Decimal(50_000)  # per symbol
    max_gross_notional: Decimal | None = Decimal(150_000)  # sum over symbols of |position|
    max_open_notional: Decimal | None = Decimal(100_000)  # orders sent, not yet filled
    max_daily_loss: Decimal | None = Decimal(5_000)  # since 00:00 UTC, marked to market
    max_drawdown: Decimal | None = Decimal(10_000)  # below the high-water mark of net PnL


@dataclass(frozen=True, slots=True)
class AccountLimits:
    max_position_notional: Decimal | None = Decimal(100_000)
    max_gross_notional: Decimal | None = Decimal(250_000)
    max_open_notional: Decimal | None = Decimal(150_000)
    max_daily_loss: Decimal | None = Decimal(10_000)
    max_drawdown: Decimal | None = Decimal(20_000)
    max_correlated_risk: Decimal | None = Decimal(10_000)  # 1-sigma daily PnL, see correlation


@dataclass(frozen=True, slots=True)
class Guards:
    """Limits on freshness, prices and rates rather than on money. Zero turns one off."""

    max_reference_age_ns: int = 5 * SECOND_NS
    max_signal_age_ns: int = 5 * SECOND_NS
    collar_bps: Decimal = Decimal(100)  # limit price vs reference
    max_orders_per_symbol: int = 10  # per order window, all strategies
    max_orders_global: int = 50
    order_window_ns: int = SECOND_NS
    fill_throttle_count: int = 25  # this many fills of one strategy in one symbol ...
    fill_throttle_window_ns: int = 10 * SECOND_NS  # ... within this: trading disabled
    duplicate_window_ns: int = SECOND_NS // 2  # identical orders this close are refused


class UnknownLimit(ValueError):
    """`set_limit` named a limit that does not exist, or gave it an unusable value."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


STRATEGY_NAMES = _names(StrategyLimits)
# Account totals share their names with the strategy limits, so `set_limit` prefixes them.
ACCOUNT_NAMES = {
    n if n == "max_correlated_risk" else f"account_{n}": n for n in _names(AccountLimits)
}
# Durations are set in seconds (as in the settings), stored in nanoseconds.
GUARD_NAMES = {n.removesuffix("_ns") + "_s" if n.endswith("_ns") else n: n for n in _names(Guards)}
LIMIT_NAMES = frozenset([*STRATEGY_NAMES, *ACCOUNT_NAMES, *GUARD_NAMES])


def _decimal(name: str, value: str) -> Decimal:
    try:
        d = Decimal(value)
    except InvalidOperation:
        raise UnknownLimit("invalid_limit_value", f"{name}={value!r} is not a decimal") from None
    if not d.is_finite() or d < 0:
        raise UnknownLimit("invalid_limit_value", f"{name}={value!r} must be finite and >= 0")
    return d


@dataclass(frozen=True, slots=True)
class Limits:
    allowed_symbols: frozenset[str] = field(default_factory=frozenset)  # empty: all allowed
    strategy: StrategyLimits = field(default_factory=StrategyLimits)
    overrides: Mapping[str, Mapping[str, Decimal | None]] = field(default_factory=dict)
    account: AccountLimits = field(default_factory=AccountLimits)
    guards: Guards = field(default_factory=Guards)

    def for_strategy(self, strategy_id: str) -> StrategyLimits:
        override = self.overrides.get(strategy_id)
        return replace(self.strategy, **override) if override else self.strategy

    def with_limit(self, name: str, value: str, strategy_id: str | None = None) -> Limits:
        """The limits after `set_limit name=value` (for one strategy, or all of them)."""
        if name not in LIMIT_NAMES:
            raise UnknownLimit("unknown_limit", f"no limit named {name!r}")
        amount = _decimal(name, value)
        if strategy_id is not None and name not in STRATEGY_NAMES:
            raise UnknownLimit("unknown_limit", f"{name!r} is not a per-strategy limit")
        if name in STRATEGY_NAMES:
            if strategy_id is None:
                return replace(self, strategy=replace(self.strategy, **{name: amount}))
            overrides = {k: dict(v) for k, v in self.overrides.items()}
            overrides.setdefault(strategy_id, {})[name] = amount
            return replace(self, overrides=overrides)
        if name in ACCOUNT_NAMES:
            return replace(self, account=replace(self.account, **{ACCOUNT_NAMES[name]: amount}))
        field_name = GUARD_NAMES[name]
        guard: int | Decimal
        if field_name.endswith("_ns"):
            guard = int(amount * SECOND_NS)
        elif field_name == "collar_bps":
            guard = amount
        elif amount == amount.to_integral_value():
            guard = int(amount)
        else:
            raise UnknownLimit("invalid_limit_value", f"{name}={value!r} must be a whole number")
        change: dict[str, Any] = {field_name: guard}
        return replace(self, guards=replace(self.guards, **change))
