"""Prometheus metrics every service exports. Service-specific metrics live with the service."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

import prometheus_client
from prometheus_client import Gauge
from prometheus_client.values import MutexValue


class Counter(prometheus_client.Counter):
    """prometheus_client's Counter with a cheaper `inc` for the per-record paths.

    The library's `inc` checks observability (two attribute tests and a call) and then calls
    the value's own `inc`; here a child (the only kind that is ever incremented) knows it is
    observable once its value exists, and takes the value's lock itself: the same lock and
    the same float, fewer Python calls (0.24-0.31 -> 0.18-0.24 µs on the dev VM). Exemplars,
    negative amounts and the multiprocess value class take the library's path.
    """

    _fast = False  # set on children whose value is the plain in-process MutexValue

    def _metric_init(self) -> None:
        super()._metric_init()
        self._fast = type(self._value) is MutexValue

    def inc(self, amount: float = 1, exemplar: dict[str, str] | None = None) -> None:
        if self._fast and exemplar is None and amount >= 0:
            value: Any = self._value
            with value._lock:
                value._value += amount
        else:
            super().inc(amount, exemplar)


class Histogram(prometheus_client.Histogram):
    """prometheus_client's Histogram with a cheaper `observe` for the per-record paths.

    The library walks the buckets in a Python loop (`enumerate` and a compare per bucket)
    and calls `inc` on two values; here the bucket is a `bisect` (C) and the two values are
    updated under their own locks directly: the same state, 0.58-0.87 -> 0.37-0.45 µs an
    observation on the dev VM (tests/unit/test_fast_metrics.py compares the samples).
    `observe_many` records a batch's observations with one lock round per bucket touched.
    NaN, exemplars and the multiprocess value class take the library's path.
    """

    _fast = False

    def _metric_init(self) -> None:
        super()._metric_init()
        self._fast = type(self._sum) is MutexValue and all(
            type(b) is MutexValue for b in self._buckets
        )

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        if self._fast and exemplar is None:
            bounds = self._upper_bounds
            i = bisect_left(bounds, amount)
            if amount <= bounds[i]:  # False only for NaN: the library's path below
                total: Any = self._sum
                with total._lock:
                    total._value += amount
                bucket: Any = self._buckets[i]
                with bucket._lock:
                    bucket._value += 1
                return
        super().observe(amount, exemplar)

    def observe_many(self, amounts: Iterable[float]) -> None:
        """`observe` each amount (e.g. a consumed batch's per-record times) at once."""
        if not self._fast:
            for amount in amounts:
                self.observe(amount)
            return
        bounds = self._upper_bounds
        counts: dict[int, int] = {}
        added = 0.0
        for amount in amounts:
            i = bisect_left(bounds, amount)
            if amount <= bounds[i]:  # NaN is not: counted in the sum only, as the library does
                counts[i] = counts.get(i, 0) + 1
            added += amount
        total: Any = self._sum
        with total._lock:
            total._value += added
        for i, n in counts.items():
            bucket: Any = self._buckets[i]
            with bucket._lock:
                bucket._value += n


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
