"""Risk composition: settings -> limits, sizing, controls, market rules -> handler."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tickpipe.messages import OrderType
from tickpipe.service import ServiceContext, ServiceSpec, SnapshotFormat
from tickpipe.topics import CONTROL, DLQ, EXECUTIONS, ORDERS, QUALITY, RISK_DECISIONS, SIGNALS
from tickpipe_risk.domain.controls.circuit import BreakerConfig
from tickpipe_risk.domain.controls.correlation import CorrelationModel, pair
from tickpipe_risk.domain.limits import (
    ACCOUNT_NAMES,
    GUARD_NAMES,
    STRATEGY_NAMES,
    AccountLimits,
    Guards,
    Limits,
    StrategyLimits,
)
from tickpipe_risk.domain.market import MarketRules, load_binance_exchange_info
from tickpipe_risk.domain.sizing import SizingConfig
from tickpipe_risk.handlers import RiskHandler

NS = 1_000_000_000
Amount = Decimal | None  # None (`none` in the environment) turns a limit off
AMOUNT_FIELDS = (*STRATEGY_NAMES, *ACCOUNT_NAMES)


# The defaults live in the domain; the settings name them (and show them in `--help`).
_S, _A, _G, _B, _Z = StrategyLimits(), AccountLimits(), Guards(), BreakerConfig(), SizingConfig()


def _s(ns: int) -> float:
    return ns / NS


class RiskSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TICKPIPE_RISK_", frozen=True, extra="ignore", env_parse_none_str="none"
    )

    account: str = "paper"
    capital: Decimal = _Z.capital
    vol_target: float = Field(default=_Z.vol_target, gt=0)
    exchange_info: Path | None = Path("data/sample/binance-exchange-info-btcusdt.json")
    order_type: Literal["market", "limit"] = "market"
    limit_offset_bps: Decimal = Field(default=Decimal(5), ge=0)
    # Per strategy (defaults; STRATEGY_LIMITS overrides them per strategy id).
    max_order_qty: Amount = _S.max_order_qty
    max_order_notional: Amount = _S.max_order_notional
    max_position_notional: Amount = _S.max_position_notional
    max_gross_notional: Amount = _S.max_gross_notional
    max_open_notional: Amount = _S.max_open_notional
    max_daily_loss: Amount = _S.max_daily_loss
    max_drawdown: Amount = _S.max_drawdown
    strategy_limits: dict[str, dict[str, Amount]] = Field(default_factory=dict)
    # The account: all strategies together.
    account_max_position_notional: Amount = _A.max_position_notional
    account_max_gross_notional: Amount = _A.max_gross_notional
    account_max_open_notional: Amount = _A.max_open_notional
    account_max_daily_loss: Amount = _A.max_daily_loss
    account_max_drawdown: Amount = _A.max_drawdown
    max_correlated_risk: Amount = _A.max_correlated_risk
    vols: dict[str, float] = Field(default_factory=dict)  # daily, per `exchange:symbol`
    default_vol: float = Field(default=0.04, gt=0)
    correlations: dict[str, float] = Field(default_factory=dict)  # `keyA|keyB` -> rho
    default_correlation: float = Field(default=0.8, ge=-1, le=1)
    # Freshness, prices and rates (0 turns one off).
    allowed_symbols: list[str] = Field(default_factory=list)
    max_reference_age_s: float = Field(default=_s(_G.max_reference_age_ns), ge=0)
    max_signal_age_s: float = Field(default=_s(_G.max_signal_age_ns), ge=0)
    collar_bps: Decimal = Field(default=_G.collar_bps, ge=0)
    max_orders_per_symbol: int = Field(default=_G.max_orders_per_symbol, ge=0)
    max_orders_global: int = Field(default=_G.max_orders_global, ge=0)
    order_window_s: float = Field(default=_s(_G.order_window_ns), gt=0)
    fill_throttle_count: int = Field(default=_G.fill_throttle_count, ge=0)
    fill_throttle_window_s: float = Field(default=_s(_G.fill_throttle_window_ns), gt=0)
    duplicate_window_s: float = Field(default=_s(_G.duplicate_window_ns), ge=0)
    # Circuit breaker.
    cb_window: int = Field(default=_B.window, gt=0)
    cb_min_calls: int = Field(default=_B.min_calls, gt=0)
    cb_failure_rate: float = Field(default=_B.failure_rate, gt=0, le=1)
    cb_slow_s: float = Field(default=_s(_B.slow_ns), gt=0)
    cb_open_s: float = Field(default=_s(_B.open_ns), ge=0)
    cb_probes: int = Field(default=_B.probes, gt=0)
    cb_max_volatility: float = Field(default=_B.max_volatility, ge=0)

    @field_validator(*AMOUNT_FIELDS, mode="before")
    @classmethod
    def _none_turns_off(cls, value: Any) -> Any:
        # `none` turns a limit off, from a TOML file or `--set` as from the environment.
        return None if isinstance(value, str) and value.strip().lower() == "none" else value

    @field_validator("strategy_limits")
    @classmethod
    def _known_limits(cls, v: dict[str, dict[str, Amount]]) -> dict[str, dict[str, Amount]]:
        for strategy, override in v.items():
            unknown = set(override) - set(STRATEGY_NAMES)
            if unknown:
                raise ValueError(f"{strategy}: unknown per-strategy limits {sorted(unknown)}")
        return v

    def limits(self) -> Limits:
        """Every limit by its name (`limits.LIMIT_NAMES`): a limit added to the domain's
        dataclasses needs only its field here."""
        guards: dict[str, Any] = {
            field: int(getattr(self, name) * NS) if field.endswith("_ns") else getattr(self, name)
            for name, field in GUARD_NAMES.items()
        }
        return Limits(
            allowed_symbols=frozenset(self.allowed_symbols),
            strategy=StrategyLimits(**{n: getattr(self, n) for n in STRATEGY_NAMES}),
            overrides=self.strategy_limits,
            account=AccountLimits(**{f: getattr(self, n) for n, f in ACCOUNT_NAMES.items()}),
            guards=Guards(**guards),
        )

    def correlation(self) -> CorrelationModel:
        correlations = {}
        for name, rho in self.correlations.items():
            a, sep, b = name.partition("|")
            if not sep or not a or not b:
                raise ValueError(f"correlation {name!r}: expected `exchange:A|exchange:B`")
            correlations[pair(a, b)] = rho
        model = CorrelationModel(
            self.vols, correlations, self.default_vol, self.default_correlation
        )
        model.validate([*self.vols, *(k for p in correlations for k in p)])
        return model

    def breaker(self) -> BreakerConfig:
        return BreakerConfig(
            window=self.cb_window,
            min_calls=self.cb_min_calls,
            failure_rate=self.cb_failure_rate,
            slow_ns=int(self.cb_slow_s * NS),
            open_ns=int(self.cb_open_s * NS),
            probes=self.cb_probes,
            max_volatility=self.cb_max_volatility,
        )


def snapshot_v1_to_v2(data: bytes) -> bytes:
    """Version 1 kept no decided signal ids: start with none (a repeat of a signal decided
    before the upgrade is refused as `duplicate_order` if it was approved)."""
    state = orjson.loads(data)
    state.setdefault("signals", [])
    return orjson.dumps(state)


def build(ctx: ServiceContext, s: RiskSettings) -> RiskHandler:
    rules: dict[str, MarketRules] = {}
    if s.exchange_info is not None and s.exchange_info.exists():
        rules = load_binance_exchange_info(s.exchange_info)
    sizing = SizingConfig(
        capital=s.capital, vol_target=s.vol_target, max_position_notional=s.max_position_notional
    )
    return RiskHandler(
        ctx.ids,
        ctx.cache,
        s.account,
        sizing,
        s.limits(),
        rules,
        correlation=s.correlation(),
        breaker=s.breaker(),
        order_type=OrderType(s.order_type),
        limit_offset_bps=s.limit_offset_bps,
    )


SERVICE = ServiceSpec(
    name="risk",
    order=40,
    # No quotes: the reference price is the touch each signal carries (see handlers.py).
    inputs=(SIGNALS, EXECUTIONS, CONTROL, QUALITY),
    outputs=(ORDERS, RISK_DECISIONS, CONTROL, DLQ),
    settings=RiskSettings,
    build=build,
    # 2: the ids of decided signals (so a signal delivered twice is decided once).
    snapshots=SnapshotFormat(version=2, migrations={1: snapshot_v1_to_v2}),
    transactional=True,
    default_http_port=9104,
)
