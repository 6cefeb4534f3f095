"""Snapshot + replay: a stateful handler restarted from an older snapshot rebuilds its state
from the records since, republishes nothing, and ends with an uninterrupted run's output."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from opentelemetry.trace import NoOpTracer

from tests.unit import factories as f
from tickpipe.bus.memory import MemoryBus
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import Event, QuoteTick, TradeTick
from tickpipe.runner import EVENT_TYPE, StreamRunner, encode_emit
from tickpipe.service import Emit
from tickpipe.state import SnapshotStore
from tickpipe.topics import QUOTES, TRADES

OUT = "features.v1"


class RunningVolume:
    """Emits the running traded volume with every trade: any lost or doubled input shows."""

    def __init__(self) -> None:
        self.volume = 0.0
        self.last_bid = 0.0

    def handle(self, event: Event, topic: str, now_ns: int) -> Sequence[Emit]:
        if isinstance(event, QuoteTick):
            self.last_bid = event.bid
            return ()
        assert isinstance(event, TradeTick)
        self.volume += event.size
        out = f.quote(bid=self.last_bid or 1.0, ask=self.volume + 10_000, event_id=event.event_id)
        return (Emit(OUT, out),)

    def snapshot(self) -> bytes:
        return orjson.dumps([self.volume, self.last_bid])

    def restore(self, data: bytes) -> None:
        self.volume, self.last_bid = orjson.loads(data)


def _fill(bus: MemoryBus, n: int) -> None:
    producer = bus.producer("test")
    for i in range(n):
        event: Event = (
            f.trade(trade_id=str(i), size=1.0 + i, event_id=f"T{i:04d}")
            if i % 3
            else f.quote(bid=100.0 + i, event_id=f"Q{i:04d}")
        )
        producer.send(encode_emit(Emit(TRADES if i % 3 else QUOTES, event), ()))


def _runner(
    bus: MemoryBus, store: SnapshotStore, handler: RunningVolume, interval_s: float
) -> StreamRunner:
    link = bus.link(group="g", topics=[TRADES, QUOTES], client_id="c")
    clock = SimClock()
    return StreamRunner(
        service="t",
        group="g",
        handler=handler,
        link=link,
        clock=clock,
        ids=EventIds(clock, seed=1),
        tracer=NoOpTracer(),
        batch_size=10,
        snapshots=store,
        snapshot_interval_s=interval_s,
    )


def _drain(runner: StreamRunner) -> None:
    while runner.step(0.0):
        pass


def _outputs(bus: MemoryBus) -> list[bytes]:
    return [r.value for r in bus.records(OUT) if r.header(EVENT_TYPE) == b"quote"]


def test_runner_when_restarted_from_an_older_snapshot_then_output_equals_uninterrupted_run() -> (
    None
):
    reference = MemoryBus()
    _fill(reference, 90)
    _drain(_runner(reference, SnapshotStore(MemoryCache(), "s"), RunningVolume(), 0.0))

    bus, store = MemoryBus(), SnapshotStore(MemoryCache(), "s")
    _fill(bus, 90)
    first = _runner(bus, store, RunningVolume(), interval_s=0.0)
    first.step(0.0)  # batch 1: committed and snapshotted
    first._snapshot_interval = 1e9  # later commits get no snapshot: a restart must replay
    first.step(0.0)
    first.step(0.0)
    snapshot = store.load()
    assert snapshot is not None and sum(snapshot.offsets.values()) == 10
    first.close()  # "crash": the handler's memory is gone, the committed offsets stay

    second = _runner(bus, store, RunningVolume(), interval_s=0.0)
    _drain(second)

    assert _outputs(bus) == _outputs(reference)
    assert len(_outputs(bus)) == 60  # every trade once, nothing republished by the replay
