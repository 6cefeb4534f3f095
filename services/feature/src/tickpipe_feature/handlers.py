"""Trades and quotes -> bars -> feature vectors on `features.v1`.

Quotes update the instrument's latest top of book; trades feed its bar builder, and every
bar the trade completes (empty ones included) goes through the feature engine, whose vector
is emitted once warm. A trade too late for its bar is refused (`late_trade`): the runner
dead-letters it with its bytes, so it is counted and can be looked at, never lost quietly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from tickpipe.cache.base import Cache
from tickpipe.ids import EventIds
from tickpipe.messages import Event, FeatureVector, QuoteTick, TradeTick
from tickpipe.service import Emit, Rejected
from tickpipe.topics import FEATURES
from tickpipe_feature import snapshot
from tickpipe_quant.bars import LateTrade, TimeBarBuilder
from tickpipe_quant.features import FeatureEngine, feature_set_name

SNAPSHOT_FORMAT = 1


class _Instrument:
    __slots__ = ("bars", "engine")

    def __init__(self, interval_ns: int, allowed_lateness_ns: int) -> None:
        self.bars = TimeBarBuilder(interval_ns, allowed_lateness_ns)
        self.engine = FeatureEngine()


class FeatureHandler:
    def __init__(
        self,
        ids: EventIds,
        cache: Cache,
        bar_interval_ns: int,
        cache_ttl_s: float = 300.0,
        allowed_lateness_ns: int = 0,
    ) -> None:
        self._ids = ids
        self._cache = cache
        self._interval = bar_interval_ns
        self._lateness = allowed_lateness_ns
        self._ttl = cache_ttl_s
        self.feature_set = feature_set_name(bar_interval_ns)
        self._state: dict[str, _Instrument] = {}

    def _instrument(self, key: str) -> _Instrument:
        state = self._state.get(key)
        if state is None:
            state = self._state[key] = _Instrument(self._interval, self._lateness)
        return state

    def late_trades(self, key: str) -> int:
        """Trades refused as too late for `key` since the state began (snapshots keep it)."""
        state = self._state.get(key)
        return 0 if state is None else state.bars.late

    def handle(self, event: Event, topic: str, now_ns: int) -> Sequence[Emit]:
        if isinstance(event, QuoteTick):
            engine = self._instrument(event.key).engine
            engine.on_quote(event.bid, event.ask, event.bid_size, event.ask_size)
            return ()
        if not isinstance(event, TradeTick):
            return ()
        state = self._instrument(event.key)
        try:
            bars = state.bars.add(event.ts_event, event.price, event.size, event.side == "buy")
        except LateTrade as exc:
            raise Rejected("late_trade", str(exc)) from exc
        out: list[Emit] = []
        for bar in bars:
            values = state.engine.on_bar(bar)
            if values is None:
                continue  # warming up
            vector = FeatureVector(
                event_id=self._ids.new(),
                ts_event=bar.end,
                ts_init=now_ns,
                causation_id=event.event_id,
                exchange=event.exchange,
                symbol=event.symbol,
                feature_set=self.feature_set,
                bar_start=bar.start,
                close=bar.close,
                values=values,
            )
            out.append(Emit(FEATURES, vector))
        if out:
            latest = out[-1].event
            self._cache.set(f"features:{event.key}", orjson.dumps(latest.model_dump()), self._ttl)
        return out

    # -- Stateful ---------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {
            "format": SNAPSHOT_FORMAT,
            "feature_set": self.feature_set,
            "interval_ns": self._interval,
            "allowed_lateness_ns": self._lateness,
        }

    def snapshot(self) -> bytes:
        """Every instrument's bar builder and indicators (buffers, sums, last quote)."""
        instruments = {
            key: {"bars": s.bars.state(), "engine": s.engine.state()}
            for key, s in self._state.items()
        }
        return snapshot.dumps({**self._config(), "instruments": instruments})

    def restore(self, data: bytes) -> None:
        """Replace the state with a snapshot taken by a handler configured the same way."""
        state = snapshot.loads(data)
        config = {k: state.get(k) for k in self._config()}
        if config != self._config():
            raise ValueError(f"snapshot taken with {config}, this handler runs {self._config()}")
        restored: dict[str, _Instrument] = {}
        for key, saved in state["instruments"].items():
            instrument = restored[key] = _Instrument(self._interval, self._lateness)
            instrument.bars.load(saved["bars"])
            instrument.engine.load(saved["engine"])
        self._state = restored
