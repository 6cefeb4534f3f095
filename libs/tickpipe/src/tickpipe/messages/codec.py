"""JSON encoding and type-directed decoding of events."""

from __future__ import annotations

from pydantic import ValidationError

from tickpipe.messages.base import Event
from tickpipe.messages.control import ControlCommand
from tickpipe.messages.deadletter import DeadLetter
from tickpipe.messages.executions import ExecutionReport
from tickpipe.messages.features import FeatureVector
from tickpipe.messages.market import QuoteTick, TradeTick
from tickpipe.messages.orders import OrderRequest
from tickpipe.messages.quality import DataQuality
from tickpipe.messages.risk import RiskDecision
from tickpipe.messages.signals import Signal

EVENT_TYPES: dict[str, type[Event]] = {
    cls.event_type: cls
    for cls in (
        TradeTick,
        QuoteTick,
        FeatureVector,
        Signal,
        OrderRequest,
        ExecutionReport,
        RiskDecision,
        ControlCommand,
        DeadLetter,
        DataQuality,
    )
}


class DecodeError(ValueError):
    """Bytes that are not a valid event of the expected type; `reason` is a DLQ reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def encode(event: Event) -> bytes:
    return event.__pydantic_serializer__.to_json(event)


def decode(data: bytes, event_type: str | None) -> Event:
    """Decode `data` as the class named by `event_type` (from the `event-type` header)."""
    if event_type is None:
        raise DecodeError("missing_event_type", "no event-type header")
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        raise DecodeError("unknown_event_type", f"unknown event type {event_type!r}")
    try:
        return cls.model_validate_json(data)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise DecodeError("invalid_payload", errors) from exc
