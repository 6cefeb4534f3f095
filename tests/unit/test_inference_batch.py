"""Micro-batched scoring gives exactly what scoring one vector at a time gives."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from tests.unit import factories as f
from tests.unit.inference_models import register, register_inverted
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import ControlAction, Event, Signal
from tickpipe.service import Emit, Rejected
from tickpipe.topics import CONTROL, FEATURES
from tickpipe_inference.handlers import InferenceHandler
from tickpipe_inference.model_registry import ModelRegistry
from tickpipe_quant.features import FEATURE_NAMES, FEATURE_SET


def _handler(root: Path) -> InferenceHandler:
    registry = ModelRegistry(root, FEATURE_SET, FEATURE_NAMES)
    return InferenceHandler(
        registry.load("baseline", "v1"),
        EventIds(SimClock(), seed=2),
        MemoryCache(),
        "baseline",
        registry=registry,
    )


def _items() -> list[tuple[Event, str]]:
    rng = random.Random(5)
    items: list[tuple[Event, str]] = []
    for i in range(40):
        values = {n: rng.gauss(0.0, 0.01) for n in FEATURE_NAMES}
        if i == 7:
            values[FEATURE_NAMES[0]] = math.nan
        items.append((f.feature_vector(values=values, event_id=f"01FV{i:04d}"), FEATURES))
        if i == 20:
            reload = f.control(
                ControlAction.RELOAD_MODEL,
                target="inference",
                args={"name": "baseline", "version": "v2"},
            )
            items.append((reload, CONTROL))
    return items


def _outcome(result: Sequence[Emit] | Exception) -> object:
    if isinstance(result, Exception):
        return ("error", getattr(result, "reason", type(result).__name__))
    signals = [e.event for e in result if isinstance(e.event, Signal)]
    return [(s.model_version, s.probability, s.direction) for s in signals]


def test_inference_batch_when_run_with_a_reload_inside_then_equals_one_at_a_time(
    tmp_path: Path,
) -> None:
    register(tmp_path, "v1")
    register_inverted(tmp_path, "v2")  # other weights: P(up) becomes 1 - P(up)
    items = _items()

    single = _handler(tmp_path)
    expected: list[object] = []
    for event, topic in items:
        try:
            expected.append(_outcome(single.handle(event, topic, f.T0)))
        except Rejected as exc:
            expected.append(_outcome(exc))
    batched = [_outcome(r) for r in _handler(tmp_path).handle_batch(items, f.T0)]

    assert batched == expected
    assert ("error", "non_finite_feature") in batched
    versions = {v for o in batched if isinstance(o, list) for v, _, _ in o}
    assert versions == {"baseline:v1", "baseline:v2"}
    # From the reload on, each vector is scored by v2's weights, not v1's under a new label.
    features_only = [(e, t) for e, t in items if t == FEATURES]
    v1_only = [_outcome(r) for r in _handler(tmp_path).handle_batch(features_only, f.T0)]
    scored = [o for o in batched if o != []]
    assert len(scored) == len(v1_only)
    for got, v1 in zip(scored, v1_only, strict=True):
        if isinstance(got, list) and got[0][0] == "baseline:v2":
            assert isinstance(v1, list)
            assert got[0][1] == pytest.approx(1 - v1[0][1], abs=1e-6)
        else:
            assert got == v1


def test_inference_batch_caches_the_latest_signal_per_instrument_once(tmp_path: Path) -> None:
    register(tmp_path, "v1")
    registry = ModelRegistry(tmp_path, FEATURE_SET, FEATURE_NAMES)
    writes: list[list[str]] = []

    class CountingCache(MemoryCache):
        def set_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None:
            writes.append(sorted(items))
            super().set_many(items, ttl_s)

    cache = CountingCache()
    handler = InferenceHandler(
        registry.load("baseline", "v1"), EventIds(SimClock(), seed=2), cache, "baseline"
    )
    items: list[tuple[Event, str]] = [
        (f.feature_vector(symbol=symbol, event_id=f"01FV{i:04d}"), FEATURES)
        for i, symbol in enumerate(["BTC/USDT", "ETH/USDT", "BTC/USDT", "BTC/USDT"])
    ]

    results = handler.handle_batch(items, f.T0)

    last = {}
    for result in results:
        assert not isinstance(result, Exception)
        signal = result[0].event
        assert isinstance(signal, Signal)
        last[signal.key] = signal.event_id
    assert writes == [["signals:binance:BTC/USDT", "signals:binance:ETH/USDT"]]
    for key, event_id in last.items():
        assert json.loads(cache.get(f"signals:{key}") or b"null")["event_id"] == event_id
