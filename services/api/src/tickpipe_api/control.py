"""Publishing operator commands on `control.v1`, keyed by the command's target."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from tickpipe.bus.base import Producer
from tickpipe.messages import ControlCommand
from tickpipe.runner import encode_emit
from tickpipe.service import Emit
from tickpipe.topics import CONTROL


class ControlPublisher(Protocol):
    def publish(self, command: ControlCommand) -> None:
        """Return only once the command is durably on `control.v1`; raise otherwise."""


class BusControlPublisher:
    """Over any `Bus` producer; waits for the broker's ack so the API never reports a
    command as sent that Kafka does not hold."""

    def __init__(self, producer: Producer, timeout_s: float = 10.0) -> None:
        self._producer = producer
        self._timeout = timeout_s
        self._lock = threading.Lock()

    def publish(self, command: ControlCommand) -> None:
        record = encode_emit(Emit(CONTROL, command, key=command.compaction_key), ())
        with self._lock:  # flush per command: one operator's click must not wait on another's
            self._producer.send(record)
            self._producer.flush(self._timeout)

    def close(self) -> None:
        self._producer.close()


class MemoryControlPublisher:
    """The in-memory twin: keeps what was published and calls subscribers (e.g. a handler)."""

    def __init__(self) -> None:
        self.published: list[ControlCommand] = []
        self._subscribers: list[Callable[[ControlCommand], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, callback: Callable[[ControlCommand], None]) -> None:
        self._subscribers.append(callback)

    def publish(self, command: ControlCommand) -> None:
        with self._lock:
            self.published.append(command)
            for callback in self._subscribers:
                callback(command)
