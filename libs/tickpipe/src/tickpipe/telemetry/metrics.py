"""Prometheus metrics every service exports. Service-specific metrics live with the service."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

# Latency buckets from 100 µs to 5 s: the pipeline's budget is milliseconds.
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    5.0,
)

MESSAGES_IN = Counter("tickpipe_messages_in", "Records consumed.", ["service", "topic"])
MESSAGES_OUT = Counter("tickpipe_messages_out", "Records produced.", ["service", "topic"])
HANDLER_SECONDS = Histogram(
    "tickpipe_handler_duration_seconds",
    "Time spent in the handler per record.",
    ["service", "topic"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SECONDS = Histogram(
    "tickpipe_batch_duration_seconds",
    "Time to process and complete (publish + commit) one consumed batch.",
    ["service"],
    buckets=LATENCY_BUCKETS,
)
END_TO_END_SECONDS = Histogram(
    "tickpipe_end_to_end_latency_seconds",
    "From the originating trade's ts_init at ingest to this service consuming a derived record.",
    ["service", "topic"],
    buckets=LATENCY_BUCKETS,
)
ERRORS = Counter("tickpipe_errors", "Errors by kind.", ["service", "kind"])
DEAD_LETTERS = Counter(
    "tickpipe_dead_letters", "Records sent to dlq.v1, by reason.", ["service", "source", "reason"]
)
BAD_HEADERS = Counter(
    "tickpipe_bad_headers",
    "Records with a header that could not be read (e.g. a non-numeric origin time): the header "
    "is ignored and not passed on, the record itself is processed.",
    ["service", "topic", "header"],
)
REPLAYED = Counter(
    "tickpipe_replayed",
    "Records consumed again after a restart to rebuild state (outputs not republished).",
    ["service"],
)
FLOW_PAUSES = Counter(
    "tickpipe_flow_pauses",
    "Partitions paused because the stream they carry ran ahead of another the handler "
    "waits for (catching up on a backlog).",
    ["service", "topic"],
)
PAUSED_PARTITIONS = Gauge(
    "tickpipe_paused_partitions", "Partitions paused for flow control now.", ["service"]
)
READY = Gauge("tickpipe_ready", "1 when the service is connected and assigned.", ["service"])
CONSUMER_LAG = Gauge(
    "tickpipe_consumer_lag", "Records behind the end of the topic.", ["service", "topic"]
)


_CHILDREN: dict[tuple[int, tuple[str, ...]], Any] = {}


def child(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, remembered: `.labels()` costs microseconds (it validates
    and locks) and hot paths ask for the same few children on every event."""
    key = (id(metric), labels)
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = metric.labels(*labels)
    return found


CACHE_FAILURES = Counter(
    "tickpipe_cache_failures",
    "Cache operations that failed (the store unreachable); writes are kept and retried.",
    ["op"],
)
CACHE_AVAILABLE = Gauge("tickpipe_cache_available", "1 while the cache answers.")


# Delivery is at least once up to risk: a record may come twice. Where a service recognises
# a repeat of something it already counted (same trade id, same event id), it drops it here.
DUPLICATES = Counter(
    "tickpipe_duplicates",
    "Records dropped as repeats of ones already counted (a redelivery, a replayed upstream).",
    ["service", "topic"],
)
