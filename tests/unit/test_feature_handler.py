"""Feature handler: trades and quotes in, one feature vector per closed bar once warm."""

from __future__ import annotations

import math

import orjson

from tests.unit import factories as f
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import FeatureVector
from tickpipe.topics import FEATURES, TRADES
from tickpipe_feature.handlers import FeatureHandler
from tickpipe_quant.features import FEATURE_NAMES, FEATURE_SET

S = f.SECOND
T = 1_723_161_255 * S
# Ema(26) is the slowest input: the 26th closed bar is the first with every feature warm.
WARMUP_BARS = 26


def _handler(ttl_s: float = 300.0) -> tuple[FeatureHandler, MemoryCache, SimClock]:
    clock = SimClock(T)
    cache = MemoryCache(clock)
    return FeatureHandler(EventIds(clock, seed=1), cache, S, ttl_s), cache, clock


def _price(i: int) -> float:
    return 60_000.0 + 25.0 * math.sin(i / 3.0) + i


def _feed_bars(handler: FeatureHandler, n_bars: int) -> list[FeatureVector]:
    """Two trades per second (a buy at the open, a sell mid-bar); the next second closes."""
    out: list[FeatureVector] = []
    for i in range(n_bars + 1):
        start = T + i * S
        for k, (dt, side, size) in enumerate(((0, "buy", 0.3), (S // 2, "sell", 0.1))):
            tick = f.trade(
                trade_id=f"{i}-{k}",
                ts_event=start + dt,
                price=_price(i) + k,
                size=size,
                side=side,
            )
            for emit in handler.handle(tick, TRADES, start + dt):
                assert emit.topic == FEATURES
                assert isinstance(emit.event, FeatureVector)
                out.append(emit.event)
    return out


def test_feature_handler_when_no_quote_seen_emits_nothing() -> None:
    handler, _, _ = _handler()

    assert _feed_bars(handler, WARMUP_BARS + 5) == []


def test_feature_handler_when_warming_up_emits_first_vector_on_bar_26() -> None:
    handler, _, _ = _handler()
    handler.handle(f.quote(), "md.quotes.v1", T)

    vectors = _feed_bars(handler, WARMUP_BARS + 4)

    assert [(v.bar_start - T) // S for v in vectors] == list(
        range(WARMUP_BARS - 1, WARMUP_BARS + 4)
    )


def test_feature_handler_when_bar_closes_emits_vector_with_bar_values() -> None:
    handler, cache, _ = _handler()
    handler.handle(f.quote(bid=60_000.0, ask=60_000.02), "md.quotes.v1", T)

    vectors = _feed_bars(handler, WARMUP_BARS + 2)

    v = vectors[-1]
    i = (v.bar_start - T) // S
    assert v.feature_set == FEATURE_SET
    assert tuple(v.values) == FEATURE_NAMES
    assert v.ts_event == v.bar_start + S
    assert v.close == _price(i) + 1
    assert v.key == f.KEY
    assert v.causation_id == f.trade().event_id
    assert v.values["log_ret_1"] == math.log((_price(i) + 1) / (_price(i - 1) + 1))
    assert v.values["log_ret_5"] == math.log((_price(i) + 1) / (_price(i - 5) + 1))
    assert v.values["order_flow_imbalance"] == (0.3 - 0.1) / (0.3 + 0.1)
    vwap = (_price(i) * 0.3 + (_price(i) + 1) * 0.1) / 0.4
    assert math.isclose(v.values["vwap_dev"], (_price(i) + 1) / vwap - 1, rel_tol=1e-9)
    assert math.isclose(v.values["spread_bps"], 0.02 / 60_000.01 * 1e4, rel_tol=1e-9)
    assert v.values["trade_intensity"] == 1.0  # two trades every bar
    assert 0 <= v.values["rsi_14"] <= 100
    assert all(math.isfinite(x) for x in v.values.values())
    cached = orjson.loads(cache.get(f"features:{f.KEY}") or b"null")
    assert cached["event_id"] == v.event_id


def test_feature_handler_when_cache_ttl_passes_drops_cached_features() -> None:
    handler, cache, clock = _handler(ttl_s=2.0)
    handler.handle(f.quote(), "md.quotes.v1", T)
    _feed_bars(handler, WARMUP_BARS + 1)
    assert cache.get(f"features:{f.KEY}") is not None

    clock.advance_to(clock.now_ns() + 3 * S)

    assert cache.get(f"features:{f.KEY}") is None


def test_feature_handler_when_instruments_interleave_keeps_separate_state() -> None:
    handler, _, _ = _handler()
    handler.handle(f.quote(), "md.quotes.v1", T)
    handler.handle(f.quote(symbol="ETH/USDT", bid=3_000.0, ask=3_000.01), "md.quotes.v1", T)

    eth_vectors: list[FeatureVector] = []
    for i in range(WARMUP_BARS + 1):
        eth = f.trade(symbol="ETH/USDT", trade_id=f"e{i}", ts_event=T + i * S, price=3_000.0 + i)
        for emit in handler.handle(eth, TRADES, T + i * S):
            assert isinstance(emit.event, FeatureVector)
            eth_vectors.append(emit.event)
    btc_vectors = _feed_bars(handler, WARMUP_BARS)

    assert [(v.symbol, v.close) for v in eth_vectors] == [("ETH/USDT", 3_000.0 + WARMUP_BARS - 1)]
    assert [v.symbol for v in btc_vectors] == ["BTC/USDT"]
    assert btc_vectors[0].close == _price(WARMUP_BARS - 1) + 1


def test_feature_handler_when_event_is_not_market_data_ignores_it() -> None:
    handler, _, _ = _handler()

    assert handler.handle(f.signal(), "signals.v1", T) == ()
