"""Schema compatibility: within a topic version only optional fields may be added."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tickpipe.messages import EVENT_TYPES
from tickpipe.schemas import generate, incompatibilities, open_content_model


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class SideV2(StrEnum):
    BUY = "buy"
    SELL = "sell"
    SHORT = "short"


class Fill(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str
    qty: Decimal
    side: Side
    note: str | None = None


class FillRemoved(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str
    side: Side
    note: str | None = None


class FillRetyped(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str
    qty: float
    side: Side
    note: str | None = None


class FillEnumWidened(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str
    qty: Decimal
    side: SideV2
    note: str | None = None


class FillNewRequired(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str
    qty: Decimal
    side: Side
    note: str | None = None
    venue: str


class FillNoteRequired(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str
    qty: Decimal
    side: Side
    note: str | None


class FillNewOptional(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str = Field(description="Reworded docs are not a change.")
    qty: Decimal
    side: Side
    note: str | None = None
    venue: str | None = None
    fee: Decimal = Decimal(0)


class FillOpen(BaseModel):
    order_id: str
    qty: Decimal
    side: Side
    note: str | None = None


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(mode="serialization")


def test_incompatibilities_when_schema_unchanged_returns_nothing() -> None:
    assert incompatibilities(_schema(Fill), _schema(Fill)) == []


def test_incompatibilities_when_field_removed_flags_it() -> None:
    assert incompatibilities(_schema(Fill), _schema(FillRemoved)) == ["field 'qty' removed"]


def test_incompatibilities_when_field_type_changes_flags_it() -> None:
    assert incompatibilities(_schema(Fill), _schema(FillRetyped)) == ["field 'qty' changed type"]


def test_incompatibilities_when_referenced_enum_changes_flags_it() -> None:
    # `side` is a `$ref` to a definition: the check must look through it.
    assert incompatibilities(_schema(Fill), _schema(FillEnumWidened)) == [
        "field 'side' changed type"
    ]


def test_incompatibilities_when_new_required_field_flags_it() -> None:
    problems = incompatibilities(_schema(Fill), _schema(FillNewRequired))

    assert problems == ["new field 'venue' is required (only optional fields may be added)"]


def test_incompatibilities_when_optional_field_becomes_required_flags_it() -> None:
    problems = incompatibilities(_schema(Fill), _schema(FillNoteRequired))

    assert problems == ["field 'note' is required now"]


def test_incompatibilities_when_optional_fields_added_accepts_them() -> None:
    assert incompatibilities(_schema(Fill), _schema(FillNewOptional)) == []


def test_incompatibilities_when_content_model_opens_accepts_it() -> None:
    # Every record the closed schema accepted, the open one accepts too.
    assert incompatibilities(_schema(Fill), _schema(FillOpen)) == []


def test_incompatibilities_when_content_model_closes_or_narrows_flags_it() -> None:
    narrowed = "additionalProperties narrowed (the content model may only open)"
    closed, open_ = _schema(Fill), _schema(FillOpen)
    mapped = {**open_, "additionalProperties": {"type": "string"}}
    assert incompatibilities(open_, closed) == [narrowed]
    assert incompatibilities(open_, mapped) == [narrowed]
    assert incompatibilities(closed, mapped) == []
    assert incompatibilities(mapped, open_) == []


def test_open_content_model_when_applied_opens_objects_and_keeps_maps() -> None:
    schema = {
        "additionalProperties": False,
        "properties": {"args": {"additionalProperties": {"type": "string"}}},
        "$defs": {"Leg": {"additionalProperties": False}},
    }
    assert open_content_model(schema) == {
        "additionalProperties": True,
        "properties": {"args": {"additionalProperties": {"type": "string"}}},
        "$defs": {"Leg": {"additionalProperties": True}},
    }


def test_generate_when_called_names_one_file_per_event_type_and_version() -> None:
    schemas = generate()

    assert set(schemas) == {f"{t}.v{c.schema_version}.json" for t, c in EVENT_TYPES.items()}
    for name, schema in schemas.items():
        assert schema["$id"].endswith("/" + name)
        assert schema["additionalProperties"] is True  # open: optional fields can be added
        assert incompatibilities(schema, schema) == []
