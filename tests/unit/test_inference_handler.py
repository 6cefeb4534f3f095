"""Inference: the shipped baseline model scores feature vectors into signals."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import onnx
import orjson
import pytest
from onnx import numpy_helper

from tests.unit import factories as f
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import FeatureVector, Signal
from tickpipe.service import Rejected
from tickpipe.topics import FEATURES, SIGNALS
from tickpipe_inference.domain.model import ModelError
from tickpipe_inference.handlers import InferenceHandler, direction_for
from tickpipe_inference.onnx_model import OnnxModel
from tickpipe_quant.features import FEATURE_NAMES

LONG, SHORT = 0.55, 0.45


@pytest.fixture(scope="module")
def model() -> OnnxModel:
    return OnnxModel(f.MODEL_DIR)


def _reference_p_up(values: dict[str, float]) -> float:
    """P(up) computed by hand from the ONNX graph's standardization and logistic weights."""
    graph = onnx.load(str(f.MODEL_DIR / "model.onnx")).graph
    weights = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in graph.initializer}
    assert [n.op_type for n in graph.node][2:5] == ["MatMul", "Add", "Sigmoid"]
    x = np.array([np.float32(values[name]) for name in FEATURE_NAMES], dtype=np.float64)
    scaled = (x - weights["mean"]) / weights["scale"]
    z = float(scaled @ weights["coef"][:, 0] + weights["intercept"][0])
    return 1.0 / (1.0 + math.exp(-z))


def _handler(model: OnnxModel) -> tuple[InferenceHandler, MemoryCache]:
    clock = SimClock(f.T0)
    cache = MemoryCache(clock)
    return InferenceHandler(model, EventIds(clock, seed=2), cache, "baseline", LONG, SHORT), cache


def _vector(**overrides: float) -> FeatureVector:
    values = dict(f.feature_vector().values)
    values.update(overrides)
    return f.feature_vector(values=values)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"ema_slow_dev": 0.001, "ema_fast_dev": 0.0005},
        {"ema_slow_dev": -0.001, "ema_fast_dev": -0.0005, "rsi_14": 80.0},
        {"log_ret_5": 0.002, "realized_vol_20": 0.0005, "order_flow_imbalance": -0.7},
    ],
    ids=["neutral", "up-trend", "down-trend", "mixed"],
)
def test_inference_handler_when_vector_valid_emits_signal_matching_model(
    model: OnnxModel, overrides: dict[str, float]
) -> None:
    handler, cache = _handler(model)
    vector = _vector(**overrides)

    (emit,) = handler.handle(vector, FEATURES, f.T0 + 5)

    s = emit.event
    assert emit.topic == SIGNALS
    assert isinstance(s, Signal)
    p = _reference_p_up(vector.values)
    assert s.probability == pytest.approx(p, abs=1e-5)
    assert s.score == pytest.approx(2 * s.probability - 1)
    expected_direction = 1 if s.probability >= LONG else -1 if s.probability <= SHORT else 0
    assert s.direction == expected_direction
    assert s.model_version == "baseline:v1"
    assert s.volatility == vector.values["realized_vol_20"]
    assert (s.price, s.feature_ts, s.ts_init) == (60_000.0, f.T0, f.T0 + 5)
    assert s.causation_id == vector.event_id
    assert orjson.loads(cache.get(f"signals:{f.KEY}") or b"null")["event_id"] == s.event_id


def test_inference_handler_when_trends_differ_signals_both_directions(model: OnnxModel) -> None:
    handler, _ = _handler(model)
    directions = set()
    for dev in (-0.002, 0.002):
        (emit,) = handler.handle(
            _vector(ema_slow_dev=dev, ema_fast_dev=dev),
            FEATURES,
            f.T0,
        )
        assert isinstance(emit.event, Signal)
        directions.add(emit.event.direction)

    assert directions == {-1, 1}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_inference_handler_when_feature_not_finite_raises_rejected(
    model: OnnxModel, bad: float
) -> None:
    handler, cache = _handler(model)

    with pytest.raises(Rejected) as err:
        handler.handle(_vector(rsi_14=bad), FEATURES, f.T0)

    assert err.value.reason == "non_finite_feature"
    assert err.value.detail == "rsi_14"
    assert cache.get(f"signals:{f.KEY}") is None


def test_inference_handler_when_feature_set_differs_raises_feature_mismatch(
    model: OnnxModel,
) -> None:
    handler, _ = _handler(model)
    vector = f.feature_vector(feature_set="bars5s.v2")

    with pytest.raises(Rejected) as err:
        handler.handle(vector, FEATURES, f.T0)

    assert err.value.reason == "feature_mismatch"


def test_inference_handler_when_feature_missing_raises_feature_mismatch(
    model: OnnxModel,
) -> None:
    handler, _ = _handler(model)
    values = dict(f.feature_vector().values)
    del values["spread_bps"]

    with pytest.raises(Rejected) as err:
        handler.handle(f.feature_vector(values=values), FEATURES, f.T0)

    assert err.value.reason == "feature_mismatch"
    assert "spread_bps" in err.value.detail


def test_inference_handler_when_event_not_features_ignores_it(model: OnnxModel) -> None:
    handler, _ = _handler(model)

    assert handler.handle(f.trade(), "md.trades.v1", f.T0) == ()


@pytest.mark.parametrize(
    ("p", "direction"),
    [(0.55, 1), (0.9, 1), (0.5499, 0), (0.4501, 0), (0.45, -1), (0.0, -1)],
)
def test_direction_for_when_probability_at_thresholds_is_inclusive(
    p: float, direction: int
) -> None:
    assert direction_for(p, LONG, SHORT) == direction


def _copy_model(tmp_path: Path) -> Path:
    target = tmp_path / "baseline" / "v1"
    shutil.copytree(f.MODEL_DIR, target)
    return target


def test_onnx_model_when_loaded_card_matches_feature_names(model: OnnxModel) -> None:
    assert model.card.feature_names == FEATURE_NAMES
    assert model.version == "baseline:v1"
    probs = model.predict_proba(np.zeros((3, len(FEATURE_NAMES))))
    assert probs.shape == (3,)
    assert np.all((probs >= 0) & (probs <= 1))


def test_onnx_model_when_onnx_file_tampered_raises_model_error(tmp_path: Path) -> None:
    model_dir = _copy_model(tmp_path)
    onnx_path = model_dir / "model.onnx"
    data = bytearray(onnx_path.read_bytes())
    data[-1] ^= 0x01
    onnx_path.write_bytes(bytes(data))

    with pytest.raises(ModelError, match="sha256"):
        OnnxModel(model_dir)


def test_onnx_model_when_card_checksum_edited_raises_model_error(tmp_path: Path) -> None:
    model_dir = _copy_model(tmp_path)
    card_path = model_dir / "card.json"
    card = json.loads(card_path.read_text())
    card["onnx_sha256"] = "0" * 64
    card_path.write_text(json.dumps(card))

    with pytest.raises(ModelError, match="sha256"):
        OnnxModel(model_dir)


def test_onnx_model_when_untampered_copy_loads(tmp_path: Path) -> None:
    assert (
        OnnxModel(_copy_model(tmp_path)).sha256
        == json.loads((f.MODEL_DIR / "card.json").read_text())["onnx_sha256"]
    )


def test_onnx_model_when_files_missing_raises_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no model"):
        OnnxModel(tmp_path)
