"""Builds the ccxt client for a feed: pro (websockets) or async REST, with our rate limiter.

ccxt computes each request's cost from the exchange's endpoint weights and calls
`exchange.throttle(cost)` before sending; pointing that at the process-wide token bucket for
the exchange (refilled at 1000 / `exchange.rateLimit` per second) honours ccxt's limits while
letting every component of the process share one budget per exchange.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from tickpipe.ratelimit import LIMITERS, RateLimiters
from tickpipe_ingest import metrics

# ccxt's defaults, raised: more trades kept between two watch calls means fewer lost when
# publishing falls behind (a loss there still shows up as a trade-id gap).
CCXT_DEFAULTS: dict[str, Any] = {"enableRateLimit": True, "tradesLimit": 10_000}


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def make_exchange(
    exchange_id: str,
    transport: str,
    ccxt_config: Mapping[str, Any],
    *,
    rate_capacity: float = 1.0,
    limiters: RateLimiters = LIMITERS,
) -> tuple[Any, str]:
    """(client, transport): `ws` through ccxt.pro when asked or available (`auto`), else
    `rest` through ccxt.async_support. `ccxt_config` is deep-merged into ccxt's constructor
    config (e.g. `urls`, `options`). Raises ValueError for an unknown exchange."""
    import ccxt.async_support as ccxt_rest  # type: ignore[import-untyped]  # ccxt ships no stubs
    import ccxt.pro as ccxt_ws  # type: ignore[import-untyped]  # ccxt ships no stubs

    cls = getattr(ccxt_ws, exchange_id, None) if transport in ("auto", "ws") else None
    if cls is None and transport == "ws":
        raise ValueError(f"ccxt.pro has no websocket client for {exchange_id!r}")
    if cls is None:
        cls, transport = getattr(ccxt_rest, exchange_id, None), "rest"
    else:
        transport = "ws"
    if cls is None:
        raise ValueError(f"unknown ccxt exchange {exchange_id!r}")
    client = cls(_merge(CCXT_DEFAULTS, ccxt_config))
    bucket = limiters.for_exchange(exchange_id, float(client.rateLimit), rate_capacity)
    waited = metrics.RATE_LIMIT_WAIT.labels(f"exchange:{exchange_id}")

    async def throttle(cost: float | None = None) -> None:
        waited.inc(await bucket.acquire_async(1.0 if cost is None else float(cost)))

    client.throttle = throttle
    return client, transport
