"""Dead letters: bad input with its reason and original bytes, never silently dropped.

A dead letter always fits on `dlq.v1`, whatever it carries: an original value above
`PAYLOAD_LIMIT` keeps its head, with its total size and sha256; a key above `KEY_LIMIT` keeps
its head and size; a key that is not UTF-8 text is kept exactly, in base64; the detail is
cut at `DETAIL_LIMIT` characters. Build them with `DeadLetter.of` to get those bounds.
"""

from __future__ import annotations

import base64
import hashlib
from typing import ClassVar, Literal

from pydantic import Field

from tickpipe.messages.base import Event

# ~1 MiB is Kafka's default record limit (`max.message.bytes`); base64 grows bytes by 4/3.
PAYLOAD_LIMIT = 64 * 1024
KEY_LIMIT = 1024
DETAIL_LIMIT = 4096


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
    payload_b64: str = Field(
        description="The original bytes, base64 (only their head when `payload_size` is set)."
    )
    payload_size: int | None = Field(
        default=None,
        ge=0,
        description="Size of the original value in bytes, set when it was larger than the "
        "bound and `payload_b64` holds only its head.",
    )
    payload_sha256: str | None = Field(
        default=None,
        description="sha256 (hex) of the whole original value, set with `payload_size`.",
    )
    key_b64: str | None = Field(
        default=None,
        description="The original key's bytes, base64, set when they are not UTF-8 text or "
        "were cut (`key_size`); `key` then holds a readable rendering.",
    )
    key_size: int | None = Field(
        default=None,
        ge=0,
        description="Size of the original key in bytes, set when it was larger than the bound "
        "and `key`/`key_b64` hold only its head.",
    )

    @classmethod
    def of(
        cls,
        *,
        event_id: str,
        ts_ns: int,
        service: str,
        source: str,
        reason: str,
        value: bytes,
        detail: str = "",
        key: bytes | str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        causation_id: str | None = None,
    ) -> DeadLetter:
        """A dead letter for the original `value` (and `key`), within the bounds above."""
        payload = value if len(value) <= PAYLOAD_LIMIT else value[:PAYLOAD_LIMIT]
        cut = payload is not value
        key_text, key_b64, key_size = _key(key)
        return cls(
            event_id=event_id,
            ts_event=ts_ns,
            ts_init=ts_ns,
            causation_id=causation_id,
            service=service,
            source=source,
            reason=reason,
            detail=bounded_text(detail, DETAIL_LIMIT),
            partition=partition,
            offset=offset,
            key=key_text,
            payload_b64=base64.b64encode(payload).decode(),
            payload_size=len(value) if cut else None,
            payload_sha256=hashlib.sha256(value).hexdigest() if cut else None,
            key_b64=key_b64,
            key_size=key_size,
        )


def bounded_text(text: str, limit: int) -> str:
    """`text` cut to `limit` characters (saying so) and safe to encode as UTF-8."""
    if len(text) > limit:
        text = f"{text[:limit]}… ({len(text)} characters)"
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode()  # lone surrogates become '?'


def _key(key: bytes | str | None) -> tuple[str | None, str | None, int | None]:
    """(key, key_b64, key_size): text when it is UTF-8 within the bound, else its bytes."""
    if key is None:
        return None, None, None
    raw = key.encode("utf-8", "surrogatepass") if isinstance(key, str) else key
    head = raw[:KEY_LIMIT]
    size = len(raw) if len(raw) > KEY_LIMIT else None
    if size is None:
        try:
            return head.decode(), None, None
        except UnicodeDecodeError:
            pass
    return head.decode("utf-8", "replace"), base64.b64encode(head).decode(), size
