"""Execution composition: settings -> venue (paper exchange or ccxt) -> handler (transactional).

Paper mode loads no credentials at all; live mode refuses to start without them. Live mode
keeps no state snapshot: its OMS is rebuilt from the ledger at start (see `live.oms`).
"""

from __future__ import annotations

import atexit
import logging
import os
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tickpipe.service import Handler, ServiceContext, ServiceSpec
from tickpipe.topics import CONTROL, DLQ, EXECUTIONS, ORDERS, QUOTES, TRADES
from tickpipe_execution.domain.paper import PaperConfig, PaperExchange
from tickpipe_execution.domain.venue import Venue
from tickpipe_execution.handlers import ExecutionHandler

if TYPE_CHECKING:  # live imports ccxt: only loaded in live mode
    from tickpipe_execution.live.ccxt_venue import CcxtVenue

log = logging.getLogger(__name__)


_PAPER = PaperConfig()


class ExecutionSettings(BaseSettings):
    """`TICKPIPE_EXECUTION_*`. Credentials are not settings: see `live.credentials`."""

    model_config = SettingsConfigDict(env_prefix="TICKPIPE_EXECUTION_", frozen=True, extra="ignore")

    mode: Literal["paper", "live"] = "paper"
    # The paper exchange's defaults live in its domain (`PaperConfig`).
    slippage_bps: Decimal = _PAPER.slippage_bps
    taker_fee_bps: Decimal = _PAPER.taker_fee_bps
    maker_fee_bps: Decimal = _PAPER.maker_fee_bps
    latency_ms: Decimal = Decimal(_PAPER.latency_ns) / 1_000_000
    # Market events per instrument kept across a restart for orders still in flight.
    snapshot_history: int = Field(_PAPER.snapshot_history, ge=0)
    exchange: str = "binance"
    sandbox: bool = True  # live against the exchange's testnet unless turned off explicitly
    timeout_ms: int = 10_000
    rest_url: str | None = None  # a Binance-compatible REST base URL instead of the exchange's
    poll_ms: int = 2_000  # live: how often (market time) resting orders are polled for fills
    symbols: list[str] = []  # live: also scanned for unknown open orders at reconciliation
    # live: the exchange's private stream (watch_orders/watch_my_trades) where it has one;
    # polling every `stream_poll_ms` stays on as a safety net (every `poll_ms` while down).
    stream: bool = True
    ws_url: str | None = None  # a Binance-compatible WebSocket API URL instead of the exchange's
    stream_poll_ms: int = 60_000
    # live, opt-in: cancel all open orders once the stream has been down `disconnect_grace_ms`
    # (where the exchange has a dead-man switch, cancelAllOrdersAfter(`dead_man_ms`) is kept
    # armed as a heartbeat instead), and/or on a graceful shutdown.
    cancel_on_disconnect: bool = False
    disconnect_grace_ms: int = 5_000
    dead_man_ms: int = 60_000
    cancel_on_shutdown: bool = False

    def paper_config(self) -> PaperConfig:
        return PaperConfig(
            slippage_bps=self.slippage_bps,
            taker_fee_bps=self.taker_fee_bps,
            maker_fee_bps=self.maker_fee_bps,
            latency_ns=int(self.latency_ms * 1_000_000),
            snapshot_history=self.snapshot_history,
        )


def build_venue(s: ExecutionSettings) -> Venue:
    if s.mode == "paper":
        return PaperExchange(s.paper_config())
    from tickpipe_execution.live.ccxt_venue import CcxtVenue
    from tickpipe_execution.live.clients import make_client, make_stream_client
    from tickpipe_execution.live.credentials import CredentialsError, load_credentials
    from tickpipe_execution.live.stream import DisconnectPolicy, UserStream

    try:
        creds = load_credentials(os.environ)
    except CredentialsError as exc:
        raise SystemExit(f"execution: refusing to start: {exc}") from None
    urls = None
    if s.rest_url:
        urls = {"public": f"{s.rest_url}/api/v3", "private": f"{s.rest_url}/api/v3"}
    sandbox = s.sandbox and not urls
    client = make_client(s.exchange, creds, sandbox=sandbox, timeout_ms=s.timeout_ms, urls=urls)
    venue = CcxtVenue(
        client,
        symbols=tuple(s.symbols),
        poll_interval_ns=s.poll_ms * 1_000_000,
        stream_poll_interval_ns=s.stream_poll_ms * 1_000_000,
    )
    pro = None
    # A custom REST URL without a stream URL (a test double): never the real exchange's stream.
    if s.stream and (s.ws_url or not s.rest_url):
        pro = make_stream_client(
            s.exchange, creds, sandbox=sandbox, timeout_ms=s.timeout_ms, urls=urls, ws_url=s.ws_url
        )
    if pro is not None:
        policy = DisconnectPolicy(
            cancel_on_disconnect=s.cancel_on_disconnect,
            grace_s=s.disconnect_grace_ms / 1000,
            dead_man_s=s.dead_man_ms / 1000,
        )
        venue.stream = UserStream(pro, lambda: set(venue.traded), policy).start()
    elif s.cancel_on_disconnect:
        log.warning(
            "no private stream for this exchange: cancel-on-disconnect has nothing to watch"
        )
    atexit.register(_shutdown, venue, s.cancel_on_shutdown)
    return venue


def _shutdown(venue: CcxtVenue, cancel: bool) -> None:
    """A graceful stop (SIGTERM runs atexit; SIGKILL does not): optionally cancel everything
    resting, then close the stream. The OMS reports those cancels when it next reconciles."""
    if cancel:
        try:
            log.warning(
                "shutting down: cancelling all open orders", extra={"n": venue.cancel_all()}
            )
        except Exception as exc:
            log.error("cancel-all on shutdown failed", extra={"error": type(exc).__name__})
    venue.close()


def build(ctx: ServiceContext, s: ExecutionSettings) -> Handler:
    handler = ExecutionHandler(ctx.ids, build_venue(s))
    if s.mode == "paper":
        return handler
    from tickpipe_execution.live.oms import LedgerBackedHandler

    return LedgerBackedHandler(handler, ctx.cache)


SERVICE = ServiceSpec(
    name="execution",
    order=50,
    # Every quote: the paper exchange keeps the recent stream (a late order trades at the
    # touch of its own point) and restores its arrival order by ingest_seq.
    inputs=(ORDERS, QUOTES, TRADES, CONTROL),
    outputs=(EXECUTIONS, DLQ),
    settings=ExecutionSettings,
    build=build,
    transactional=True,
    default_http_port=9105,
)
