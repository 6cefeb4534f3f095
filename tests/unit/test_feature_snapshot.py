"""Feature handler snapshots: restored mid-stream, a fresh handler carries on byte for byte."""

from __future__ import annotations

import functools
import itertools
import math
import struct

import orjson
import pytest

from tests.unit import factories as f
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.marketdata import QuoteData, TradeData, read_binance_capture
from tickpipe.messages import FeatureVector, QuoteTick, TradeTick
from tickpipe.service import Rejected
from tickpipe.topics import QUOTES, TRADES
from tickpipe_feature import snapshot
from tickpipe_feature.handlers import FeatureHandler

S = f.SECOND
RECORDS = 20_000  # about three minutes of the sample: ~170 bars


@functools.cache
def _events() -> tuple[TradeTick | QuoteTick, ...]:
    out: list[TradeTick | QuoteTick] = []
    records = itertools.islice(read_binance_capture(f.SAMPLE), RECORDS)
    for n, r in enumerate(records):
        common = {"event_id": f"E{n}", "ts_event": r.ts_event, "ts_init": r.ts_event}
        if isinstance(r, TradeData):
            out.append(
                TradeTick(
                    exchange=r.exchange,
                    symbol=r.symbol,
                    trade_id=r.trade_id,
                    price=r.price,
                    size=r.size,
                    side=r.side,
                    **common,
                )
            )
        elif isinstance(r, QuoteData):
            out.append(
                QuoteTick(
                    exchange=r.exchange,
                    symbol=r.symbol,
                    bid=r.bid,
                    ask=r.ask,
                    bid_size=r.bid_size,
                    ask_size=r.ask_size,
                    **common,
                )
            )
    return tuple(out)


def _handler(lateness_ns: int = 0, interval_ns: int = S) -> FeatureHandler:
    clock = SimClock(f.T0)
    return FeatureHandler(
        EventIds(clock, seed=3), MemoryCache(clock), interval_ns, 300.0, lateness_ns
    )


def _run(handler: FeatureHandler, events: tuple[TradeTick | QuoteTick, ...]) -> list[bytes]:
    """Each output as bytes, minus its event id (a fresh id generator's business)."""
    out: list[bytes] = []
    for event in events:
        topic = TRADES if isinstance(event, TradeTick) else QUOTES
        try:
            emits = handler.handle(event, topic, event.ts_event)
        except Rejected as exc:
            out.append(f"rejected {exc.reason}".encode())
            continue
        for emit in emits:
            assert isinstance(emit.event, FeatureVector)
            out.append(orjson.dumps(emit.event.model_dump(exclude={"event_id"})))
    return out


@pytest.mark.parametrize(
    ("cut", "lateness_ns"),
    [(600, 0), (9_000, 0), (9_000, 2 * S)],
    ids=["warming-up", "warm", "open-bars-within-lateness"],
)
def test_feature_handler_when_restored_mid_stream_emits_what_uninterrupted_one_emits(
    cut: int, lateness_ns: int
) -> None:
    events = _events()
    uninterrupted = _handler(lateness_ns)
    _run(uninterrupted, events[:cut])
    saved = uninterrupted.snapshot()
    restored = _handler(lateness_ns)

    restored.restore(saved)

    assert restored.snapshot() == saved
    rest_a, rest_b = _run(uninterrupted, events[cut:]), _run(restored, events[cut:])
    assert len(rest_a) > 100
    assert rest_b == rest_a


def test_feature_handler_when_snapshotted_while_warming_up_keeps_nan_as_nan() -> None:
    handler = _handler()
    _run(handler, _events()[:600])

    saved = handler.snapshot()

    assert b'{"$float":"nan"}' in saved
    assert b"null" not in saved.replace(b'"_next":null', b"")
    engine = snapshot.loads(saved)["instruments"][f.KEY]["engine"]
    assert math.isnan(engine["_macd"]["signal"])


def test_feature_handler_when_restored_from_other_interval_or_lateness_raises() -> None:
    handler = _handler()
    _run(handler, _events()[:300])
    saved = handler.snapshot()

    for other in (_handler(interval_ns=60 * S), _handler(lateness_ns=S)):
        with pytest.raises(ValueError, match="snapshot taken with"):
            other.restore(saved)


def test_feature_handler_when_restored_drops_state_the_snapshot_lacks() -> None:
    empty = _handler().snapshot()
    handler = _handler()
    _run(handler, _events()[:2_000])

    handler.restore(empty)

    assert handler.snapshot() == empty
    assert _run(handler, _events()[2_000:2_400]) == []  # warming up again from nothing


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, -0.0, 5e-324, 0.1 + 0.2, 1.7976931348623157e308]
)
def test_snapshot_codec_when_float_round_trips_returns_same_bits(value: float) -> None:
    state = {"x": [value, {"y": value}], "n": 3, "s": "k"}

    back = snapshot.loads(snapshot.dumps(state))

    bits = struct.pack("<d", value)
    assert struct.pack("<d", back["x"][0]) == bits
    assert struct.pack("<d", back["x"][1]["y"]) == bits
    assert (back["n"], back["s"]) == (3, "k")
