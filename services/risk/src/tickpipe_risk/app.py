"""Risk composition: settings -> limits, sizing, controls, market rules -> handler."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tickpipe.messages import OrderType
from tickpipe.service import ServiceContext, ServiceSpec
from tickpipe.topics import CONTROL, EXECUTIONS, QUALITY, SIGNALS
from tickpipe_risk.domain.controls.circuit import BreakerConfig
from tickpipe_risk.domain.controls.correlation import CorrelationModel, pair
from tickpipe_risk.domain.limits import (
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


class RiskSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TICKPIPE_RISK_", frozen=True, extra="ignore", env_parse_none_str="none"
    )

    account: str = "paper"
    capital: Decimal = Decimal(100_000)
    vol_target: float = Field(default=0.0005, gt=0)
    exchange_info: Path | None = Path("data/sample/binance-exchange-info-btcusdt.json")
    order_type: Literal["market", "limit"] = "market"
    limit_offset_bps: Decimal = Field(default=Decimal(5), ge=0)
    # Per strategy (defaults; STRATEGY_LIMITS overrides them per strategy id).
    max_order_qty: Amount = Decimal(5)
    max_order_notional: Amount = Decimal(25_000)
    max_position_notional: Amount = Decimal(50_000)
    max_gross_notional: Amount = Decimal(150_000)
    max_open_notional: Amount = Decimal(100_000)
    max_daily_loss: Amount = Decimal(5_000)
    max_drawdown: Amount = Decimal(10_000)
    strategy_limits: dict[str, dict[str, Amount]] = Field(default_factory=dict)
    # The account: all strategies together.
    account_max_position_notional: Amount = Decimal(100_000)
    account_max_gross_notional: Amount = Decimal(250_000)
    account_max_open_notional: Amount = Decimal(150_000)
    account_max_daily_loss: Amount = Decimal(10_000)
    account_max_drawdown: Amount = Decimal(20_000)
    max_correlated_risk: Amount = Decimal(10_000)
    vols: dict[str, float] = Field(default_factory=dict)  # daily, per `exchange:symbol`
    default_vol: float = Field(default=0.04, gt=0)
    correlations: dict[str, float] = Field(default_factory=dict)  # `keyA|keyB` -> rho
    default_correlation: float = Field(default=0.8, ge=-1, le=1)
    # Freshness, prices and rates (0 turns one off).
    allowed_symbols: list[str] = Field(default_factory=list)
    max_reference_age_s: float = Field(default=5.0, ge=0)
    max_signal_age_s: float = Field(default=5.0, ge=0)
    collar_bps: Decimal = Field(default=Decimal(100), ge=0)
    max_orders_per_symbol: int = Field(default=10, ge=0)
    max_orders_global: int = Field(default=50, ge=0)
    order_window_s: float = Field(default=1.0, gt=0)
    fill_throttle_count: int = Field(default=25, ge=0)
    fill_throttle_window_s: float = Field(default=10.0, gt=0)
    duplicate_window_s: float = Field(default=0.5, ge=0)
    # Circuit breaker.
    cb_window: int = Field(default=20, gt=0)
    cb_min_calls: int = Field(default=10, gt=0)
    cb_failure_rate: float = Field(default=0.5, gt=0, le=1)
    cb_slow_s: float = Field(default=2.0, gt=0)
    cb_open_s: float = Field(default=30.0, ge=0)
    cb_probes: int = Field(default=3, gt=0)
    cb_max_volatility: float = Field(default=0.005, ge=0)

    @field_validator("strategy_limits")
    @classmethod
    def _known_limits(cls, v: dict[str, dict[str, Amount]]) -> dict[str, dict[str, Amount]]:
        for strategy, override in v.items():
            unknown = set(override) - set(STRATEGY_NAMES)
            if unknown:
                raise ValueError(f"{strategy}: unknown per-strategy limits {sorted(unknown)}")
        return v

    def limits(self) -> Limits:
        return Limits(
            allowed_symbols=frozenset(self.allowed_symbols),
            strategy=StrategyLimits(
                max_order_qty=self.max_order_qty,
                max_order_notional=self.max_order_notional,
                max_position_notional=self.max_position_notional,
                max_gross_notional=self.max_gross_notional,
                max_open_notional=self.max_open_notional,
                max_daily_loss=self.max_daily_loss,
                max_drawdown=self.max_drawdown,
            ),
            overrides=self.strategy_limits,
            account=AccountLimits(
                max_position_notional=self.account_max_position_notional,
                max_gross_notional=self.account_max_gross_notional,
                max_open_notional=self.account_max_open_notional,
                max_daily_loss=self.account_max_daily_loss,
                max_drawdown=self.account_max_drawdown,
                max_correlated_risk=self.max_correlated_risk,
            ),
            guards=Guards(
                max_reference_age_ns=int(self.max_reference_age_s * NS),
                max_signal_age_ns=int(self.max_signal_age_s * NS),
                collar_bps=self.collar_bps,
                max_orders_per_symbol=self.max_orders_per_symbol,
                max_orders_global=self.max_orders_global,
                order_window_ns=int(self.order_window_s * NS),
                fill_throttle_count=self.fill_throttle_count,
                fill_throttle_window_ns=int(self.fill_throttle_window_s * NS),
                duplicate_window_ns=int(self.duplicate_window_s * NS),
            ),
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


def build(ctx: ServiceContext) -> RiskHandler:
    s = RiskSettings()
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
    # No quotes: the reference price is the touch each signal carries (see handlers.py).
    inputs=(SIGNALS, EXECUTIONS, CONTROL, QUALITY),
    build=build,
    transactional=True,
    default_http_port=9104,
)
