"""Stale inputs: a signal or a reference price too old to act on fails closed."""

from __future__ import annotations

NO_REFERENCE = "no_reference_price"
STALE_REFERENCE = "stale_reference_price"
STALE_SIGNAL = "stale_signal"


def check_reference(reference_ts: int | None, now_ns: int, max_age_ns: int) -> list[str]:
    """Freshness is judged on arrival time (ts_init): replayed data has old exchange times."""
    if reference_ts is None:
        return [NO_REFERENCE]
    return [STALE_REFERENCE] if max_age_ns and now_ns - reference_ts > max_age_ns else []


def check_signal_age(signal_ts: int, now_ns: int, max_age_ns: int) -> list[str]:
    return [STALE_SIGNAL] if max_age_ns and now_ns - signal_ts > max_age_ns else []
