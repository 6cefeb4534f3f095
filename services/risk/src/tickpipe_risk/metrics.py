"""Risk metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DECISIONS = Counter("tickpipe_risk_decisions", "Risk decisions by reason code.", ["reason"])
POSITION = Gauge("tickpipe_position_qty", "Signed position quantity.", ["instrument"])
PNL = Gauge("tickpipe_pnl_net", "Net PnL (realized + unrealized - fees).", ["account"])
