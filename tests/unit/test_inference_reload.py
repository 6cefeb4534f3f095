"""Hot reload of the inference model through control.v1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.unit import factories as f
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import ControlAction, ControlCommand, Signal
from tickpipe.service import Rejected
from tickpipe.topics import CONTROL, FEATURES
from tickpipe_inference.domain.registry import ModelRegistry
from tickpipe_inference.handlers import InferenceHandler
from tickpipe_quant.features import FEATURE_NAMES, FEATURE_SET


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    for version in ("v1", "v2", "broken"):
        shutil.copytree(f.MODEL_DIR, tmp_path / "baseline" / version)
    card = tmp_path / "baseline" / "v2" / "card.json"
    card.write_text(json.dumps({**json.loads(card.read_text()), "version": "v2"}))
    onnx = tmp_path / "baseline" / "broken" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-16])  # truncated: checksum and parse both fail
    return ModelRegistry(tmp_path, FEATURE_SET, FEATURE_NAMES)


def _handler(registry: ModelRegistry) -> InferenceHandler:
    model = registry.load("baseline", "v1")
    return InferenceHandler(
        model, EventIds(SimClock(), seed=1), MemoryCache(), "baseline", registry=registry
    )


def _reload(version: str, name: str = "baseline") -> ControlCommand:
    return f.control(
        ControlAction.RELOAD_MODEL, target="inference", args={"name": name, "version": version}
    )


def _version(handler: InferenceHandler) -> str:
    (emit,) = handler.handle(f.feature_vector(), FEATURES, f.T0)
    assert isinstance(emit.event, Signal)
    return emit.event.model_version


def test_inference_reload_when_version_registered_then_next_vector_scored_by_it(
    registry: ModelRegistry,
) -> None:
    handler = _handler(registry)
    assert _version(handler) == "baseline:v1"
    assert handler.handle(_reload("v2"), CONTROL, f.T0) == ()
    assert _version(handler) == "baseline:v2"


def test_inference_reload_when_model_broken_then_rejected_and_old_model_serves(
    registry: ModelRegistry,
) -> None:
    handler = _handler(registry)
    with pytest.raises(Rejected) as info:
        handler.handle(_reload("broken"), CONTROL, f.T0)
    assert info.value.reason == "model_reload_failed"
    assert _version(handler) == "baseline:v1"


@pytest.mark.parametrize("name", ["../baseline", "baseline/../x", ""])
def test_inference_reload_when_name_escapes_registry_then_rejected(
    registry: ModelRegistry, name: str
) -> None:
    with pytest.raises(Rejected):
        _handler(registry).handle(_reload("v1", name=name), CONTROL, f.T0)


def test_inference_handler_when_restored_then_serves_the_snapshotted_version(
    registry: ModelRegistry,
) -> None:
    handler = _handler(registry)
    handler.handle(_reload("v2"), CONTROL, f.T0)
    restarted = _handler(registry)
    restarted.restore(handler.snapshot())
    assert _version(restarted) == "baseline:v2"


def test_inference_reload_when_int8_served_and_version_has_no_int8_file_then_rejected(
    registry: ModelRegistry,
) -> None:
    (registry.root / "baseline" / "v2" / "model.int8.onnx").unlink()
    int8 = ModelRegistry(registry.root, FEATURE_SET, FEATURE_NAMES, "int8")
    handler = InferenceHandler(
        int8.load("baseline", "v1"),
        EventIds(SimClock(), seed=1),
        MemoryCache(),
        "baseline",
        registry=int8,
    )

    with pytest.raises(Rejected) as info:
        handler.handle(_reload("v2"), CONTROL, f.T0)

    assert info.value.reason == "model_reload_failed"
    assert "model.int8.onnx" in info.value.detail
    assert _version(handler) == "baseline:v1+int8"
