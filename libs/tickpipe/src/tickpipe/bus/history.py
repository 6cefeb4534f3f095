"""Reading a topic's committed history to its end: how a service rebuilds state that
matters from Kafka, the source of truth, when no snapshot holds it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

from tickpipe.bus.base import Bus, BusError, Record
from tickpipe.messages import DecodeError, Event, decode_record


def read_history(
    bus: Bus,
    topics: Sequence[str],
    client_id: str,
    stop: threading.Event | None = None,
    timeout_s: float = 120.0,
    batch: int = 2000,
) -> Iterator[Record]:
    """Every committed record of `topics` from the beginning, partition order kept, until
    each partition has been read to its end. Raises BusError on a timeout or a stop: a
    partial history must not pass for the whole."""
    reader = bus.reader(topics, from_ms=0, client_id=client_id)
    deadline = time.monotonic() + timeout_s
    try:
        while not reader.at_end():
            yield from reader.poll(batch, 0.2)
            if stop is not None and stop.is_set():
                raise BusError(f"stopped while reading {', '.join(topics)}")
            if time.monotonic() > deadline:
                raise BusError(f"reading {', '.join(topics)} did not finish in {timeout_s}s")
    finally:
        reader.close()


def decoded(record: Record) -> Event | None:
    """A history record as an event, read exactly as a consumer reads it (only the types its
    topic carries); one that cannot be read was dead-lettered when it was first consumed,
    and changes no state now."""
    try:
        return decode_record(record.value, record.header("event-type"), record.topic)
    except DecodeError:
        return None


def events_by_topic(
    bus: Bus,
    topics: Sequence[str],
    client_id: str,
    stop: threading.Event | None = None,
) -> dict[str, list[Event]]:
    """`read_history` decoded: each topic's events in partition order."""
    out: dict[str, list[Event]] = {t: [] for t in topics}
    for record in read_history(bus, topics, client_id, stop):
        event = decoded(record)
        if event is not None:
            out[record.topic].append(event)
    return out
