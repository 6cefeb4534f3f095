"""Derived event ids: a vector's id from its bar, a signal's from its vector, so that a record
redone after a crash (at least once) gives its outputs again under the same ids, and risk's
client order id, made from the signal id, repeats too."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

import orjson
import pytest

from tests.unit import factories as f
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds, derived_id, ulid_time_ms, vector_id
from tickpipe.marketdata import QuoteData, TradeData, read_binance_capture
from tickpipe.messages import DeadLetter, FeatureVector, QuoteTick, Signal, TradeTick
from tickpipe.topics import DLQ, FEATURES, QUOTES, TRADES
from tickpipe_feature.handlers import FeatureHandler
from tickpipe_inference.handlers import InferenceHandler, signal_id
from tickpipe_inference.onnx_model import OnnxModel
from tickpipe_risk.handlers import client_order_id

S = f.SECOND
CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
RECORDS = 12_000  # ~2 minutes of the sample: ~100 vectors past warm-up


@functools.cache
def _records() -> tuple[TradeData | QuoteData, ...]:
    items = itertools.islice(read_binance_capture(f.SAMPLE), RECORDS)
    return tuple(r for r in items if isinstance(r, (TradeData, QuoteData)))


def _events(prefix: str) -> list[TradeTick | QuoteTick]:
    """The records as ingest publishes them; `prefix` stands for the run's own event ids
    (a restarted ingest draws new ones)."""
    out: list[TradeTick | QuoteTick] = []
    for n, r in enumerate(_records()):
        common = {
            "event_id": f"{prefix}{n:08d}",
            "ts_event": r.ts_event,
            "ts_init": r.ts_event,
            "exchange": r.exchange,
            "symbol": r.symbol,
            "ingest_seq": n,
        }
        if isinstance(r, TradeData):
            out.append(
                TradeTick(trade_id=r.trade_id, price=r.price, size=r.size, side=r.side, **common)
            )
        else:
            out.append(
                QuoteTick(bid=r.bid, ask=r.ask, bid_size=r.bid_size, ask_size=r.ask_size, **common)
            )
    return out


def _feature(seed: int) -> FeatureHandler:
    clock = SimClock(f.T0)
    return FeatureHandler(EventIds(clock, seed=seed), MemoryCache(clock), S)


def _vectors(handler: FeatureHandler, events: Sequence[TradeTick | QuoteTick]) -> list[bytes]:
    """Every vector as bytes (ts_init is the record's time: a redo at the same moment)."""
    out: list[bytes] = []
    for event in events:
        topic = TRADES if isinstance(event, TradeTick) else QUOTES
        for emit in handler.handle(event, topic, event.ts_event):
            assert emit.topic == FEATURES
            out.append(orjson.dumps(emit.event.model_dump()))
    return out


@pytest.fixture(scope="module")
def model() -> OnnxModel:
    return OnnxModel(f.MODEL_DIR)


def _inference(model: OnnxModel, seed: int, strategy: str = "baseline") -> InferenceHandler:
    clock = SimClock(f.T0)
    return InferenceHandler(model, EventIds(clock, seed=seed), MemoryCache(clock), strategy)


def _signals(handler: InferenceHandler, vectors: Sequence[bytes]) -> list[Signal]:
    out: list[Signal] = []
    for raw in vectors:
        vector = FeatureVector.model_validate_json(raw)
        for emit in handler.handle(vector, FEATURES, vector.ts_event):
            assert isinstance(emit.event, Signal)
            out.append(emit.event)
    return out


# -- the function ------------------------------------------------------------------------------


def test_derived_id_when_same_parts_and_time_is_the_same_ulid_every_time() -> None:
    a = derived_id(f.T0 + 123_456_789, "feature_vector", f.KEY, "x")

    assert a == derived_id(f.T0 + 123_456_789, "feature_vector", f.KEY, "x")
    assert len(a) == 26 and set(a) <= CROCKFORD
    assert ulid_time_ms(a) == (f.T0 + 123_456_789) // 1_000_000


def test_derived_id_when_any_part_differs_differs() -> None:
    base = ("feature_vector", f.KEY, str(f.T0), "bars1s.x")
    ids = {derived_id(f.T0, *base)}
    for i in range(len(base)):
        changed = list(base)
        changed[i] += "!"
        ids.add(derived_id(f.T0, *changed))
    # Parts are hashed with their lengths: moving a character across a boundary differs.
    ids.add(derived_id(f.T0, "ab", "c"))
    ids.add(derived_id(f.T0, "a", "bc"))
    ids.add(derived_id(f.T0, "abc"))

    assert len(ids) == len(base) + 1 + 3


def test_derived_id_when_times_differ_sorts_by_time_to_the_millisecond() -> None:
    times = [f.T0 + k * 250_000_000 for k in range(40)]  # 4 per second, distinct ms

    ids = [derived_id(t, "feature_vector", f.KEY, str(t), "bars250ms.x") for t in times]

    assert sorted(ids) == ids
    assert [ulid_time_ms(i) for i in ids] == [t // 1_000_000 for t in times]


@pytest.mark.parametrize("ts", [-1, (1 << 48) * 1_000_000])
def test_derived_id_when_time_outside_ulid_range_refuses(ts: int) -> None:
    with pytest.raises(ValueError):
        derived_id(ts, "x")


def test_vector_and_signal_ids_when_anything_identifying_differs_differ() -> None:
    end = f.T0 + S
    vectors = {
        vector_id(f.KEY, end, "bars1s.a"),
        vector_id("binance:ETH/USDT", end, "bars1s.a"),
        vector_id(f.KEY, end + 1, "bars1s.a"),  # sub-millisecond bars stay apart
        vector_id(f.KEY, end, "bars1m.a"),
    }
    vector = f.feature_vector(event_id=vector_id(f.KEY, end, "bars1s.a"), ts_event=end)
    signals = {
        signal_id(vector, "baseline:v1", "baseline"),
        signal_id(vector, "baseline:v2", "baseline"),
        signal_id(vector, "baseline:v1", "momentum"),
        signal_id(f.feature_vector(event_id="01OTHER", ts_event=end), "baseline:v1", "baseline"),
    }

    assert len(vectors) == 4
    assert len(signals) == 4
    assert {ulid_time_ms(i) for i in vectors | signals} == {end // 1_000_000}


# -- through the handlers ----------------------------------------------------------------------


def test_feature_when_same_trades_come_with_new_event_ids_gives_the_same_vector_ids() -> None:
    first = _vectors(_feature(seed=1), _events("A"))
    again = _vectors(_feature(seed=2), _events("B"))  # a restarted ingest: new event ids

    ids_first = [orjson.loads(v)["event_id"] for v in first]
    ids_again = [orjson.loads(v)["event_id"] for v in again]
    assert len(ids_first) > 50
    assert ids_again == ids_first
    assert len(set(ids_first)) == len(ids_first)
    assert sorted(ids_first) == ids_first  # one instrument: bar ends rise, so do the ids


def test_feature_when_records_redone_after_a_restore_emits_byte_identical_vectors() -> None:
    events = _events("A")
    cut, crash = len(events) // 2, len(events) * 3 // 4
    live = _feature(seed=1)
    _vectors(live, events[:cut])
    saved = live.snapshot()
    published = _vectors(live, events[cut:crash])  # published, then killed before the commit
    assert len(published) > 10

    restarted = _feature(seed=7)  # a new process: a new id generator
    restarted.restore(saved)
    redone = _vectors(restarted, events[cut:crash])

    assert redone == published


def test_inference_when_the_same_vector_is_scored_again_gives_the_same_signal(
    model: OnnxModel,
) -> None:
    vectors = _vectors(_feature(seed=1), _events("A"))
    first = _signals(_inference(model, seed=1), vectors)
    again = _signals(_inference(model, seed=9), vectors)
    handler = _inference(model, seed=1)
    batch = handler.handle_batch(
        [(FeatureVector.model_validate_json(v), FEATURES) for v in vectors], f.T0
    )

    assert [s.event_id for s in again] == [s.event_id for s in first]
    assert [e.event.event_id for out in batch if not isinstance(out, Exception) for e in out] == [
        s.event_id for s in first
    ]
    for s, raw in zip(first, vectors, strict=True):
        vector = FeatureVector.model_validate_json(raw)
        assert s.event_id == signal_id(vector, model.version, "baseline")
        assert ulid_time_ms(s.event_id) == vector.ts_event // 1_000_000
    # What risk makes of them: the same client order ids, so a repeat is a duplicate.
    assert [client_order_id(s.strategy_id, s.event_id) for s in again] == [
        client_order_id(s.strategy_id, s.event_id) for s in first
    ]


def test_inference_when_strategies_differ_signals_of_one_vector_differ(model: OnnxModel) -> None:
    vectors = _vectors(_feature(seed=1), _events("A"))[:5]

    a = _signals(_inference(model, seed=1, strategy="baseline"), vectors)
    b = _signals(_inference(model, seed=1, strategy="other"), vectors)

    assert not {s.event_id for s in a} & {s.event_id for s in b}


def test_feature_when_trades_are_dead_lettered_the_letters_keep_unique_drawn_ids() -> None:
    """Dead letters are reports, not derived events: each one its own id, even for the same
    trade refused twice."""
    events = _events("A")[:3_000]
    handler = _feature(seed=1)
    _vectors(handler, events)
    now = max(e.ts_event for e in events if isinstance(e, TradeTick))
    late = f.trade(trade_id="late", ts_event=now - 60 * S)
    letters: list[DeadLetter] = []
    for k in range(2):
        seq = len(events) + 2 * k
        # The late trade waits for the record before it (arrival order), which releases it:
        # the handler dead-letters it itself, as the runner would.
        assert handler.handle(late.model_copy(update={"ingest_seq": seq + 1}), TRADES, now) == []
        fresh = f.trade(trade_id=f"fresh-{k}", ts_event=now, ingest_seq=seq)
        for emit in handler.handle(fresh, TRADES, now):
            if emit.topic == DLQ:
                assert isinstance(emit.event, DeadLetter)
                letters.append(emit.event)

    assert [d.reason for d in letters] == ["late_trade", "late_trade"]
    assert letters[0].event_id != letters[1].event_id
