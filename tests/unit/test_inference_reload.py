"""Hot reload of the inference model through control.v1: v2 has other weights than v1 (its
logistic weights negated, so P(up) becomes 1 - P(up)), so a reload shows in the scores."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit import factories as f
from tests.unit.inference_models import register, register_inverted
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import ControlAction, ControlCommand, FeatureVector, Signal
from tickpipe.service import Rejected
from tickpipe.topics import CONTROL, FEATURES
from tickpipe_inference.domain.model import Variant
from tickpipe_inference.handlers import InferenceHandler
from tickpipe_inference.model_registry import ModelRegistry
from tickpipe_quant.features import FEATURE_NAMES, FEATURE_SET


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    register(tmp_path, "v1")
    register_inverted(tmp_path, "v2")
    onnx = register(tmp_path, "broken") / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-16])  # truncated: checksum and parse both fail
    return ModelRegistry(tmp_path, FEATURE_SET, FEATURE_NAMES)


def _handler(registry: ModelRegistry, variant: Variant = "fp32") -> InferenceHandler:
    registry = ModelRegistry(registry.root, FEATURE_SET, FEATURE_NAMES, variant)
    return InferenceHandler(
        registry.load("baseline", "v1"),
        EventIds(SimClock(), seed=1),
        MemoryCache(),
        "baseline",
        registry=registry,
    )


def _reload(version: str, name: str = "baseline") -> ControlCommand:
    return f.control(
        ControlAction.RELOAD_MODEL, target="inference", args={"name": name, "version": version}
    )


def _up_trend() -> FeatureVector:
    values = dict(f.feature_vector().values)
    values.update(ema_slow_dev=0.002, ema_fast_dev=0.002)
    return f.feature_vector(values=values)


def _signal(handler: InferenceHandler) -> Signal:
    (emit,) = handler.handle(_up_trend(), FEATURES, f.T0)
    assert isinstance(emit.event, Signal)
    return emit.event


def test_inference_reload_when_version_registered_then_next_vector_scored_by_its_weights(
    registry: ModelRegistry,
) -> None:
    handler = _handler(registry)
    before = _signal(handler)
    assert (before.model_version, before.direction) == ("baseline:v1", 1)

    assert handler.handle(_reload("v2"), CONTROL, f.T0) == ()

    after = _signal(handler)
    assert after.model_version == "baseline:v2"
    assert after.probability == pytest.approx(1 - before.probability, abs=1e-6)
    assert after.direction == -1


def test_inference_reload_when_model_broken_then_rejected_and_old_model_serves(
    registry: ModelRegistry,
) -> None:
    handler = _handler(registry)
    before = _signal(handler)
    with pytest.raises(Rejected) as info:
        handler.handle(_reload("broken"), CONTROL, f.T0)
    assert info.value.reason == "model_reload_failed"
    after = _signal(handler)
    assert (after.model_version, after.probability) == ("baseline:v1", before.probability)


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
    v1 = _signal(restarted)

    restarted.restore(handler.snapshot())

    restored = _signal(restarted)
    assert restored.model_version == "baseline:v2"
    assert restored.probability == pytest.approx(1 - v1.probability, abs=1e-6)


def test_inference_reload_when_int8_served_then_next_vector_scored_by_the_new_int8(
    registry: ModelRegistry,
) -> None:
    handler = _handler(registry, "int8")
    before = _signal(handler)

    handler.handle(_reload("v2"), CONTROL, f.T0)

    after = _signal(handler)
    assert (before.model_version, after.model_version) == ("baseline:v1+int8", "baseline:v2+int8")
    # Quantization moves each probability a little: the flip holds to that precision.
    assert after.probability == pytest.approx(1 - before.probability, abs=0.05)
    assert (before.direction, after.direction) == (1, -1)


def test_inference_reload_when_int8_served_and_version_has_no_int8_file_then_rejected(
    registry: ModelRegistry,
) -> None:
    (registry.root / "baseline" / "v2" / "model.int8.onnx").unlink()
    handler = _handler(registry, "int8")

    with pytest.raises(Rejected) as info:
        handler.handle(_reload("v2"), CONTROL, f.T0)

    assert info.value.reason == "model_reload_failed"
    assert "model.int8.onnx" in info.value.detail
    assert _signal(handler).model_version == "baseline:v1+int8"
