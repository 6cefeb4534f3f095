"""`tickpipe signals tail`: backfill `signals.v1` from a point in time, then follow it live.

It reads through a group-less bus reader (no group, no commits): a subscriber that reads
history must not move anyone's offsets. Order holds per `exchange:symbol` (one partition per
key); across symbols records interleave as they come.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TextIO

import orjson

from tickpipe.bus.base import Bus
from tickpipe.messages import Signal
from tickpipe.topics import SIGNALS

CLIENT_ID = "tickpipe-signals-tail"


def parse_time(text: str) -> int:
    """ISO-8601 (naive means UTC) or epoch milliseconds -> epoch milliseconds."""
    if text.isdigit():
        return int(text)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def signals(
    bus: Bus,
    from_ms: int | None,
    stop: threading.Event,
    symbol: str | None = None,
) -> Iterator[Signal]:
    """Signals from `from_ms` (or from now), in per-symbol order, until `stop` is set.

    Raises BusError when the topic is missing or where to start cannot be found.
    """
    reader = bus.reader([SIGNALS], from_ms=from_ms, client_id=CLIENT_ID)
    try:
        while not stop.is_set():
            for record in reader.poll(500, 0.2):
                signal = Signal.model_validate_json(record.value)
                if symbol is None or signal.key == symbol:
                    yield signal
    finally:
        reader.close()


def render(signal: Signal, as_json: bool) -> str:
    if as_json:
        return orjson.dumps(signal.model_dump(mode="json")).decode()
    when = datetime.fromtimestamp(signal.ts_event / 1e9, tz=UTC).isoformat()
    arrow = {1: "long ", 0: "flat ", -1: "short"}[signal.direction]
    return (
        f"{when}  {signal.key:<22} {arrow} p={signal.probability:.4f} "
        f"price={signal.price:g} {signal.strategy_id}/{signal.model_version}"
    )


def tail(source: Iterator[Signal], as_json: bool, out: TextIO = sys.stdout) -> int:
    n = 0
    for signal in source:
        out.write(render(signal, as_json) + "\n")
        out.flush()
        n += 1
    return n
