"""Risk metrics."""

from __future__ import annotations

from prometheus_client import Gauge

from tickpipe.telemetry.metrics import Counter

DECISIONS = Counter(
    "tickpipe_risk_decisions", "Risk decisions by reason code.", ["reason", "strategy"]
)
DUPLICATE_FILLS = Counter("tickpipe_risk_duplicate_fills", "Fills seen before and ignored.")
POSITION = Gauge("tickpipe_position_qty", "Signed position quantity.", ["instrument"])
PNL = Gauge("tickpipe_pnl_net", "Net PnL (realized + unrealized - fees).", ["account"])
KILL_SWITCH = Gauge("tickpipe_risk_kill_switch", "1 while the kill switch is on.", ["account"])
HALTS = Gauge(
    "tickpipe_risk_halted",
    "1 while new orders in an instrument are halted, by cause.",
    ["instrument", "cause"],
)
CIRCUIT = Gauge(
    "tickpipe_risk_circuit_state", "Circuit breaker: 0 closed, 1 half-open, 2 open.", ["instrument"]
)
REBUILT = Gauge(
    "tickpipe_risk_rebuilt_positions",
    "Instruments with a position after the last start-up rebuild from the topics.",
    ["account"],
)
