"""Execution metrics."""

from __future__ import annotations

from prometheus_client import Counter

ORDERS_BY_STATE = Counter("tickpipe_orders", "Order state changes reported.", ["state"])
