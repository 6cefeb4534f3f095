"""Feature vectors -> model probability -> signals on `signals.v1`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import orjson

from tickpipe.cache.base import Cache
from tickpipe.ids import EventIds
from tickpipe.messages import Event, FeatureVector, Signal
from tickpipe.service import Emit, Rejected
from tickpipe.topics import SIGNALS
from tickpipe_inference.domain.model import ModelError, OnnxModel


def direction_for(probability: float, long_threshold: float, short_threshold: float) -> int:
    if probability >= long_threshold:
        return 1
    if probability <= short_threshold:
        return -1
    return 0


class InferenceHandler:
    def __init__(
        self,
        model: OnnxModel,
        ids: EventIds,
        cache: Cache,
        strategy_id: str,
        long_threshold: float = 0.55,
        short_threshold: float = 0.45,
        cache_ttl_s: float = 300.0,
    ) -> None:
        self._model = model
        self._ids = ids
        self._cache = cache
        self._strategy = strategy_id
        self._long = long_threshold
        self._short = short_threshold
        self._ttl = cache_ttl_s
        self._names = model.card.feature_names

    def handle(self, event: Event, topic: str, now_ns: int) -> Sequence[Emit]:
        if not isinstance(event, FeatureVector):
            return ()
        try:
            self._model.check_features(event.feature_set, tuple(event.values))
        except ModelError as exc:
            raise Rejected("feature_mismatch", str(exc)) from exc
        row = [event.values[n] for n in self._names]
        if any(math.isnan(v) or math.isinf(v) for v in row):
            raise Rejected(
                "non_finite_feature",
                ",".join(n for n, v in zip(self._names, row, strict=True) if not math.isfinite(v)),
            )
        p = float(self._model.predict_proba(np.asarray([row]))[0])
        vol = event.values.get("realized_vol_20")
        signal = Signal(
            event_id=self._ids.new(),
            ts_event=event.ts_event,
            ts_init=now_ns,
            causation_id=event.event_id,
            exchange=event.exchange,
            symbol=event.symbol,
            strategy_id=self._strategy,
            model_version=self._model.version,
            direction=direction_for(p, self._long, self._short),
            probability=p,
            score=2 * p - 1,
            feature_ts=event.ts_event,
            price=event.close,
            volatility=vol,
        )
        self._cache.set(f"signals:{event.key}", orjson.dumps(signal.model_dump()), self._ttl)
        return (Emit(SIGNALS, signal),)
