"""JSON encoding and type-directed decoding of events."""

from __future__ import annotations

from pydantic import ValidationError

from tickpipe import topics
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


# What each topic carries. A record of another type on one of these topics is a producer's
# mistake: the runner dead-letters it (`unexpected_event_type`) before any handler sees it.
# Topics not listed here (tests, tools) may carry any event type.
TOPIC_EVENT_TYPES: dict[str, tuple[type[Event], ...]] = {
    topics.TRADES: (TradeTick,),
    topics.QUOTES: (QuoteTick,),
    topics.QUALITY: (DataQuality,),
    topics.FEATURES: (FeatureVector,),
    topics.SIGNALS: (Signal,),
    topics.ORDERS: (OrderRequest,),
    topics.EXECUTIONS: (ExecutionReport,),
    topics.RISK_DECISIONS: (RiskDecision,),
    topics.CONTROL: (ControlCommand,),
    topics.DLQ: (DeadLetter,),
}

# `event-type` header bytes -> class, per topic (and for any other topic): one lookup each.
_ANY_TOPIC: dict[bytes, type[Event]] = {t.encode(): cls for t, cls in EVENT_TYPES.items()}
_BY_TOPIC: dict[str, dict[bytes, type[Event]]] = {
    topic: {cls.event_type.encode(): cls for cls in classes}
    for topic, classes in TOPIC_EVENT_TYPES.items()
}

# How much of an unreadable header a reason's detail quotes.
_QUOTED = 64


class DecodeError(ValueError):
    """Bytes that are not a valid event of the expected type; `reason` is a DLQ reason code.

    Reasons: `empty_value` (a null value, a tombstone, or no bytes at all),
    `missing_event_type` (no `event-type` header), `invalid_event_type` (a header that is
    not UTF-8 text), `unknown_event_type` (no such event type), `unexpected_event_type` (a
    known type that the topic does not carry), `invalid_payload` (not JSON, or JSON that does
    not validate against the type's model).
    """

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
        raise DecodeError("unknown_event_type", f"unknown event type {event_type[:_QUOTED]!r}")
    return _validate(cls, data)


def decode_record(data: bytes, event_type: bytes | None, topic: str) -> Event:
    """Decode a consumed record's value, given its raw `event-type` header, as a type that
    `topic` carries (see `TOPIC_EVENT_TYPES`). Any bytes either decode or raise DecodeError."""
    cls = _BY_TOPIC.get(topic, _ANY_TOPIC).get(event_type or b"")
    if cls is None:
        raise _unreadable(data, event_type, topic)
    try:
        return cls.model_validate_json(data)
    except Exception as exc:
        if not data:
            raise _unreadable(data, event_type, topic) from None
        raise _invalid(exc) from exc


def _validate(cls: type[Event], data: bytes) -> Event:
    try:
        return cls.model_validate_json(data)
    except Exception as exc:
        raise _invalid(exc) from exc


def _invalid(exc: Exception) -> DecodeError:
    if isinstance(exc, ValidationError):
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        return DecodeError("invalid_payload", errors)
    # A validator failing some other way: still just bad input.
    return DecodeError("invalid_payload", f"{type(exc).__name__}: {exc}")


def _unreadable(data: bytes, event_type: bytes | None, topic: str) -> DecodeError:
    """Why a record has no class to decode it with (the cold path: spend time on words)."""
    if not data:
        return DecodeError("empty_value", "no value: a tombstone (null) or an empty record")
    if event_type is None:
        return DecodeError("missing_event_type", "no event-type header")
    try:
        name = event_type.decode()
    except UnicodeDecodeError:
        return DecodeError(
            "invalid_event_type", f"event-type header is not UTF-8: {event_type[:_QUOTED]!r}"
        )
    cls = EVENT_TYPES.get(name)
    if cls is None:
        return DecodeError("unknown_event_type", f"unknown event type {name[:_QUOTED]!r}")
    carried = ", ".join(c.event_type for c in TOPIC_EVENT_TYPES.get(topic, ()))
    return DecodeError("unexpected_event_type", f"{topic} carries {carried}, not {cls.event_type}")
