"""A cache that goes away: writes kept and written back in order, reads say "unknown",
risk refuses new orders (`state_unavailable`) until the store answers again."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from tests.unit import factories as f
from tickpipe.cache.base import CacheUnavailable
from tickpipe.cache.memory import MemoryCache
from tickpipe.cache.resilient import ResilientCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import RiskDecision
from tickpipe.state import SnapshotStore
from tickpipe.topics import EXECUTIONS, ORDERS, RISK_DECISIONS, SIGNALS
from tickpipe_risk.domain.limits import Limits
from tickpipe_risk.domain.sizing import SizingConfig
from tickpipe_risk.handlers import RiskHandler


class Flaky(MemoryCache):
    """A store that can be switched off, recording the writes it took in order."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.writes: list[str] = []

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("connection refused")

    def ping(self) -> bool:
        self._check()
        return True

    def get(self, key: str) -> bytes | None:
        self._check()
        return super().get(key)

    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        self._check()
        self.writes.append(key)
        super().set(key, value, ttl_s)

    def set_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None:
        self._check()
        self.writes += list(items)
        super().set_many(items, ttl_s)

    def delete(self, key: str) -> None:
        self._check()
        self.writes.append(f"-{key}")
        super().delete(key)


def _cache() -> tuple[Flaky, ResilientCache]:
    store = Flaky()
    return store, ResilientCache(store, probe=store.ping, probe_interval_s=0.0)


def test_resilient_cache_when_store_away_keeps_writes_and_writes_them_back_in_order() -> None:
    store, cache = _cache()
    cache.set("a", b"1")
    store.down = True

    cache.set("b", b"2")
    cache.set_many({"c": b"3", "a": b"4"})
    cache.delete("b")

    assert not cache.available()
    assert cache.get("a") == b"4"  # its own writes read back
    with pytest.raises(CacheUnavailable):
        cache.get("elsewhere")  # unknown, not absent
    store.down = False
    assert cache.available()
    assert store.writes == ["a", "c", "a", "-b"]
    assert (store.get("a"), store.get("b"), store.get("c")) == (b"4", None, b"3")


def test_resilient_cache_when_probing_waits_its_interval() -> None:
    store = Flaky()
    cache = ResilientCache(store, probe=store.ping, probe_interval_s=3600)
    store.down = True
    cache.set("a", b"1")
    store.down = False

    assert not cache.available()  # not probed again before the interval


def test_snapshot_store_when_cache_unreachable_has_no_snapshot() -> None:
    store, cache = _cache()
    store.down = True
    assert SnapshotStore(cache, "snapshot:x").load() is None


def test_risk_when_cache_away_refuses_signals_with_state_unavailable_then_trades_again() -> None:
    store, cache = _cache()
    clock = SimClock(f.T0)
    handler = RiskHandler(EventIds(clock, seed=1), cache, "paper", SizingConfig(), Limits(), {})
    store.down = True

    refused = handler.handle(f.signal(event_id="01S1"), SIGNALS, f.T0)
    handler.handle(f.execution(), EXECUTIONS, f.T0)  # a fill while away: booked, kept
    store.down = False
    approved = handler.handle(f.signal(event_id="01S2"), SIGNALS, f.T0)

    (decision,) = refused
    assert decision.topic == RISK_DECISIONS
    assert isinstance(decision.event, RiskDecision)
    assert decision.event.reasons == ["state_unavailable"]
    assert decision.event.client_order_id is None
    assert [e.topic for e in approved] == [RISK_DECISIONS, ORDERS]
    assert handler.positions[f.KEY].qty == f.execution().last_qty
    assert store.get(f"positions:paper:{f.KEY}") is not None  # written back
