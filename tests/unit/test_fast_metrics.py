"""tickpipe's Counter and Histogram (cheaper hot paths) keep prometheus_client's state
exactly: same samples for the same observations, same refusals."""

from __future__ import annotations

import math
from typing import Any

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry

from tickpipe.telemetry import metrics

AMOUNTS = [0.0, 0.0001, 0.00010001, 0.003, 0.05, 0.05, 1.0, 4.9, 5.0, 7.5, -1.0, math.inf, 2]


def _samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for m in registry.collect()
        for s in m.samples
        if not s.name.endswith("_created")
    ]


def _pair(kind: str) -> tuple[CollectorRegistry, Any, CollectorRegistry, Any]:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    if kind == "histogram":
        a = metrics.Histogram("h", "h", ["t"], buckets=metrics.LATENCY_BUCKETS, registry=ours)
        b = prometheus_client.Histogram(
            "h", "h", ["t"], buckets=metrics.LATENCY_BUCKETS, registry=theirs
        )
    else:
        a = metrics.Counter("c", "c", ["t"], registry=ours)
        b = prometheus_client.Counter("c", "c", ["t"], registry=theirs)
    return ours, a, theirs, b


def test_histogram_when_observing_keeps_the_librarys_buckets_and_sum() -> None:
    ours, a, theirs, b = _pair("histogram")
    for x in AMOUNTS:
        a.labels("x").observe(x)
        b.labels("x").observe(x)
    a.labels("y").observe_many(AMOUNTS)
    for x in AMOUNTS:
        b.labels("y").observe(x)
    assert _samples(ours) == _samples(theirs)


def test_histogram_when_nan_counts_it_in_the_sum_only_as_the_library_does() -> None:
    ours, a, theirs, b = _pair("histogram")
    a.labels("x").observe(math.nan)
    a.labels("y").observe_many([math.nan, 0.5])
    b.labels("x").observe(math.nan)
    b.labels("y").observe(math.nan)
    b.labels("y").observe(0.5)
    got, want = _samples(ours), _samples(theirs)
    assert [(n, lab) for n, lab, _ in got] == [(n, lab) for n, lab, _ in want]
    for (_, _, x), (_, _, y) in zip(got, want, strict=True):
        assert x == y or (math.isnan(x) and math.isnan(y))


def test_counter_when_incremented_keeps_the_librarys_total() -> None:
    ours, a, theirs, b = _pair("counter")
    for n in (1, 2.5, 0, 7):
        a.labels("x").inc(n)
        b.labels("x").inc(n)
    a.labels("x").inc()
    b.labels("x").inc()
    assert _samples(ours) == _samples(theirs)


def test_counter_when_negative_refuses_it() -> None:
    _, a, _, _ = _pair("counter")
    with pytest.raises(ValueError, match="non-negative"):
        a.labels("x").inc(-1)


def test_parent_without_label_values_refuses_observations() -> None:
    _, h, _, _ = _pair("histogram")
    _, c, _, _ = _pair("counter")
    with pytest.raises(ValueError, match="missing label values"):
        h.observe(1.0)
    with pytest.raises(ValueError, match="missing label values"):
        c.inc()


def test_platform_metrics_use_the_fast_classes() -> None:
    assert isinstance(metrics.HANDLER_SECONDS, metrics.Histogram)
    assert isinstance(metrics.END_TO_END_SECONDS, metrics.Histogram)
    assert isinstance(metrics.MESSAGES_IN, metrics.Counter)
