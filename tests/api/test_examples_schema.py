"""The subscriber examples validate with the published JSON Schema as it is (nothing switched
off), and stay forward compatible: the oldest released signal.v1 schema accepts the optional
fields v1 gained since, because its content model is open. The v0.1.0 copy, closed by mistake,
refuses them (the erratum in docs/schemas.md)."""

from __future__ import annotations

import importlib.util
import json
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.api.factories import signal
from tickpipe.runner import encode_emit
from tickpipe.service import Emit
from tickpipe.topics import SIGNALS

ROOT = Path(__file__).resolve().parents[2]
RELEASED = ROOT / "schemas" / "released" / "v0.1.0.post1" / "signal.v1.json"
CLOSED = ROOT / "schemas" / "released" / "v0.1.0" / "signal.v1.json"


@cache
def _example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _published() -> dict[str, Any]:
    """A signal's value exactly as the pipeline writes it to Kafka."""
    return dict(json.loads(encode_emit(Emit(SIGNALS, signal()), ()).value))


def test_confluent_example_when_schema_copy_older_accepts_fields_added_since() -> None:
    body = _published()
    added = set(body) - set(json.loads(RELEASED.read_text())["properties"])
    assert added  # what a closed copy (additionalProperties: false) refuses
    check = _example("signals_confluent").validator(RELEASED)
    assert list(check.iter_errors(body)) == []
    assert [e.message for e in check.iter_errors({**body, "direction": 2})] == [
        "2 is not one of [-1, 0, 1]"
    ]
    # The examples no longer open the schema themselves: the v0.1.0 copy is to be replaced.
    closed = _example("signals_confluent").validator(CLOSED)
    assert [e.validator for e in closed.iter_errors(body)] == ["additionalProperties"]


def test_confluent_example_when_default_schema_loaded_is_the_published_file() -> None:
    published = json.loads((ROOT / "schemas" / "signal.v1.json").read_text())
    check = _example("signals_confluent").validator()
    assert check.schema == published
    assert published["additionalProperties"] is True


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({}, None),
        ({"unknown_later_field": 1}, None),
        ({"probability": 7}, "/probability: 7 is greater than the maximum of 1.0"),
    ],
)
def test_faust_example_problems_when_signal_given_reports_only_schema_violations(
    change: dict[str, Any], reason: str | None
) -> None:
    faust_example = _example("signals_faust")
    assert faust_example.problems(json.dumps({**_published(), **change}).encode()) == reason
