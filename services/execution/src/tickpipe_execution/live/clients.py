"""Builds the ccxt clients for live trading: spot only, our own rate limiter, sandbox or not.

REST goes through the sync client; the private stream through a ccxt.pro client of the same
exchange (async, used only on the stream's thread)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import ccxt  # type: ignore[import-untyped]  # ccxt ships no stubs
import ccxt.pro  # type: ignore[import-untyped]

from tickpipe_execution.live.credentials import Credentials


def make_client(
    exchange_id: str,
    credentials: Credentials,
    *,
    sandbox: bool = False,
    timeout_ms: int = 10_000,
    urls: Mapping[str, str] | None = None,
) -> ccxt.Exchange:
    """No I/O here: markets load on the first call that needs them."""
    return _configure(getattr(ccxt, exchange_id), credentials, sandbox, timeout_ms, urls)


def make_stream_client(
    exchange_id: str,
    credentials: Credentials,
    *,
    sandbox: bool = False,
    timeout_ms: int = 10_000,
    urls: Mapping[str, str] | None = None,
    ws_url: str | None = None,
) -> Any | None:
    """The ccxt.pro client for `watch_orders`, or None where the exchange has no such stream
    (then resting orders are polled)."""
    cls = getattr(ccxt.pro, exchange_id, None)
    if cls is None:
        return None
    client = _configure(cls, credentials, sandbox, timeout_ms, urls)
    if not client.has.get("watchOrders"):
        return None
    if ws_url:
        # A Binance-compatible WebSocket API (the user-data stream ccxt subscribes to for spot).
        ws = client.urls["api"]["ws"]
        ws["ws-api"] = {**ws.get("ws-api", {}), "spot": ws_url}
    return client


def _configure(
    cls: Any,
    credentials: Credentials,
    sandbox: bool,
    timeout_ms: int,
    urls: Mapping[str, str] | None,
) -> Any:
    client = cls(
        {
            **credentials.ccxt_config(),
            "enableRateLimit": False,  # the shared TokenBucket paces every call instead
            "timeout": timeout_ms,
        }
    )
    # ccxt logs every request's headers (the API key) at DEBUG: give it a logger that never
    # emits below INFO, whatever level the service runs at.
    quiet = logging.getLogger("tickpipe_execution.ccxt")
    quiet.setLevel(logging.INFO)
    client.logger = quiet
    client.options["fetchMarkets"] = {"types": ["spot"]}
    client.options["fetchMargins"] = False
    client.options["fetchCurrencies"] = False
    if sandbox:
        client.set_sandbox_mode(True)
    if urls:
        client.urls["api"] = {**client.urls["api"], **urls}
    return client
