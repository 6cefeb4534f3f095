"""The SSE example (examples/signals_sse.py) against the real API app under uvicorn: signals
pushed into the app's live feed reach the client in order, and it resumes with
`Last-Event-ID` after its token expires or the API restarts."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.api.browser import serving
from tests.api.conftest import Api, token
from tests.api.factories import signal
from tickpipe_api.auth import Role

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "signals_sse.py"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("signals_sse", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


sse = _example()


def _wait(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


@pytest.fixture
def follow() -> Iterator[Callable[[Any], list[dict[str, Any]]]]:
    """Runs a SignalStream in a thread, collecting what it yields; stops it at the end."""
    streams: list[tuple[Any, threading.Thread]] = []

    def start(stream: Any) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []

        def collect() -> None:
            for s in stream:
                got.append(s)  # one by one, so the test sees progress

        thread = threading.Thread(target=collect, daemon=True)
        thread.start()
        streams.append((stream, thread))
        return got

    yield start
    for stream, thread in streams:
        stream.stop.set()
        thread.join(timeout=10)  # the server's shutdown closes the stream


def test_sse_example_when_token_expires_reconnects_from_last_event_id_without_gap(
    api: Api, tmp_path: Path, follow: Any
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(token("team", Role.VIEWER, ttl_s=2))
    with serving(api.app) as url:
        stream = sse.SignalStream(
            url,
            lambda: token_file.read_text().strip(),
            symbol="binance:BTC/USDT",
            last_event_id=str(api.feed.version),  # from here on: nothing pushed is lost
            retry_s=0.5,
        )
        got = follow(stream)
        first = [signal(probability=p) for p in (0.6, 0.2)]
        for s in (first[0], signal(symbol="ETH/USDT"), first[1]):
            api.feed.on_event(s)
        _wait(lambda: len(got) == 2)
        token_file.write_text(token("team", Role.VIEWER, ttl_s=600))  # refreshed in place
        _wait(lambda: not stream.connected)  # the first token expired: the API ended it
        missed = signal(probability=0.8)  # published while the client is away
        api.feed.on_event(missed)
        _wait(lambda: len(got) == 3)
        assert stream.connects == 2
        assert [g["event_id"] for g in got] == [s.event_id for s in [*first, missed]]
        assert {g["symbol"] for g in got} == {"BTC/USDT"}


def test_sse_example_when_resuming_after_api_restart_gets_what_new_process_has(
    api: Api, follow: Any
) -> None:
    # An id from before a restart is above the new process's sequence: it must not wait
    # until the new sequence catches up (silently dropping everything until then).
    with serving(api.app) as url:
        stream = sse.SignalStream(
            url, lambda: token("team", Role.VIEWER), last_event_id="1000", retry_s=0.2
        )
        got = follow(stream)
        _wait(lambda: stream.connected)
        s = signal()
        api.feed.on_event(s)
        _wait(lambda: len(got) == 1, timeout_s=5)
        assert got[0]["event_id"] == s.event_id
        assert int(stream.last_event_id) == api.feed.version


def test_sse_example_when_token_rejected_raises_without_retrying(api: Api) -> None:
    with serving(api.app) as url:
        stream = sse.SignalStream(url, lambda: "not-a-token", retry_s=0.1)
        with pytest.raises(httpx.HTTPStatusError) as caught:
            next(iter(stream))
    assert caught.value.response.status_code == 401
    assert stream.connects == 0


def test_sse_parse_when_multiline_data_comments_and_retry_yields_events_and_delay() -> None:
    lines = [": keepalive", "", "retry: 2500", "id: 7", "event: signal", "data: {", "data: }", ""]
    assert list(sse.parse(iter(lines))) == [2500, sse.Event("signal", "{\n}", "7")]


def test_readyz_when_feed_consumer_not_assigned_answers_503_so_no_stream_is_routed_here(
    api: Api,
) -> None:
    assigned = threading.Event()
    api.ports.feed_ready = assigned.is_set
    with serving(api.app) as url:
        assert httpx.get(f"{url}/readyz").status_code == 503
        assert httpx.get(f"{url}/healthz").status_code == 200  # alive all the same
        assigned.set()
        assert httpx.get(f"{url}/readyz").json() == {"ready": True}
