"""Skipping superseded latest-only records never changes what a latest-only handler sees."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tickpipe.bus.base import Record
from tickpipe.runner import superseded

QUOTES, ORDERS = "md.quotes.v1", "orders.v1"

records_strategy = st.lists(
    st.tuples(st.sampled_from([QUOTES, QUOTES, ORDERS]), st.sampled_from([b"a", b"b", None])),
    max_size=60,
)


def _records(spec: list[tuple[str, bytes | None]]) -> list[Record]:
    return [Record(topic, 0, i, key, str(i).encode()) for i, (topic, key) in enumerate(spec)]


def _observations(records: list[Record], skip: list[bool]) -> list[tuple[int, dict[object, bytes]]]:
    """What a handler keeping the latest quote per key sees at each non-quote record."""
    latest: dict[object, bytes] = {}
    seen = []
    for r, skipped in zip(records, skip, strict=True):
        if skipped:
            continue
        if r.topic == QUOTES:
            latest[r.key] = r.value
        else:
            seen.append((r.offset, dict(latest)))
    return [*seen, (-1, dict(latest))]  # and the state left at the end of the batch


@given(records_strategy)
def test_superseded_when_skipped_then_latest_only_state_seen_is_unchanged(
    spec: list[tuple[str, bytes | None]],
) -> None:
    records = _records(spec)
    skip = superseded(records, frozenset({QUOTES}))
    assert _observations(records, skip) == _observations(records, [False] * len(records))
    assert not any(s for r, s in zip(records, skip, strict=True) if r.topic != QUOTES)


def test_superseded_when_quotes_run_together_then_only_the_last_per_key_is_kept() -> None:
    records = _records(
        [
            (QUOTES, b"a"),
            (QUOTES, b"b"),
            (QUOTES, b"a"),
            (ORDERS, b"a"),
            (QUOTES, b"a"),
            (QUOTES, b"a"),
        ]
    )
    assert superseded(records, frozenset({QUOTES})) == [True, False, False, False, True, False]
