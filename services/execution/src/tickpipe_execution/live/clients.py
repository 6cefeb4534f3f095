"""Builds the ccxt client for live trading: spot only, our own rate limiter, sandbox or not."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import ccxt  # type: ignore[import-untyped]  # ccxt ships no stubs

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
    cls = getattr(ccxt, exchange_id)
    client: ccxt.Exchange = cls(
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
