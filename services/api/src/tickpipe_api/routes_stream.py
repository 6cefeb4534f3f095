"""Server-sent event streams: the dashboard's frames and the public signal feed.

A stream ends when its token expires (the client reconnects with a fresh one) and after
`max_events` when given, which also lets plain HTTP clients and tests read a finite stream.

A `signal` event's data is the JSON on Kafka plus, beside each nanosecond time, the same time
for JavaScript clients (a JSON number above 2**53 does not survive `JSON.parse` exactly):
`<name>_ms`, whole milliseconds since the epoch, and `<name>_iso`, ISO-8601 UTC in
`Date.prototype.toISOString`'s form (`2024-08-08T00:00:00.123Z`). The Kafka payloads do not
carry these; the schema's open content model lets them validate all the same.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from anyio import to_thread
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from tickpipe.messages import Signal
from tickpipe_api import views
from tickpipe_api.auth import Principal, Role
from tickpipe_api.ports import ApiPorts
from tickpipe_api.routes_read import AUTH_ERRORS, SYMBOL_PATTERN
from tickpipe_api.security import require_stream

Viewer = Annotated[Principal, Depends(require_stream(Role.VIEWER))]
MaxEvents = Annotated[int | None, Query(ge=1, le=100_000)]
KEEPALIVE_S = 15.0

router = APIRouter(tags=["streams"], responses=AUTH_ERRORS)
_SSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}
}


# A signal's nanosecond times, each sent beside as `_ms` and `_iso` on the SSE stream.
SIGNAL_NS_TIMES = ("ts_event", "ts_init", "feature_ts")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ns_to_ms(ns: int) -> int:
    """Whole milliseconds, rounded down: below 2**53, so exact in a JavaScript number."""
    return ns // 1_000_000


def ns_to_iso(ns: int) -> str:
    """ISO-8601 UTC to the millisecond, as JavaScript's `toISOString` writes it."""
    at = _EPOCH + timedelta(milliseconds=ns_to_ms(ns))
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def signal_data(signal: Signal) -> bytes:
    """A `signal` event's data: the Kafka JSON plus `<time>_ms` and `<time>_iso`."""
    body = signal.model_dump(mode="json")
    for name in SIGNAL_NS_TIMES:
        ns = body[name]
        body[f"{name}_ms"] = ns_to_ms(ns)
        body[f"{name}_iso"] = ns_to_iso(ns)
    return orjson.dumps(body)


def _event(name: str, data: bytes, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\n".encode() + b"data: " + data + b"\n\n"


def _sse(body: AsyncIterator[bytes]) -> StreamingResponse:
    # no-transform/X-Accel-Buffering: proxies must pass events on as they come.
    headers = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)


def _live(who: Principal) -> bool:
    return who.expires_at > time.time()


@router.get("/dashboard/stream", response_class=StreamingResponse, responses=_SSE)
async def dashboard_stream(
    request: Request, who: Viewer, max_events: MaxEvents = None
) -> StreamingResponse:
    """`state` events: a full dashboard frame whenever something changed."""
    ports: ApiPorts = request.app.state.ports

    async def frames() -> AsyncIterator[bytes]:
        last, sent, quiet = b"", 0, 0.0
        while _live(who) and not await request.is_disconnected():
            frame = await to_thread.run_sync(lambda: views.snapshot(ports).model_dump_json())
            data = frame.encode()
            if data != last:
                last, quiet = data, 0.0
                yield _event("state", data)
                sent += 1
                if max_events is not None and sent >= max_events:
                    return
            elif quiet >= KEEPALIVE_S:
                quiet = 0.0
                yield b": keepalive\n\n"
            await asyncio.sleep(ports.stream_interval_s)
            quiet += ports.stream_interval_s

    return _sse(frames())


@router.get("/signals/stream", response_class=StreamingResponse, responses=_SSE)
async def signals_stream(
    request: Request,
    who: Viewer,
    symbol: Annotated[str | None, Query(pattern=SYMBOL_PATTERN)] = None,
    max_events: MaxEvents = None,
    last_event_id: Annotated[int | None, Header(ge=0)] = None,
) -> StreamingResponse:
    """`signal` events as they arrive on `signals.v1`, in order, with their sequence as the
    SSE id: a client reconnecting with `Last-Event-ID` resumes without a gap while the
    API's buffer still holds what it missed. An id above this process's sequence (issued
    before a restart) resumes from the start of the buffer. Each event's data is the signal's
    JSON as on Kafka plus, for JavaScript clients, `ts_event_ms`/`ts_event_iso`,
    `ts_init_ms`/`ts_init_iso` and `feature_ts_ms`/`feature_ts_iso` (epoch milliseconds and
    ISO-8601 UTC beside the nanoseconds, which a JavaScript number cannot hold exactly)."""
    ports: ApiPorts = request.app.state.ports

    async def signals() -> AsyncIterator[bytes]:
        now = ports.feed.version
        seq = now if last_event_id is None else last_event_id
        if seq > now:
            # Numbered by an earlier process (the API restarted): all we buffer is new to it.
            seq = 0
        sent, quiet = 0, 0.0
        while _live(who) and not await request.is_disconnected():
            batch = ports.feed.signals_after(seq)
            for n, s in batch:
                seq = n
                if symbol is not None and s.key != symbol:
                    continue
                yield _event("signal", signal_data(s), n)
                sent += 1
                if max_events is not None and sent >= max_events:
                    return
            if batch:
                quiet = 0.0
            elif quiet >= KEEPALIVE_S:
                quiet = 0.0
                yield b": keepalive\n\n"
            await asyncio.sleep(min(ports.stream_interval_s, 0.1))
            quiet += min(ports.stream_interval_s, 0.1)

    return _sse(signals())
