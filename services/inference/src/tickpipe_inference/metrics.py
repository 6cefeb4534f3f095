"""Inference metrics."""

from __future__ import annotations

from prometheus_client import Gauge

from tickpipe.telemetry.metrics import LATENCY_BUCKETS, Counter, Histogram

MODEL_INFO = Gauge("tickpipe_model_info", "1 for the model version serving.", ["version"])
MODEL_RELOADS = Counter("tickpipe_model_reloads", "Model reload commands.", ["outcome"])
MODEL_SECONDS = Histogram(
    "tickpipe_model_latency_seconds", "Model scoring time per call.", buckets=LATENCY_BUCKETS
)
