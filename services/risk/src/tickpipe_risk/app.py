"""Risk composition: settings -> limits, sizing, market rules -> handler (transactional)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tickpipe.service import ServiceContext, ServiceSpec
from tickpipe.topics import CONTROL, EXECUTIONS, QUOTES, SIGNALS
from tickpipe_risk.domain.checks import Limits
from tickpipe_risk.domain.market import MarketRules, load_binance_exchange_info
from tickpipe_risk.domain.sizing import SizingConfig
from tickpipe_risk.handlers import RiskHandler


class RiskSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TICKPIPE_RISK_", frozen=True, extra="ignore")

    account: str = "paper"
    capital: Decimal = Decimal(100_000)
    vol_target: float = Field(default=0.0005, gt=0)
    max_order_qty: Decimal = Decimal(5)
    max_order_notional: Decimal = Decimal(25_000)
    max_position_notional: Decimal = Decimal(50_000)
    max_reference_age_s: float = Field(default=5.0, gt=0)
    allowed_symbols: list[str] = Field(default_factory=list)
    exchange_info: Path | None = Path("data/sample/binance-exchange-info-btcusdt.json")


def build(ctx: ServiceContext) -> RiskHandler:
    s = RiskSettings()
    rules: dict[str, MarketRules] = {}
    if s.exchange_info is not None and s.exchange_info.exists():
        rules = load_binance_exchange_info(s.exchange_info)
    limits = Limits(
        allowed_symbols=frozenset(s.allowed_symbols),
        max_order_qty=s.max_order_qty,
        max_order_notional=s.max_order_notional,
        max_position_notional=s.max_position_notional,
        max_reference_age_ns=int(s.max_reference_age_s * 1e9),
    )
    sizing = SizingConfig(
        capital=s.capital, vol_target=s.vol_target, max_position_notional=s.max_position_notional
    )
    return RiskHandler(ctx.ids, ctx.cache, s.account, sizing, limits, rules)


SERVICE = ServiceSpec(
    name="risk",
    inputs=(SIGNALS, QUOTES, EXECUTIONS, CONTROL),
    build=build,
    transactional=True,
    latest_only=(QUOTES,),  # only the latest quote per instrument matters here
    default_http_port=9104,
)
