"""Ingest's own Prometheus metrics (the platform's messages_out / dead_letters count too).

`source` is the input: `file:<name>`, `generator:<exchange>` or `exchange:<ccxt id>`.
"""

from __future__ import annotations

from prometheus_client import Gauge

from tickpipe.telemetry.metrics import Counter, Histogram

# Live feeds lag by milliseconds to seconds; a minute or more means something is wrong.
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0)

MESSAGES = Counter(
    "tickpipe_ingest_messages",
    "Validated market-data events published, by source, symbol and type.",
    ["source", "symbol", "type"],
)
REJECTS = Counter(
    "tickpipe_ingest_rejects",
    "Inputs dead-lettered at the edge, by reason.",
    ["source", "reason"],
)
RECONNECTS = Counter(
    "tickpipe_ingest_reconnects",
    "Feed reconnects (after an error, a dropped connection or staleness).",
    ["source", "symbol", "stream"],
)
SOURCE_LAG = Histogram(
    "tickpipe_ingest_source_lag_seconds",
    "Now minus the exchange timestamp at ingest (live sources only).",
    ["source", "type"],
    buckets=LAG_BUCKETS,
)
GAPS = Counter(
    "tickpipe_ingest_gaps",
    "Gaps detected in trade ids or sequence numbers.",
    ["source", "symbol", "field"],
)
GAP_MISSING = Counter(
    "tickpipe_ingest_gap_missing",
    "Trade ids or sequence numbers missing in the detected gaps.",
    ["source", "symbol", "field"],
)
STALE = Counter(
    "tickpipe_ingest_stale",
    "Streams silent for longer than the staleness limit (each one then reconnects).",
    ["source", "symbol", "stream"],
)
OVERLAP_SKIPPED = Counter(
    "tickpipe_ingest_overlap_skipped",
    "Trades received again (overlapping polls, replays after a reconnect), not republished.",
    ["source", "symbol"],
)
RATE_LIMIT_WAIT = Counter(
    "tickpipe_ingest_rate_limit_wait_seconds",
    "Time REST calls waited for the exchange's rate limiter.",
    ["source"],
)
QUEUE_DEPTH = Gauge(
    "tickpipe_ingest_queue_depth",
    "Records received from an exchange and not yet published (bounded).",
    ["source"],
)
RESUME_SKIPPED = Counter(
    "tickpipe_ingest_resume_skipped",
    "Records not published again after a restart: an earlier run had (TICKPIPE_INGEST_RESUME).",
    ["source"],
)
