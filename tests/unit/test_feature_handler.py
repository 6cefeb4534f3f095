"""Feature handler: trades and quotes in, one feature vector per emitted bar once warm."""

from __future__ import annotations

import math

import orjson
import pytest

from tests.unit import factories as f
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import Event, FeatureVector
from tickpipe.service import Rejected, Stateful
from tickpipe.topics import FEATURES, QUOTES, TRADES
from tickpipe_feature.handlers import FeatureHandler
from tickpipe_quant.features import FEATURE_NAMES, FEATURE_SET, REGISTRY, feature_set_name

S = f.SECOND
MS = 1_000_000
T = 1_723_161_255 * S
# MACD's signal line is the slowest input: EMA(26) from bar 26, then 9 of its values.
WARMUP_BARS = 26 + 9 - 1


def _handler(ttl_s: float = 300.0, lateness_ns: int = 0) -> tuple[FeatureHandler, MemoryCache]:
    clock = SimClock(T)
    cache = MemoryCache(clock)
    return FeatureHandler(EventIds(clock, seed=1), cache, S, ttl_s, lateness_ns), cache


def _price(i: int) -> float:
    return 60_000.0 + 25.0 * math.sin(i / 3.0) + i


def _vectors(handler: FeatureHandler, *events: Event, now: int = T) -> list[FeatureVector]:
    out: list[FeatureVector] = []
    for event in events:
        for emit in handler.handle(event, TRADES, now):
            assert emit.topic == FEATURES
            assert isinstance(emit.event, FeatureVector)
            out.append(emit.event)
    return out


def _feed_bars(handler: FeatureHandler, n_bars: int, first: int = 0) -> list[FeatureVector]:
    """Two trades per second (a buy at the open, a sell mid-bar); the next second closes."""
    out: list[FeatureVector] = []
    for i in range(first, first + n_bars + 1):
        start = T + i * S
        for k, (dt, side, size) in enumerate(((0, "buy", 0.3), (S // 2, "sell", 0.1))):
            tick = f.trade(
                trade_id=f"{i}-{k}", ts_event=start + dt, price=_price(i) + k, size=size, side=side
            )
            out += _vectors(handler, tick, now=start + dt)
    return out


def test_feature_handler_when_built_is_stateful_and_names_its_feature_set() -> None:
    handler, _ = _handler()

    assert isinstance(handler, Stateful)
    assert handler.feature_set == FEATURE_SET == f"bars1s.{REGISTRY.digest}"


@pytest.mark.parametrize(
    ("interval", "label"),
    [(S, "1s"), (60 * S, "1m"), (5 * S, "5s"), (250 * MS, "250ms"), (1_500, "1500ns")],
)
def test_feature_set_name_when_interval_given_names_interval_and_definitions(
    interval: int, label: str
) -> None:
    assert feature_set_name(interval) == f"bars{label}.{REGISTRY.digest}"


def test_feature_handler_when_no_quote_seen_emits_nothing() -> None:
    handler, _ = _handler()

    assert _feed_bars(handler, WARMUP_BARS + 5) == []


def test_feature_handler_when_warming_up_emits_first_vector_on_bar_34() -> None:
    handler, _ = _handler()
    handler.handle(f.quote(), QUOTES, T)

    vectors = _feed_bars(handler, WARMUP_BARS + 4)

    assert [(v.bar_start - T) // S for v in vectors] == list(
        range(WARMUP_BARS - 1, WARMUP_BARS + 4)
    )


def test_feature_handler_when_bar_closes_emits_vector_with_bar_values() -> None:
    handler, cache = _handler()
    handler.handle(f.quote(bid=60_000.0, ask=60_000.02, bid_size=1.0, ask_size=3.0), QUOTES, T)

    vectors = _feed_bars(handler, WARMUP_BARS + 2)

    v = vectors[-1]
    i = (v.bar_start - T) // S
    close, prev = _price(i) + 1, _price(i - 1) + 1
    assert v.feature_set == FEATURE_SET
    assert tuple(v.values) == FEATURE_NAMES
    assert v.ts_event == v.bar_start + S
    assert v.close == close
    assert v.key == f.KEY
    assert v.causation_id == f.trade().event_id
    assert v.values["ret_1"] == close / prev - 1
    assert v.values["log_ret_1"] == math.log(close / prev)
    assert v.values["log_ret_5"] == math.log(close / (_price(i - 5) + 1))
    assert v.values["order_flow_imbalance"] == (0.3 - 0.1) / (0.3 + 0.1)
    assert v.values["order_flow_imbalance_10"] == pytest.approx(0.5, rel=1e-12)
    vwap = (_price(i) * 0.3 + (_price(i) + 1) * 0.1) / 0.4
    assert math.isclose(v.values["vwap_dev"], close / vwap - 1, rel_tol=1e-9)
    mid = 60_000.01
    assert math.isclose(v.values["spread_bps"], 0.02 / mid * 1e4, rel_tol=1e-9)
    assert math.isclose(v.values["close_mid_bps"], (close - mid) / mid * 1e4, rel_tol=1e-9)
    # Microprice (60_000 * 3 + 60_000.02 * 1) / 4 = 60_000.005: more size offered, it leans
    # to the bid, half a cent under the mid.
    assert v.values["micro_mid_bps"] == pytest.approx(-0.005 / mid * 1e4, abs=1e-9)
    assert v.values["trade_intensity"] == 1.0  # two trades every bar
    assert v.values["bar_empty"] == 0.0
    assert 0 <= v.values["rsi_14"] <= 100 and 0 < v.values["atr_rel_14"] < 0.01
    assert all(math.isfinite(x) for x in v.values.values())
    cached = orjson.loads(cache.get(f"features:{f.KEY}") or b"null")
    assert cached["event_id"] == v.event_id


def test_feature_handler_when_interval_has_no_trades_emits_empty_bar_vectors() -> None:
    handler, cache = _handler()
    handler.handle(f.quote(), QUOTES, T)
    _feed_bars(handler, WARMUP_BARS + 2)
    last = WARMUP_BARS + 2  # its bar is open
    resume = f.trade(trade_id="r", ts_event=T + (last + 4) * S, price=_price(last) + 5)

    vectors = _vectors(handler, resume)

    assert [(v.bar_start - T) // S for v in vectors] == [last, last + 1, last + 2, last + 3]
    empties = vectors[1:]
    assert [v.values["bar_empty"] for v in vectors] == [0.0, 1.0, 1.0, 1.0]
    assert {v.close for v in empties} == {vectors[0].close}
    assert all(v.values["ret_1"] == 0.0 and v.values["trade_intensity"] == 0.0 for v in empties)
    assert all(v.values["order_flow_imbalance"] == 0.0 for v in empties)
    cached = orjson.loads(cache.get(f"features:{f.KEY}") or b"null")
    assert cached["event_id"] == vectors[-1].event_id  # the latest of the four


def test_feature_handler_when_trade_too_late_rejects_it_and_output_is_unchanged() -> None:
    on_time, _ = _handler()
    with_late, _ = _handler()
    for h in (on_time, with_late):
        h.handle(f.quote(), QUOTES, T)
        _feed_bars(h, WARMUP_BARS)
    late = f.trade(trade_id="late", ts_event=T + S, price=1.0, size=100.0)

    with pytest.raises(Rejected) as err:
        with_late.handle(late, TRADES, T)

    assert err.value.reason == "late_trade"
    assert "already emitted" in err.value.detail
    assert (with_late.late_trades(f.KEY), on_time.late_trades(f.KEY)) == (1, 0)
    a = _feed_bars(on_time, 3, first=WARMUP_BARS + 1)
    b = _feed_bars(with_late, 3, first=WARMUP_BARS + 1)
    assert [v.values for v in a] == [v.values for v in b]


def test_feature_handler_when_lateness_allowed_puts_out_of_order_trade_in_its_bar() -> None:
    handler, _ = _handler(lateness_ns=500 * MS)
    handler.handle(f.quote(), QUOTES, T)
    _feed_bars(handler, WARMUP_BARS + 1)
    n = WARMUP_BARS + 2
    early = f.trade(trade_id="a", ts_event=T + n * S + 100 * MS, price=_price(n), side="buy")
    next_bar = f.trade(trade_id="b", ts_event=T + (n + 1) * S + 200 * MS, price=_price(n + 1))
    straggler = f.trade(trade_id="c", ts_event=T + n * S + 900 * MS, price=_price(n) + 7)
    closer = f.trade(trade_id="d", ts_event=T + (n + 1) * S + 500 * MS, price=_price(n + 1))

    vectors = _vectors(handler, early, next_bar, straggler, closer)

    # `next_bar` lifts the watermark past bar n - 1 only; `closer` past bar n, straggler in.
    assert [((v.bar_start - T) // S, v.close) for v in vectors] == [
        (n - 1, _price(n - 1) + 1),
        (n, _price(n) + 7),
    ]
    assert handler.late_trades(f.KEY) == 0


def test_feature_handler_when_cache_ttl_passes_drops_cached_features() -> None:
    clock = SimClock(T)
    cache = MemoryCache(clock)
    handler = FeatureHandler(EventIds(clock, seed=1), cache, S, 2.0)
    handler.handle(f.quote(), QUOTES, T)
    _feed_bars(handler, WARMUP_BARS + 1)
    assert cache.get(f"features:{f.KEY}") is not None

    clock.advance_to(clock.now_ns() + 1 * S)
    assert cache.get(f"features:{f.KEY}") is not None
    clock.advance_to(clock.now_ns() + 2 * S)

    assert cache.get(f"features:{f.KEY}") is None


def test_feature_handler_when_instruments_interleave_keeps_separate_state() -> None:
    handler, _ = _handler()
    handler.handle(f.quote(), QUOTES, T)
    handler.handle(f.quote(symbol="ETH/USDT", bid=3_000.0, ask=3_000.01), QUOTES, T)

    eth_vectors: list[FeatureVector] = []
    for i in range(WARMUP_BARS + 1):
        eth = f.trade(symbol="ETH/USDT", trade_id=f"e{i}", ts_event=T + i * S, price=3_000.0 + i)
        eth_vectors += _vectors(handler, eth, now=T + i * S)
    btc_vectors = _feed_bars(handler, WARMUP_BARS)

    assert [(v.symbol, v.close) for v in eth_vectors] == [("ETH/USDT", 3_000.0 + WARMUP_BARS - 1)]
    assert [v.symbol for v in btc_vectors] == ["BTC/USDT"]
    assert btc_vectors[0].close == _price(WARMUP_BARS - 1) + 1


def test_feature_handler_when_event_is_not_market_data_ignores_it() -> None:
    handler, _ = _handler()

    assert handler.handle(f.signal(), "signals.v1", T) == ()
