"""Keyed state follows its partitions (`KeyedState`): feature's per-instrument state is
snapshotted per partition, handed over when a partition moves to another replica, and the
replicas together publish exactly what one instance does, across rebalances."""

from __future__ import annotations

from typing import Any

from tests.unit import factories as f
from tickpipe.bus.memory import MemoryBus
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import FeatureVector, QuoteTick, TradeTick, decode
from tickpipe.runner import StreamRunner, encode_emit
from tickpipe.service import Emit
from tickpipe.state import SnapshotStore
from tickpipe.telemetry.tracing import make_tracer
from tickpipe.topics import BY_NAME as TOPICS_BY_NAME
from tickpipe.topics import FEATURES, QUOTES, TRADES
from tickpipe_feature.handlers import FeatureHandler

S = 1_000_000_000
PARTITIONS = TOPICS_BY_NAME[TRADES].partitions  # as many as md.quotes.v1: co-partitioned
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "BNB/USDT", "ADA/USDT"]


def _market(n: int) -> list[TradeTick | QuoteTick]:
    """The sample's first `n` records, once per symbol (the same prints under six names)."""
    return [
        e.model_copy(update={"symbol": symbol, "event_id": f"{e.event_id}{i}"})
        for e in f.sample_market(n)
        for i, symbol in enumerate(SYMBOLS)
    ]


def _bus(events: list[TradeTick | QuoteTick]) -> MemoryBus:
    bus = MemoryBus(default_partitions=4)
    for e in events:
        bus.append(encode_emit(Emit(TRADES if isinstance(e, TradeTick) else QUOTES, e), ()))
    return bus


def _runner(bus: MemoryBus, cache: MemoryCache, name: str) -> StreamRunner:
    clock = SimClock()
    ids = EventIds(clock, seed=1)
    return StreamRunner(
        service="feature",
        group="feature",
        handler=FeatureHandler(ids, cache, S),
        link=bus.link(group="feature", topics=[TRADES, QUOTES], client_id=name),
        clock=clock,
        ids=ids,
        tracer=make_tracer("test"),
        batch_size=200,
        snapshots=SnapshotStore(cache, "snapshot:feature"),
        snapshot_interval_s=3600,  # only at hand-overs: those are what is tested
    )


def _vectors(bus: MemoryBus) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in bus.records(FEATURES):
        v = decode(r.value, FeatureVector.event_type)
        body = v.model_dump(exclude={"ts_init"})
        assert out.setdefault(v.event_id, body) == body  # a repeat is the same vector
        out[v.event_id] = body
    return out


def _one_instance(events: list[TradeTick | QuoteTick]) -> dict[str, dict[str, Any]]:
    bus = _bus(events)
    single = _runner(bus, MemoryCache(), "a")
    while single.step(0.0):
        pass
    return _vectors(bus)


def test_feature_replicas_when_partitions_move_publish_what_one_instance_does() -> None:
    events = _market(12_000)
    expected = _one_instance(events)
    assert len(expected) > 6 * 30

    bus, cache = _bus(events), MemoryCache()
    a = _runner(bus, cache, "a")
    for _ in range(20):  # a alone, a while
        a.step(0.0)
    b = _runner(bus, cache, "b")  # joins: half of a's partitions move to b, with their state
    assert a._task_keys and b._task_keys and not a._task_keys.keys() & b._task_keys.keys()
    for _ in range(20):
        a.step(0.0)
        b.step(0.0)
    a.close()  # leaves: all its partitions move to b
    while b.step(0.0):
        pass
    assert set(b._task_keys) == set(range(PARTITIONS))
    assert _vectors(bus) == expected


def test_feature_replica_when_restarted_takes_each_partition_from_its_snapshot() -> None:
    events = _market(8_000)
    expected = _one_instance(events)

    bus, cache = _bus(events), MemoryCache()
    a = _runner(bus, cache, "a")
    for _ in range(30):
        a.step(0.0)
    a.close()
    stored = sorted(k for k in cache._data if k.startswith("snapshot:feature:p"))
    assert stored == [f"snapshot:feature:p{p}" for p in range(PARTITIONS)]
    again = _runner(bus, cache, "a")
    while again.step(0.0):
        pass
    assert _vectors(bus) == expected
