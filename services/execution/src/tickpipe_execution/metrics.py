"""Execution metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ORDERS_BY_STATE = Counter("tickpipe_orders", "Order state changes reported.", ["state"])
STREAM_CONNECTED = Gauge(
    "tickpipe_execution_stream_connected", "1 while the exchange's private stream is subscribed."
)
STREAM_CANCEL_ALLS = Counter(
    "tickpipe_execution_disconnect_cancel_alls",
    "Cancel-alls sent because the exchange's private stream was down past its grace period.",
)
