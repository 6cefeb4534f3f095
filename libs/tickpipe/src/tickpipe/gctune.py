"""Garbage-collector settings for the streaming hot path.

A service allocates a few short-lived objects per record (events, emits, records) and
almost no reference cycles, on top of a large long-lived heap (modules, the model, state).
With CPython's default thresholds the young generation is collected every 700 allocations,
and each older collection walks that whole heap again: measured on the in-memory pipeline
(bench/pipeline.py --memory-only), 15-20% of the CPU time. Freezing what exists after
start-up moves it out of the collector's sight, and a larger first threshold collects the
young generation less often; cycles are still collected.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

THRESHOLDS = (50_000, 20, 100)


def tune_for_streaming() -> None:
    """Call once start-up is done (imports, model, restored state): for the process's life."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


@contextmanager
def streaming_gc() -> Iterator[None]:
    """`tune_for_streaming` for a stretch of work inside a longer-lived process (a backtest
    or the embedded demo in a test run), undone afterwards."""
    before = gc.get_threshold()
    tune_for_streaming()
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
