"""Follow tickpipe's signals without Kafka: the API's authenticated server-sent event stream
(`GET /signals/stream`), with httpx. Needs only `httpx`.

    export TICKPIPE_TOKEN="$(tickpipe api token --sub my-team --role viewer)"
    python examples/signals_sse.py --url http://127.0.0.1:8080 --symbol binance:BTC/USDT

The bearer token comes from `TICKPIPE_TOKEN` or from the file named by `--token-file`
(`TICKPIPE_TOKEN_FILE`), which is read again on every reconnect, so a token refreshed in
place is picked up. A stream ends when its token expires, when the API restarts, or when the
connection drops; the client then reconnects with `Last-Event-ID`, and the API resends what
it still buffers after that id (the last 500 events). Against the same API process nothing
is lost or repeated; after a restart the new process sends all it has buffered. Ids are per
process: behind several replicas without sticky sessions a switch can repeat signals (they
are deduplicated here on `event_id`) or miss some. When every signal matters, read Kafka.
Order holds per `exchange:symbol`, as on Kafka.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# The API sends a keepalive comment every 15 s: a silent connection is a dead one.
TIMEOUT = httpx.Timeout(10.0, read=45.0)


@dataclass
class Event:
    """One server-sent event (https://html.spec.whatwg.org/multipage/server-sent-events.html)."""

    name: str = "message"
    data: str = ""
    id: str | None = None


def parse(lines: Iterator[str]) -> Iterator[Event | int]:
    """SSE events from a stream's lines; an `int` is a `retry:` delay in milliseconds."""
    name, event_id = "message", None
    data: list[str] = []
    for line in lines:
        if not line:  # a blank line dispatches the event
            if data:
                yield Event(name, "\n".join(data), event_id)
            name, data, event_id = "message", [], None
            continue
        if line.startswith(":"):
            continue  # a comment: the API's keepalive
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "event":
            name = value
        elif key == "data":
            data.append(value)
        elif key == "id":
            event_id = value
        elif key == "retry" and value.isdigit():
            yield int(value)


@dataclass
class SignalStream:
    """Yields signals (dicts, as in schemas/signal.v1.json) and reconnects until `stop`.
    Beside each nanosecond time (`ts_event`, `ts_init`, `feature_ts`) the stream adds
    `<name>_ms` (epoch milliseconds) and `<name>_iso` (ISO-8601 UTC), which JavaScript and
    other double-only JSON parsers hold exactly."""

    url: str
    token: Callable[[], str]
    symbol: str | None = None
    last_event_id: str | None = None
    retry_s: float = 1.0
    stop: threading.Event = field(default_factory=threading.Event)
    connected: bool = False
    connects: int = 0
    _seen: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        with httpx.Client(base_url=self.url, timeout=TIMEOUT) as client:
            while not self.stop.is_set():
                try:
                    yield from self._connection(client)
                except httpx.TransportError as exc:  # dropped or refused: try again
                    print(f"stream dropped ({type(exc).__name__}), reconnecting", file=sys.stderr)
                self.connected = False
                self.stop.wait(self.retry_s)

    def _connection(self, client: httpx.Client) -> Iterator[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.token()}", "Accept": "text/event-stream"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        params = {"symbol": self.symbol} if self.symbol else {}
        with client.stream("GET", "/signals/stream", headers=headers, params=params) as r:
            if r.status_code == 429:  # rate-limited: wait as told, then reconnect
                self.stop.wait(float(r.headers.get("Retry-After", self.retry_s)))
                return
            if r.is_error:  # 401/403: a bad token does not get better by retrying
                r.read()
                r.raise_for_status()
            self.connected, self.connects = True, self.connects + 1
            for item in parse(r.iter_lines()):
                if isinstance(item, int):
                    self.retry_s = item / 1000
                    continue
                if item.id is not None:
                    self.last_event_id = item.id
                if item.name != "signal":
                    continue
                signal = json.loads(item.data)
                if self._first_time(signal["event_id"]):
                    yield signal
                if self.stop.is_set():
                    return

    def _first_time(self, event_id: str, keep: int = 10_000) -> bool:
        if event_id in self._seen:
            return False
        self._seen[event_id] = None
        if len(self._seen) > keep:
            self._seen.popitem(last=False)
        return True


def token_source(token_file: str | None) -> Callable[[], str]:
    if token_file:
        path = Path(token_file)
        return lambda: path.read_text().strip()
    token = os.environ.get("TICKPIPE_TOKEN")
    if not token:
        raise SystemExit("set TICKPIPE_TOKEN or pass --token-file")
    return lambda: token


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the API's base URL")
    parser.add_argument("--symbol", help="exchange:symbol, e.g. binance:BTC/USDT (default: all)")
    parser.add_argument("--token-file", default=os.environ.get("TICKPIPE_TOKEN_FILE"))
    parser.add_argument("--last-event-id", help="resume after this event id")
    args = parser.parse_args()
    stream = SignalStream(args.url, token_source(args.token_file), args.symbol, args.last_event_id)
    try:
        for s in stream:
            key = f"{s['exchange']}:{s['symbol']}"
            at, p = s["ts_event_iso"], s["probability"]
            print(f"{at} {key} direction={s['direction']} p={p:.4f}", flush=True)
    except KeyboardInterrupt:
        stream.stop.set()
    except httpx.HTTPStatusError as exc:
        print(f"{exc.response.status_code}: {exc.response.text}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
