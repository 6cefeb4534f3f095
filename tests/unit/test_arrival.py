"""Arrival order: trades and quotes from two topics, put back in ingest's order, so the
feature vectors do not depend on how a consumer's fetches interleave the topics."""

from __future__ import annotations

import random
from itertools import islice
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickpipe.arrival import ArrivalOrder
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.marketdata import read_binance_capture
from tickpipe.messages import FeatureVector, QuoteTick, TradeTick
from tickpipe_feature.handlers import FeatureHandler
from tickpipe_ingest.domain.validation import Validator
from tickpipe_ingest.normalize import Normalizer

SAMPLE = Path("data/sample/binance-spot-btcusdt-20240808.gz")
S = 1_000_000_000


def _interleave(a: list[int], b: list[int], rng: random.Random) -> list[int]:
    """A random merge that keeps each list's own order (what a consumer of two topics sees)."""
    out, i, j = [], 0, 0
    while i < len(a) or j < len(b):
        if j == len(b) or (i < len(a) and rng.random() < 0.5):
            out.append(a[i])
            i += 1
        else:
            out.append(b[j])
            j += 1
    return out


@given(st.lists(st.booleans(), min_size=1, max_size=60), st.integers(0, 2**32))
def test_arrival_order_when_topics_interleave_any_way_releases_in_sequence(
    is_trade: list[bool], seed: int
) -> None:
    trades = [n for n, t in enumerate(is_trade) if t]
    quotes = [n for n, t in enumerate(is_trade) if not t]
    order: ArrivalOrder[int] = ArrivalOrder()
    released = [
        x for n in _interleave(trades, quotes, random.Random(seed)) for x in order.push("k", n, n)
    ]
    assert released == list(range(len(is_trade)))
    assert order.held("k") == 0


def test_arrival_order_when_a_gap_never_fills_skips_it_after_max_held_and_counts() -> None:
    order: ArrivalOrder[int] = ArrivalOrder(max_held=3)
    assert order.push("k", 0, 0) == [0]
    assert [order.push("k", n, n) for n in (2, 3, 4)] == [[], [], []]
    assert order.push("k", 5, 5) == [2, 3, 4, 5]  # 1 is given up on
    assert order.skipped == 1


def test_arrival_order_when_ingest_restarts_releases_the_held_then_starts_over() -> None:
    order: ArrivalOrder[str] = ArrivalOrder()
    assert order.push("k", 0, "a0") == ["a0"]
    assert order.push("k", 2, "a2") == []
    assert order.push("k", 0, "b0") == ["a2", "b0"]
    assert order.push("k", 1, "b1") == ["b1"]
    assert order.restarts == 1
    assert order.push("k", None, "x") == ["x"]  # unnumbered: as it comes


def test_arrival_order_when_dumped_and_loaded_keeps_what_it_holds() -> None:
    order: ArrivalOrder[str] = ArrivalOrder()
    order.push("k", 0, "a")
    order.push("k", 2, "c")
    again: ArrivalOrder[str] = ArrivalOrder()
    again.load(order.dump(lambda e: e), str)
    assert again.push("k", 1, "b") == ["b", "c"]


def _market_events(n: int) -> list[TradeTick | QuoteTick]:
    clock = SimClock()
    normalize = Normalizer(clock, EventIds(clock, seed=3), "file:test", Validator(), live=False)
    out = []
    for item in islice(read_binance_capture(SAMPLE), n):
        clock.advance_to(item.ts_event)
        event = normalize(item).event
        if isinstance(event, (TradeTick, QuoteTick)):
            out.append(event)
    return out


def _features(events: list[TradeTick | QuoteTick]) -> list[dict[str, object]]:
    clock = SimClock()
    handler = FeatureHandler(EventIds(clock, seed=1), MemoryCache(clock), S)
    out = []
    for e in events:
        for emit in handler.handle(e, "t", 0):
            assert isinstance(emit.event, FeatureVector)
            out.append(emit.event.model_dump(exclude={"event_id", "ts_init", "causation_id"}))
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_feature_handler_when_topics_interleave_differently_computes_the_same_vectors(
    seed: int,
) -> None:
    events = _market_events(6_000)
    trades = [i for i, e in enumerate(events) if isinstance(e, TradeTick)]
    quotes = [i for i, e in enumerate(events) if isinstance(e, QuoteTick)]
    shuffled = [events[i] for i in _interleave(trades, quotes, random.Random(seed))]
    assert shuffled != events
    in_order = _features(events)
    assert len(in_order) > 20 and all(v["bid"] and v["market_seq"] for v in in_order)
    assert _features(shuffled) == in_order


def test_feature_handler_without_arrival_numbers_would_differ() -> None:
    # The guard above is needed: the same shuffle without `ingest_seq` changes the vectors.
    events = [e.model_copy(update={"ingest_seq": None}) for e in _market_events(6_000)]
    trades = [i for i, e in enumerate(events) if isinstance(e, TradeTick)]
    quotes = [i for i, e in enumerate(events) if isinstance(e, QuoteTick)]
    shuffled = [events[i] for i in _interleave(trades, quotes, random.Random(1))]
    assert _features(shuffled) != _features(events)
