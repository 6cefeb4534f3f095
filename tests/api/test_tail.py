"""`tickpipe signals tail` over the in-memory bus: backfill from a time, then follow live,
through the bus's group-less reader."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Sequence

import pytest

from tests.api.factories import signal
from tickpipe.bus.base import BusError
from tickpipe.bus.memory import MemoryBus, MemoryReader
from tickpipe.clock import SimClock
from tickpipe.messages import Signal
from tickpipe.runner import encode_emit
from tickpipe.service import Emit
from tickpipe.topics import SIGNALS
from tickpipe_api.tail import signals, tail

MS = 1_000_000


def _publish(bus: MemoryBus, clock: SimClock, at_ms: int, *sent: Signal) -> None:
    clock.advance_to(at_ms * MS)
    producer = bus.producer("test")
    for s in sent:
        producer.send(encode_emit(Emit(SIGNALS, s), ()))


def test_tail_when_from_time_given_backfills_after_it_then_follows_live() -> None:
    clock = SimClock()
    bus = MemoryBus(clock=clock)
    _publish(bus, clock, 1_000, signal(probability=0.3), signal(probability=0.35))
    after = [signal(probability=0.7), signal(symbol="ETH/USDT", probability=0.9)]
    _publish(bus, clock, 2_000, *after)
    stop = threading.Event()
    source = signals(bus, 1_500, stop, symbol="binance:BTC/USDT")

    first = next(source)
    live = signal(probability=0.1)
    _publish(bus, clock, 3_000, live)
    second = next(source)
    stop.set()

    assert [first.event_id, second.event_id] == [after[0].event_id, live.event_id]
    assert list(source) == []  # stopped: the generator ends and closes its reader


class ObservedBus(MemoryBus):
    """Says when a reader has been made: from then on, "the end" is fixed."""

    def __init__(self, clock: SimClock) -> None:
        super().__init__(clock=clock)
        self.reading = threading.Event()

    def reader(self, topics: Sequence[str], *, from_ms: int | None, client_id: str) -> MemoryReader:
        reader = super().reader(topics, from_ms=from_ms, client_id=client_id)
        self.reading.set()
        return reader


def test_tail_when_no_time_given_prints_only_what_comes_after_it_starts() -> None:
    clock = SimClock()
    bus = ObservedBus(clock)
    _publish(bus, clock, 1_000, signal())
    stop = threading.Event()
    out = io.StringIO()
    printed: list[int] = []
    worker = threading.Thread(
        target=lambda: printed.append(tail(signals(bus, None, stop), True, out))
    )
    worker.start()
    assert bus.reading.wait(10)

    live = [signal(probability=0.2), signal(symbol="ETH/USDT", probability=0.8)]
    _publish(bus, clock, 2_000, *live)
    deadline = time.monotonic() + 10
    while out.getvalue().count("\n") < len(live) and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    worker.join(10)

    assert printed == [2]
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["event_id"] for line in lines] == [s.event_id for s in live]


def test_tail_when_bus_refuses_to_start_raises_bus_error() -> None:
    class RefusingBus(MemoryBus):
        def reader(
            self, topics: Sequence[str], *, from_ms: int | None, client_id: str
        ) -> MemoryReader:
            raise BusError("offsets_for_times failed")

    with pytest.raises(BusError, match="offsets_for_times"):
        next(signals(RefusingBus(), 0, threading.Event()))
