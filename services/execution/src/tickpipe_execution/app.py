"""Execution composition: settings -> venue (paper exchange or ccxt) -> handler (transactional).

Paper mode loads no credentials at all; live mode refuses to start without them.
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

from tickpipe.service import ServiceContext, ServiceSpec
from tickpipe.topics import CONTROL, ORDERS, QUOTES, TRADES
from tickpipe_execution.domain.paper import PaperConfig, PaperExchange
from tickpipe_execution.domain.venue import Venue
from tickpipe_execution.handlers import ExecutionHandler


class ExecutionSettings(BaseSettings):
    """`TICKPIPE_EXECUTION_*`. Credentials are not settings: see `live.credentials`."""

    model_config = SettingsConfigDict(env_prefix="TICKPIPE_EXECUTION_", frozen=True, extra="ignore")

    mode: Literal["paper", "live"] = "paper"
    slippage_bps: Decimal = Decimal(1)
    taker_fee_bps: Decimal = Decimal("7.5")
    maker_fee_bps: Decimal = Decimal("2.5")
    latency_ms: Decimal = Decimal(0)
    exchange: str = "binance"
    sandbox: bool = True  # live against the exchange's testnet unless turned off explicitly
    timeout_ms: int = 10_000
    rest_url: str | None = None  # a Binance-compatible REST base URL instead of the exchange's
    poll_ms: int = 2_000  # live: how often (market time) resting orders are polled for fills
    symbols: list[str] = []  # live: also scanned for unknown open orders at reconciliation

    def paper_config(self) -> PaperConfig:
        return PaperConfig(
            slippage_bps=self.slippage_bps,
            taker_fee_bps=self.taker_fee_bps,
            maker_fee_bps=self.maker_fee_bps,
            latency_ns=int(self.latency_ms * 1_000_000),
        )


def build_venue(s: ExecutionSettings) -> Venue:
    if s.mode == "paper":
        return PaperExchange(s.paper_config())
    from tickpipe_execution.live.ccxt_venue import CcxtVenue
    from tickpipe_execution.live.clients import make_client
    from tickpipe_execution.live.credentials import CredentialsError, load_credentials

    try:
        creds = load_credentials(os.environ)
    except CredentialsError as exc:
        raise SystemExit(f"execution: refusing to start: {exc}") from None
    urls = None
    if s.rest_url:
        urls = {"public": f"{s.rest_url}/api/v3", "private": f"{s.rest_url}/api/v3"}
    client = make_client(
        s.exchange, creds, sandbox=s.sandbox and not urls, timeout_ms=s.timeout_ms, urls=urls
    )
    return CcxtVenue(client, symbols=tuple(s.symbols), poll_interval_ns=s.poll_ms * 1_000_000)


def build(ctx: ServiceContext) -> ExecutionHandler:
    return ExecutionHandler(ctx.ids, build_venue(ExecutionSettings()))


SERVICE = ServiceSpec(
    name="execution",
    inputs=(ORDERS, QUOTES, TRADES, CONTROL),
    build=build,
    transactional=True,
    latest_only=(QUOTES,),  # the paper exchange reads only the latest quote per instrument
    default_http_port=9105,
)
