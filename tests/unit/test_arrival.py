"""Arrival order: trades and quotes from two topics, put back in ingest's order, so the
feature vectors do not depend on how a consumer's fetches interleave the topics."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit import factories as f
from tickpipe.arrival import ArrivalOrder, MarketArrival
from tickpipe.bus.memory import MemoryBus
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import FeatureVector, QuoteTick, TradeTick, decode
from tickpipe.runner import StreamRunner, encode_emit
from tickpipe.service import Emit
from tickpipe.telemetry.tracing import make_tracer
from tickpipe.topics import FEATURES, QUOTES, TRADES
from tickpipe_feature.handlers import FeatureHandler

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
    events = f.sample_market(6_000)
    trades = [i for i, e in enumerate(events) if isinstance(e, TradeTick)]
    quotes = [i for i, e in enumerate(events) if isinstance(e, QuoteTick)]
    shuffled = [events[i] for i in _interleave(trades, quotes, random.Random(seed))]
    assert shuffled != events
    in_order = _features(events)
    assert len(in_order) > 20 and all(v["bid"] and v["market_seq"] for v in in_order)
    assert _features(shuffled) == in_order


def test_feature_handler_without_arrival_numbers_would_differ() -> None:
    # The guard above is needed: the same shuffle without `ingest_seq` changes the vectors.
    events = [e.model_copy(update={"ingest_seq": None}) for e in f.sample_market(6_000)]
    trades = [i for i, e in enumerate(events) if isinstance(e, TradeTick)]
    quotes = [i for i, e in enumerate(events) if isinstance(e, QuoteTick)]
    shuffled = [events[i] for i in _interleave(trades, quotes, random.Random(1))]
    assert _features(shuffled) != _features(events)


def test_arrival_order_when_one_source_runs_ahead_names_it_until_the_gap_mostly_fills() -> None:
    order: ArrivalOrder[int] = ArrivalOrder(max_held=100, pause_at=10, resume_at=2)
    trades = list(range(3, 40, 2))  # odd numbers: trades; even: quotes, which lag
    assert order.push("k", 0, 0, "quotes") == [0]
    assert order.push("k", 1, 1, "trades") == [1]
    for n in trades[:9]:
        assert order.push("k", n, n, "trades") == []
    assert order.ahead() == []  # 9 held: not yet
    order.push("k", trades[9], trades[9], "trades")
    assert order.ahead() == [("trades", "k")]
    released = []
    for n in range(2, 15, 2):  # the quotes come: the trades they unblock are released
        released += order.push("k", n, n, "quotes")
    assert released == list(range(2, 16))
    assert order.held("k") == 3 and order.ahead() == [("trades", "k")]  # above resume_at
    order.push("k", 16, 16, "quotes")
    assert order.held("k") == 2 and order.ahead() == []  # back down to resume_at
    assert order.skipped == 0


def test_arrival_order_refuses_thresholds_out_of_order() -> None:
    with pytest.raises(ValueError, match="resume_at"):
        ArrivalOrder(max_held=10, pause_at=20)
    with pytest.raises(ValueError, match="resume_at"):
        ArrivalOrder(max_held=10, pause_at=5, resume_at=5)


def _through_runner(
    events: list[TradeTick | QuoteTick], max_held: int
) -> tuple[list[dict[str, object]], FeatureHandler, list[int]]:
    """Feature over a memory bus on which every trade was published before every quote (a
    consumer that reads one topic far ahead of the other), through a real StreamRunner."""
    bus = MemoryBus()
    for e in sorted(events, key=lambda e: isinstance(e, QuoteTick)):
        bus.append(encode_emit(Emit(TRADES if isinstance(e, TradeTick) else QUOTES, e), ()))
    clock = SimClock()
    ids = EventIds(clock, seed=1)
    handler = FeatureHandler(ids, MemoryCache(clock), S)
    handler.arrival = MarketArrival(max_held=max_held)
    runner = StreamRunner(
        service="feature",
        group="feature",
        handler=handler,
        link=bus.link(group="feature", topics=[TRADES, QUOTES], client_id="feature-1"),
        clock=clock,
        ids=ids,
        tracer=make_tracer("test"),
        batch_size=50,
    )
    paused = []
    while runner.step(0.0) or runner._paused:
        paused.append(len(runner._paused))
    vectors = []
    for r in bus.records(FEATURES):
        v = decode(r.value, FeatureVector.event_type)
        assert isinstance(v, FeatureVector)
        vectors.append(v.model_dump(exclude={"event_id", "ts_init", "causation_id"}))
    return vectors, handler, paused


def test_runner_when_one_topic_runs_far_ahead_pauses_it_and_computes_the_same_vectors() -> None:
    events = f.sample_market(6_000)
    n_trades = sum(isinstance(e, TradeTick) for e in events)
    assert n_trades > 1_000  # far more than the buffer may hold below
    vectors, handler, paused = _through_runner(events, max_held=400)
    assert handler.arrival.skipped == 0  # no gap given up on
    assert max(paused) == 1  # the trades partition was paused, then resumed
    assert vectors == _features(events)
