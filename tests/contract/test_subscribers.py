"""A subscriber validating with a released schema accepts what the pipeline publishes today.

Today's records come from the handlers themselves: the embedded pipeline (all five services,
one process) over the sample for every topic it writes there, and the test factories for the
three it does not (control commands, dead letters, data-quality events). Each is validated,
as published (the bytes the runner would hand to Kafka), with a plain JSON Schema validator
and nothing switched off, against the oldest released schema of its topic (and every later
one). The closed v0.1.0 set is the recorded erratum (docs/schemas.md): it refuses the fields
added since and nothing else, and its correction accepts them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from opentelemetry.trace import NoOpTracer

from tests.unit import factories as f
from tickpipe import schemas
from tickpipe.app import load_specs
from tickpipe.embedded import EmbeddedPipeline
from tickpipe.messages import EVENT_TYPES, Event, encode
from tickpipe.runner import EVENT_TYPE
from tickpipe.topics import TOPICS

SCHEMAS = Path("schemas")
RELEASES = schemas.releases(SCHEMAS / "released")
CURRENT = schemas.generate()
# What the sample run does not produce: built by the factories, encoded as published.
NOT_ON_THE_SAMPLE: dict[str, Event] = {
    "control": f.control(),
    "dead_letter": f.dead_letter(),
    "data_quality": f.data_quality(),
}
# A field some later v1 adds: every released copy must accept it too.
LATER = {"a_field_added_later": {"any": ["value"]}}


def _name(event_type: str) -> str:
    return f"{event_type}.v{EVENT_TYPES[event_type].schema_version}.json"


@pytest.fixture(scope="module")
def published() -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Schema file name -> today's records of that type, as JSON values."""
    with pytest.MonkeyPatch.context() as mp:
        for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
            mp.delenv(var, raising=False)
        mp.setenv("TICKPIPE_INGEST_LIMIT", "10000")
        mp.setenv("TICKPIPE_INGEST_FILE", str(f.SAMPLE))
        mp.setenv("TICKPIPE_INGEST_LOOPS", "1")
        mp.setenv("TICKPIPE_INFERENCE_MODEL_DIR", str(f.MODEL_DIR))
        mp.setenv("TICKPIPE_RISK_EXCHANGE_INFO", str(f.EXCHANGE_INFO))
        pipeline = EmbeddedPipeline(
            list(load_specs().values()), seed=0, tracer_factory=lambda _: NoOpTracer()
        )
        try:
            pipeline.run()
            out: dict[str, list[dict[str, Any]]] = {}
            for topic in TOPICS:
                for record in pipeline.bus.records(topic.name):
                    event_type = (record.header(EVENT_TYPE) or b"").decode()
                    out.setdefault(_name(event_type), []).append(json.loads(record.value))
        finally:
            pipeline.close()
    for event_type, event in NOT_ON_THE_SAMPLE.items():
        out.setdefault(_name(event_type), []).append(json.loads(encode(event)))
    yield out


def _released(name: str) -> list[tuple[str, dict[str, Any]]]:
    """(release, schema) for `name`, oldest first, the erratum sets left out; a type not yet
    in any release is checked against the schema published in schemas/."""
    found = [
        (r.name, json.loads((r / name).read_text()))
        for r in RELEASES
        if r.name not in schemas.ERRATA and (r / name).exists()
    ]
    return found or [("unreleased", json.loads((SCHEMAS / name).read_text()))]


def _errors(schema: dict[str, Any], body: dict[str, Any]) -> list[str]:
    return [f"{list(e.path)}: {e.message}" for e in Draft202012Validator(schema).iter_errors(body)]


def test_published_when_pipeline_runs_covers_every_event_type(
    published: dict[str, list[dict[str, Any]]],
) -> None:
    assert set(published) == set(CURRENT)
    sample = set(published) - {_name(t) for t in NOT_ON_THE_SAMPLE}
    assert all(len(published[n]) > 1 for n in sample)


def test_generated_schemas_when_published_have_an_open_content_model() -> None:
    for name, schema in CURRENT.items():
        assert schema["additionalProperties"] is True, name
        assert schemas.open_content_model(schema) == schema, name  # nothing closed inside


@pytest.mark.parametrize("name", sorted(CURRENT))
def test_subscriber_when_validating_with_oldest_released_schema_accepts_todays_records(
    published: dict[str, list[dict[str, Any]]], name: str
) -> None:
    releases = _released(name)
    assert name not in _v010() or releases[0][0] == schemas.ERRATA["v0.1.0"]
    for release, schema in releases:  # the oldest first, then every later one
        Draft202012Validator.check_schema(schema)
        for body in published[name]:
            assert _errors(schema, body) == [], (release, body)
            assert _errors(schema, {**body, **LATER}) == [], release


def _v010() -> set[str]:
    return {p.name for p in (SCHEMAS / "released" / "v0.1.0").glob("*.json")}


@pytest.mark.parametrize("name", sorted(_v010()))
def test_subscriber_when_holding_closed_v010_copy_refuses_only_fields_added_since(
    published: dict[str, list[dict[str, Any]]], name: str
) -> None:
    closed = json.loads((SCHEMAS / "released" / "v0.1.0" / name).read_text())
    corrected = json.loads((SCHEMAS / "released" / schemas.ERRATA["v0.1.0"] / name).read_text())
    # The erratum changes the content model and nothing else.
    assert corrected == schemas.open_content_model(closed)
    assert closed["additionalProperties"] is False
    added = set(CURRENT[name]["properties"]) - set(closed["properties"])
    refusing = 0
    for body in published[name]:
        errors = list(Draft202012Validator(closed).iter_errors(body))
        assert {e.validator for e in errors} <= {"additionalProperties"}, body
        refused = {k for k in body if k not in closed["properties"]}
        assert refused <= added
        assert bool(errors) == bool(refused)
        refusing += bool(errors)
        assert _errors(corrected, body) == []
    # The bug itself: where v1 gained fields, the closed copy refuses today's records.
    assert bool(refusing) == bool(added)


def test_releases_when_listed_are_oldest_first_by_version(tmp_path: Path) -> None:
    for name in ("v0.10.0", "v0.1.0.post1", "v0.2.0", "v0.1.0", "v0.1.1"):
        (tmp_path / name).mkdir()
    assert [p.name for p in schemas.releases(tmp_path)] == [
        "v0.1.0",
        "v0.1.0.post1",
        "v0.1.1",
        "v0.2.0",
        "v0.10.0",
    ]
    assert [p.name for p in RELEASES][:2] == ["v0.1.0", "v0.1.0.post1"]
