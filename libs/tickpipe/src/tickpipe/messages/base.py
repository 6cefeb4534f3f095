"""The envelope every tickpipe event carries."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

# Nanoseconds since the epoch; validated as non-negative 64-bit integers.
NanoTs = int


class Event(BaseModel):
    """Base of all events: frozen, strict about unknown fields, self-describing.

    `event_type` and `schema_version` are class-level facts; they travel in the Kafka headers
    (`event-type`, `schema-version`) and in the JSON payload's `type` field so a decoder can
    pick the class without the headers (e.g. from a file).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1

    event_id: str = Field(description="Unique, time-sortable id (ULID).")
    ts_event: NanoTs = Field(ge=0, description="Exchange (or source) time, ns since epoch UTC.")
    ts_init: NanoTs = Field(ge=0, description="When tickpipe created this event, ns UTC.")
    causation_id: str | None = Field(
        default=None, description="event_id of the input this event was derived from."
    )
