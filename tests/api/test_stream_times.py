"""The SSE signal stream carries each nanosecond time also as epoch milliseconds and ISO-8601
(`<name>_ms`, `<name>_iso`), which JavaScript holds exactly; Kafka's payload is unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from tests.api.conftest import Api, bearer
from tests.api.factories import signal
from tests.api.testclient import TestClient
from tickpipe.messages import Signal
from tickpipe.runner import encode_emit
from tickpipe.service import Emit
from tickpipe.topics import SIGNALS
from tickpipe_api.auth import Role
from tickpipe_api.routes_stream import SIGNAL_NS_TIMES, ns_to_iso, ns_to_ms

VIEWER = bearer(Role.VIEWER)
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
ADDED = {f"{n}{suffix}" for n in SIGNAL_NS_TIMES for suffix in ("_ms", "_iso")}
# 2024-08-08T23:54:41.123456789Z: ns above 2**53, and sub-millisecond digits to drop.
TS_EVENT = 1_723_161_281_123_456_789


def _streamed(client: TestClient, n: int) -> list[dict[str, Any]]:
    r = client.get(
        "/signals/stream", params={"max_events": n}, headers={**VIEWER, "Last-Event-ID": "0"}
    )
    events = [e for e in r.text.split("\n\n") if e.startswith("id:")]
    return [orjson.loads(e.split("data: ", 1)[1]) for e in events]


def _kafka(s: Signal) -> dict[str, Any]:
    """The signal's value exactly as the pipeline writes it to Kafka."""
    return dict(json.loads(encode_emit(Emit(SIGNALS, s), ()).value))


def test_signals_stream_when_signal_sent_adds_ms_and_iso_beside_each_ns_time(
    api: Api, client: TestClient
) -> None:
    s = signal().model_copy(
        update={"ts_event": TS_EVENT, "feature_ts": 1_723_161_281_122_999_999, "ts_init": 0}
    )
    api.feed.on_event(s)
    [got] = _streamed(client, 1)
    assert got["ts_event"] == TS_EVENT  # the nanoseconds stay, exact for parsers that can
    assert got["ts_event_ms"] == 1_723_161_281_123
    assert got["ts_event_iso"] == "2024-08-08T23:54:41.123Z"
    assert got["feature_ts_ms"] == 1_723_161_281_122  # rounded down, never up
    assert got["feature_ts_iso"] == "2024-08-08T23:54:41.122Z"
    assert (got["ts_init_ms"], got["ts_init_iso"]) == (0, "1970-01-01T00:00:00.000Z")
    # Everything else is the Kafka JSON, unchanged; Kafka carries none of the additions.
    kafka = _kafka(s)
    assert {k: v for k, v in got.items() if k not in ADDED} == kafka
    assert set(got) - set(kafka) == ADDED
    assert not ADDED & set(kafka)


def test_signals_stream_when_times_added_a_javascript_number_holds_them_exactly(
    api: Api, client: TestClient
) -> None:
    for _ in range(3):
        api.feed.on_event(signal())
    for got in _streamed(client, 3):
        for name in SIGNAL_NS_TIMES:
            ms, iso = got[f"{name}_ms"], got[f"{name}_iso"]
            assert float(ms) == ms and abs(ms) < 2**53  # a double is exact here
            assert ms == got[name] // 1_000_000
            assert datetime.fromisoformat(iso) == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
                milliseconds=ms
            )
            assert len(iso) == len("2024-08-08T23:54:41.123Z") and iso.endswith("Z")


@pytest.mark.parametrize(
    "schema",
    [SCHEMAS / "signal.v1.json", SCHEMAS / "released" / "v0.1.0.post1" / "signal.v1.json"],
    ids=["current", "oldest-open-release"],
)
def test_signals_stream_when_validated_with_the_schema_accepts_the_added_times(
    api: Api, client: TestClient, schema: Path
) -> None:
    api.feed.on_event(signal())
    [got] = _streamed(client, 1)
    assert list(Draft202012Validator(json.loads(schema.read_text())).iter_errors(got)) == []


def test_ns_to_iso_when_given_edges_writes_javascripts_form() -> None:
    assert ns_to_iso(0) == "1970-01-01T00:00:00.000Z"
    assert ns_to_iso(999_999) == "1970-01-01T00:00:00.000Z"
    assert ns_to_iso(2**63 - 1) == "2262-04-11T23:47:16.854Z"  # the largest int64 ns
    assert ns_to_ms(2**63 - 1) == 9_223_372_036_854


def test_signal_model_when_fields_listed_has_no_field_the_stream_adds() -> None:
    # A later optional field with one of these names would be overwritten on the stream.
    assert not ADDED & set(Signal.model_fields)
    assert set(SIGNAL_NS_TIMES) <= set(Signal.model_fields)
