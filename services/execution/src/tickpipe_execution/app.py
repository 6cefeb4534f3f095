"""Execution composition: settings -> paper exchange -> handler (transactional)."""

from __future__ import annotations

from decimal import Decimal

from pydantic_settings import BaseSettings, SettingsConfigDict

from tickpipe.service import ServiceContext, ServiceSpec
from tickpipe.topics import CONTROL, ORDERS, QUOTES
from tickpipe_execution.domain.paper import PaperConfig, PaperExchange
from tickpipe_execution.handlers import ExecutionHandler


class ExecutionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TICKPIPE_EXECUTION_", frozen=True, extra="ignore")

    slippage_bps: Decimal = Decimal(1)
    taker_fee_bps: Decimal = Decimal("7.5")


def build(ctx: ServiceContext) -> ExecutionHandler:
    s = ExecutionSettings()
    return ExecutionHandler(ctx.ids, PaperExchange(PaperConfig(s.slippage_bps, s.taker_fee_bps)))


SERVICE = ServiceSpec(
    name="execution",
    inputs=(ORDERS, QUOTES, CONTROL),
    build=build,
    transactional=True,
    latest_only=(QUOTES,),  # only the latest quote per instrument matters here
    default_http_port=9105,
)
