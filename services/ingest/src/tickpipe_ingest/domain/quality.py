"""Data-quality events: what ingest noticed about a feed that is not a bad record.

A gap (trade ids or sequence numbers skipped) or a stale feed (silent for too long) does not
reject any input, so it is not a dead letter. Sources and the validator report these through
the `DataQuality` port; the adapter (`tickpipe_ingest.quality`) logs and counts them, and the
sources publish them on `md.quality.v1` as `degraded` then `healthy` `DataQuality` events,
which risk turns into a halt of the instrument.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal, Protocol

Stream = Literal["trades", "quotes"]


@dataclass(frozen=True, slots=True)
class Gap:
    """Ids `expected`..`received - 1` never arrived (`received` did, and is published)."""

    exchange: str
    symbol: str
    stream: Stream
    field: Literal["trade_id", "sequence"]
    expected: int
    received: int
    ts_event: int

    @property
    def missing(self) -> int:
        return self.received - self.expected


@dataclass(frozen=True, slots=True)
class Stale:
    """No data on a stream for `silent_ns`; the source reconnects it."""

    exchange: str
    symbol: str
    stream: Stream
    silent_ns: int
    detected_ns: int


DataQualityEvent = Gap | Stale


class DataQuality(Protocol):
    def report(self, event: DataQualityEvent) -> None: ...


class CollectingQuality:
    """An in-memory DataQuality (tests, backtests): keeps the last `limit` events."""

    def __init__(self, limit: int | None = None) -> None:
        self.events: deque[DataQualityEvent] = deque(maxlen=limit)

    def report(self, event: DataQualityEvent) -> None:
        self.events.append(event)
