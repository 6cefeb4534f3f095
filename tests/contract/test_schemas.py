"""Contract tests: checked-in schemas match the models, stay compatible with the released set,
and payloads written by earlier versions still decode."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tickpipe import schemas
from tickpipe.messages import EVENT_TYPES, decode, encode

SCHEMAS = Path("schemas")
RELEASED = sorted((SCHEMAS / "released").iterdir())
PAYLOADS = sorted(Path(__file__).parent.joinpath("payloads").glob("*.json"))


def test_schemas_when_generated_from_models_then_match_checked_in_files() -> None:
    assert schemas.drift(SCHEMAS) == []


@pytest.mark.parametrize("released", RELEASED, ids=lambda p: p.name)
def test_schemas_when_compared_with_a_release_then_only_optional_fields_added(
    released: Path,
) -> None:
    assert schemas.check_against(released) == []


def test_payloads_cover_every_event_type() -> None:
    assert {p.name.split(".")[0] for p in PAYLOADS} == set(EVENT_TYPES)


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.name)
def test_payload_when_recorded_by_v1_then_decodes_and_validates_against_schema(
    payload: Path,
) -> None:
    event_type = payload.name.split(".")[0]
    raw = payload.read_bytes().strip()
    event = decode(raw, event_type)
    recorded, again = json.loads(raw), json.loads(encode(event))
    # Fields added since the recording are optional and read as absent (null).
    assert {k: again[k] for k in set(again) - set(recorded)} == dict.fromkeys(
        set(again) - set(recorded)
    )
    assert {k: again[k] for k in recorded} == recorded
    schema = json.loads((SCHEMAS / payload.name).read_text())
    jsonschema.validate(json.loads(raw), schema)
