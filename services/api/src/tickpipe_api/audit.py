"""The audit trail of control commands: a structured log line per command and a bounded
in-memory list for GET /audit. The Kafka record itself is the durable audit record."""

from __future__ import annotations

import logging
import threading
from collections import deque

from pydantic import BaseModel

from tickpipe.messages import ControlCommand

log = logging.getLogger("tickpipe_api.audit")


class AuditEntry(BaseModel):
    command: ControlCommand
    outcome: str  # "published" or "failed"
    error: str | None = None


class AuditLog:
    def __init__(self, size: int = 200) -> None:
        self._entries: deque[AuditEntry] = deque(maxlen=size)
        self._lock = threading.Lock()

    def record(self, command: ControlCommand, outcome: str, error: str | None = None) -> None:
        entry = AuditEntry(command=command, outcome=outcome, error=error)
        with self._lock:
            self._entries.append(entry)
        log.info(
            "control command",
            extra={
                "audit": True,
                "event_id": command.event_id,
                "action": command.action.value,
                "target": command.target,
                "command_args": command.args,
                "issued_by": command.issued_by,
                "reason": command.reason,
                "outcome": outcome,
                "error": error,
            },
        )

    def recent(self) -> list[AuditEntry]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._entries))
