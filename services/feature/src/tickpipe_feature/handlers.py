"""Trades and quotes -> bars -> feature vectors on `features.v1`."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from tickpipe.cache.base import Cache
from tickpipe.ids import EventIds
from tickpipe.messages import Event, FeatureVector, QuoteTick, TradeTick
from tickpipe.service import Emit
from tickpipe.topics import FEATURES
from tickpipe_quant.bars import TimeBarBuilder
from tickpipe_quant.features import FEATURE_SET, FeatureEngine


class _Instrument:
    __slots__ = ("bars", "engine")

    def __init__(self, interval_ns: int) -> None:
        self.bars = TimeBarBuilder(interval_ns)
        self.engine = FeatureEngine()


class FeatureHandler:
    def __init__(
        self, ids: EventIds, cache: Cache, bar_interval_ns: int, cache_ttl_s: float = 300.0
    ) -> None:
        self._ids = ids
        self._cache = cache
        self._interval = bar_interval_ns
        self._ttl = cache_ttl_s
        self._state: dict[str, _Instrument] = {}

    def _instrument(self, key: str) -> _Instrument:
        state = self._state.get(key)
        if state is None:
            state = self._state[key] = _Instrument(self._interval)
        return state

    def handle(self, event: Event, topic: str, now_ns: int) -> Sequence[Emit]:
        if isinstance(event, QuoteTick):
            self._instrument(event.key).engine.on_quote(event.bid, event.ask)
            return ()
        if not isinstance(event, TradeTick):
            return ()
        state = self._instrument(event.key)
        bar = state.bars.add(event.ts_event, event.price, event.size, event.side == "buy")
        if bar is None:
            return ()
        values = state.engine.on_bar(bar)
        if values is None:
            return ()  # warming up
        vector = FeatureVector(
            event_id=self._ids.new(),
            ts_event=bar.end,
            ts_init=now_ns,
            causation_id=event.event_id,
            exchange=event.exchange,
            symbol=event.symbol,
            feature_set=FEATURE_SET,
            bar_start=bar.start,
            close=bar.close,
            values=values,
        )
        self._cache.set(f"features:{event.key}", orjson.dumps(vector.model_dump()), self._ttl)
        return (Emit(FEATURES, vector),)
