"""Feature and inference write the latest vector/signal through the services' cache adapter
(`ResilientCache`, as `tickpipe.app.make_cache` builds it over Redis): a failing store costs
no output (nothing dead-lettered), is counted and logged, and the latest values are written
once it answers again."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import orjson
import pytest
from opentelemetry.trace import NoOpTracer
from prometheus_client import REGISTRY

from tests.unit import factories as f
from tickpipe.bus.memory import MemoryBus
from tickpipe.cache.base import Cache
from tickpipe.cache.memory import MemoryCache
from tickpipe.cache.resilient import ResilientCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import FeatureVector, Signal
from tickpipe.runner import StreamRunner, encode_emit
from tickpipe.service import Emit
from tickpipe.topics import DLQ, FEATURES, QUOTES, SIGNALS, TRADES
from tickpipe_feature.handlers import FeatureHandler
from tickpipe_inference.handlers import InferenceHandler
from tickpipe_inference.onnx_model import OnnxModel

S = f.SECOND
T = 1_723_161_255 * S


class FlakyCache(MemoryCache):
    """A cache whose writes fail while `down` (as redis-py raises when Redis is away)."""

    def __init__(self, clock: SimClock) -> None:
        super().__init__(clock)
        self.down = False
        self.attempts = 0

    def _check(self) -> None:
        self.attempts += 1
        if self.down:
            raise ConnectionError("Error 111 connecting to localhost:6379. Connection refused.")

    def ping(self) -> bool:
        self._check()
        return True

    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        self._check()
        super().set(key, value, ttl_s)

    def set_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None:
        self._check()
        super().set_many(items, ttl_s)


def _errors() -> float:
    return REGISTRY.get_sample_value("tickpipe_cache_failures_total", {"op": "set"}) or 0.0


def _resilient(store: FlakyCache) -> ResilientCache:
    return ResilientCache(store, probe=store.ping, probe_interval_s=0.0)


def _trades(n_bars: int) -> list[Emit]:
    out = [Emit(QUOTES, f.quote())]
    for i in range(n_bars):
        for k in range(2):
            trade = f.trade(
                event_id=f"01T{i:05d}{k}",
                trade_id=f"{i}-{k}",
                ts_event=T + i * S + k * S // 2,
                price=60_000.0 + 25 * math.sin(i / 3) + k,
            )
            out.append(Emit(TRADES, trade))
    return out


def _feature(cache: Cache, clock: SimClock) -> FeatureHandler:
    return FeatureHandler(EventIds(clock, seed=1), cache, S)


def _vectors(handler: FeatureHandler, emits: list[Emit]) -> list[FeatureVector]:
    out: list[FeatureVector] = []
    for e in emits:
        for emit in handler.handle(e.event, e.topic, e.event.ts_event):
            assert isinstance(emit.event, FeatureVector)
            out.append(emit.event)
    return out


def test_feature_when_cache_fails_keeps_every_vector_and_counts_the_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inputs = _trades(60)
    clock = SimClock(T)
    healthy = _vectors(_feature(MemoryCache(clock), clock), inputs)
    store = FlakyCache(clock)
    handler = _feature(_resilient(store), clock)
    store.down = True
    before = _errors()

    with caplog.at_level(logging.WARNING):
        got = _vectors(handler, inputs)

    assert len(got) > 10
    assert got == healthy  # ids included: the cache has no say in the outputs
    assert _errors() - before == 1  # then kept without trying until a probe succeeds
    assert store.get(f"features:{f.KEY}") is None
    warnings = [r for r in caplog.records if "cache unreachable" in r.getMessage()]
    assert len(warnings) == 1  # logged once per outage


def test_feature_when_cache_recovers_writes_the_latest_vector_with_the_next_write() -> None:
    clock = SimClock(T)
    store = FlakyCache(clock)
    handler = _feature(_resilient(store), clock)
    inputs = _trades(50)
    store.down = True
    first = _vectors(handler, inputs[:-20])
    assert first and store.get(f"features:{f.KEY}") is None
    store.down = False

    later = _vectors(handler, inputs[-20:])  # the next write probes, writes back, goes on

    cached = orjson.loads(store.get(f"features:{f.KEY}") or b"null")
    assert cached["event_id"] == later[-1].event_id


@pytest.fixture(scope="module")
def model() -> OnnxModel:
    return OnnxModel(f.MODEL_DIR)


def test_inference_when_cache_fails_through_the_runner_publishes_every_signal(
    model: OnnxModel,
) -> None:
    clock = SimClock(f.T0)
    store = FlakyCache(clock)
    store.down = True
    cache = _resilient(store)
    ids = EventIds(clock, seed=2)
    bus = MemoryBus()
    producer = bus.producer("test")
    vectors = [
        f.feature_vector(event_id=f"01FV{i:04d}", ts_event=f.T0 + i * S, symbol=symbol)
        for i in range(12)
        for symbol in ("BTC/USDT", "ETH/USDT")
    ]
    for v in vectors:
        producer.send(encode_emit(Emit(FEATURES, v), ()))
    runner = StreamRunner(
        service="inference",
        group="inference",
        handler=InferenceHandler(model, ids, cache, "baseline"),
        link=bus.link(group="inference", topics=[FEATURES], client_id="inference-1"),
        clock=clock,
        ids=ids,
        tracer=NoOpTracer(),
        batch_size=5,
    )
    before = _errors()

    while runner.step(0.0):
        pass
    store.down = False
    producer.send(encode_emit(Emit(FEATURES, f.feature_vector(event_id="01FVLAST")), ()))
    while runner.step(0.0):
        pass

    signals = [Signal.model_validate_json(r.value) for r in bus.records(SIGNALS)]
    assert len(signals) == len(vectors) + 1
    assert bus.records(DLQ) == []
    assert _errors() - before >= 1
    # Written back once the store answered: the other instrument's kept signal too.
    eth = orjson.loads(store.get("signals:binance:ETH/USDT") or b"null")
    assert eth["causation_id"] == vectors[-1].event_id
    btc = orjson.loads(store.get(f"signals:{f.KEY}") or b"null")
    assert btc["causation_id"] == "01FVLAST"
