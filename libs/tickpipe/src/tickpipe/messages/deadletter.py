"""Dead letters: bad input with its reason and original bytes, never silently dropped."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from tickpipe.messages.base import Event


class DeadLetter(Event):
    event_type: ClassVar[str] = "dead_letter"
    type: Literal["dead_letter"] = "dead_letter"
    service: str
    source: str = Field(description="Source topic or input (file, exchange feed).")
    reason: str = Field(description="Machine-readable reason code, e.g. `invalid_price`.")
    detail: str = Field(default="", description="Human-readable explanation.")
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    payload_b64: str = Field(description="The original bytes, base64.")
