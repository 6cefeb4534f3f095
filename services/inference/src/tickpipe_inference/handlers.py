"""Feature vectors -> model probability -> signals on `signals.v1`.

A signal's event id is derived from its vector's id, the model version and the strategy (not
drawn): a vector scored again (redelivered after a crash, or repeated upstream) gives the
same signal under the same id, so risk, which makes its client order id from it, sees a
repeat.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TypeGuard

import numpy as np
import orjson

from tickpipe.bus.history import events_by_topic
from tickpipe.cache.base import Cache
from tickpipe.ids import EventIds, derived_id
from tickpipe.messages import (
    ControlAction,
    ControlCommand,
    Event,
    FeatureVector,
    Signal,
    encode,
)
from tickpipe.service import Emit, Rejected, ServiceContext
from tickpipe.topics import CONTROL, SIGNALS
from tickpipe_inference.domain.model import Model, ModelError, ModelSource
from tickpipe_inference.metrics import MODEL_INFO, MODEL_RELOADS, MODEL_SECONDS

log = logging.getLogger(__name__)


def signal_id(vector: FeatureVector, model_version: str, strategy_id: str) -> str:
    """A signal's event id: the vector it scores, the model and the strategy, time-sorted by
    the vector's time (its bar's end)."""
    return derived_id(vector.ts_event, "signal", vector.event_id, model_version, strategy_id)


def direction_for(probability: float, long_threshold: float, short_threshold: float) -> int:
    if probability >= long_threshold:
        return 1
    if probability <= short_threshold:
        return -1
    return 0


class InferenceHandler:
    def __init__(
        self,
        model: Model,
        ids: EventIds,
        cache: Cache,
        strategy_id: str,
        long_threshold: float = 0.55,
        short_threshold: float = 0.45,
        cache_ttl_s: float = 300.0,
        registry: ModelSource | None = None,
    ) -> None:
        self._registry = registry
        self._model = model
        MODEL_INFO.labels(model.version).set(1)
        self._ids = ids
        self._cache = cache  # a ResilientCache in a process: a write never fails a record
        self._ttl = cache_ttl_s
        self._strategy = strategy_id
        self._long = long_threshold
        self._short = short_threshold
        self._names = model.card.feature_names

    @property
    def model(self) -> Model:
        return self._model

    def handle(self, event: Event, topic: str, now_ns: int) -> Sequence[Emit]:
        if isinstance(event, ControlCommand):
            self._on_control(event)
            return ()
        if not isinstance(event, FeatureVector):
            return ()
        row = self._row(event)
        with MODEL_SECONDS.time():
            p = float(self._model.predict_proba(np.asarray([row]))[0])
        signal = self._signal(event, p, now_ns)
        self._remember([signal])
        return (Emit(SIGNALS, signal),)

    def handle_batch(
        self, items: Sequence[tuple[Event, str]], now_ns: int
    ) -> Sequence[Sequence[Emit] | Exception]:
        """Micro-batching: each run of feature vectors is scored in one model call.

        A control command ends a run, so a reload applies exactly from its position on.
        """
        results: list[Sequence[Emit] | Exception] = [() for _ in items]
        run: list[tuple[int, FeatureVector, list[float]]] = []

        def score_run() -> None:
            if not run:
                return
            with MODEL_SECONDS.time():
                probs = self._model.predict_proba(np.asarray([row for _, _, row in run]))
            signals = [
                self._signal(v, float(p), now_ns) for (_, v, _), p in zip(run, probs, strict=True)
            ]
            for (i, _, _), signal in zip(run, signals, strict=True):
                results[i] = (Emit(SIGNALS, signal),)
            self._remember(signals)
            run.clear()

        for i, (event, topic) in enumerate(items):
            if isinstance(event, FeatureVector):
                try:
                    run.append((i, event, self._row(event)))
                except Rejected as exc:
                    results[i] = exc
                continue
            score_run()
            try:
                results[i] = self.handle(event, topic, now_ns)
            except Exception as exc:
                results[i] = exc
        score_run()
        return results

    def _row(self, event: FeatureVector) -> list[float]:
        """The model's input row, in card order; refuses vectors it cannot score."""
        try:
            self._model.card.check_features(event.feature_set, tuple(event.values))
        except ModelError as exc:
            raise Rejected("feature_mismatch", str(exc)) from exc
        row = [event.values[n] for n in self._names]
        if not all(map(math.isfinite, row)):
            raise Rejected(
                "non_finite_feature",
                ",".join(n for n, v in zip(self._names, row, strict=True) if not math.isfinite(v)),
            )
        return row

    def _signal(self, event: FeatureVector, p: float, now_ns: int) -> Signal:
        version = self._model.version
        signal = Signal(
            event_id=signal_id(event, version, self._strategy),
            ts_event=event.ts_event,
            ts_init=now_ns,
            causation_id=event.event_id,
            exchange=event.exchange,
            symbol=event.symbol,
            strategy_id=self._strategy,
            model_version=version,
            direction=direction_for(p, self._long, self._short),
            probability=p,
            score=2 * p - 1,
            feature_ts=event.ts_event,
            price=event.close,
            volatility=event.values.get("realized_vol_20"),
            # Where in the market stream, and at what touch: risk sizes on this quote, so
            # a replay decides as live did (see tickpipe.arrival).
            market_seq=event.market_seq,
            bid=event.bid,
            ask=event.ask,
        )
        return signal

    def _remember(self, signals: Sequence[Signal]) -> None:
        """The latest signal per instrument, for readers of the cache (the API): one write
        per batch, not one per signal."""
        latest = {f"signals:{s.key}": s for s in signals}
        self._cache.set_many({k: encode(s) for k, s in latest.items()}, self._ttl)

    def on_start(self, ctx: ServiceContext) -> Sequence[Emit]:
        """Every replica serves the model operators last reloaded: `control.v1` is read by
        each replica in full (a broadcast input, from now on), and at start its history
        says which model the others serve. A reload that no longer loads leaves the model
        this instance has (configured, or restored from its snapshot), loudly."""
        history = events_by_topic(ctx.bus, (CONTROL,), "inference-rebuild", ctx.stop)
        reloads = [c for c in history[CONTROL] if self._reloads(c)]
        if reloads:
            last = reloads[-1]
            name, version = last.args.get("name", ""), last.args.get("version", "")
            if (name, version) != (self._model.card.name, self._model.card.version):
                try:
                    self._swap(self._load(name, version))
                except ModelError:
                    log.exception("could not load the model last reloaded on control.v1")
        return ()

    def _reloads(self, command: Event) -> TypeGuard[ControlCommand]:
        return (
            isinstance(command, ControlCommand)
            and command.action is ControlAction.RELOAD_MODEL
            and command.target in ("*", "inference", self._strategy)
        )

    def _on_control(self, command: ControlCommand) -> None:
        if not self._reloads(command):
            return
        name, version = command.args.get("name", ""), command.args.get("version", "")
        try:
            self._swap(self._load(name, version))
        except ModelError as exc:
            MODEL_RELOADS.labels("failed").inc()
            # The old model keeps serving; the command is dead-lettered with the reason.
            raise Rejected("model_reload_failed", str(exc)) from exc
        MODEL_RELOADS.labels("ok").inc()

    def _load(self, name: str, version: str) -> Model:
        if self._registry is None:
            raise ModelError("no model registry configured")
        model = self._registry.load(name, version)
        # Whatever the source checks, a model that cannot score the vectors the serving one
        # scores would reject every one of them: refuse it before it serves.
        current = self._model.card
        model.card.check_features(current.feature_set, current.feature_names)
        return model

    def _swap(self, model: Model) -> None:
        MODEL_INFO.labels(self._model.version).set(0)
        self._model = model
        self._names = model.card.feature_names
        MODEL_INFO.labels(model.version).set(1)
        log.info("model serving", extra={"model_version": model.version})

    def snapshot(self) -> bytes:
        return orjson.dumps({"name": self._model.card.name, "version": self._model.card.version})

    def restore(self, data: bytes) -> None:
        state = orjson.loads(data)
        if self._registry is None:
            return
        try:
            self._swap(self._load(state["name"], state["version"]))
        except ModelError:
            # A model removed from the registry since: keep the configured one, loudly.
            log.exception("could not restore the model in the snapshot")
