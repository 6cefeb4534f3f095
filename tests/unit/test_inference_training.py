"""`tickpipe train`: the shipped model is reproduced, fp32 ONNX equals scikit-learn, and the
int8 variant really computes in integers and is scored for its card entry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from pydantic import ValidationError
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from tests.unit import factories as f
from tickpipe_inference.app import InferenceSettings
from tickpipe_inference.domain.model import ModelError
from tickpipe_inference.model_registry import ModelRegistry
from tickpipe_inference.onnx_model import OnnxModel
from tickpipe_inference.quantize import integer_ops, quantize_int8
from tickpipe_inference.training import Fitted, TrainConfig, fit, train
from tickpipe_quant.features import FEATURE_NAMES, FEATURE_SET

CONFIG = TrainConfig(data=f.SAMPLE, out_dir=Path("unused"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("registry")
    return train(TrainConfig(data=f.SAMPLE, out_dir=out))


@pytest.fixture(scope="module")
def fitted() -> Fitted:
    return fit(CONFIG)


def _card(model_dir: Path) -> dict[str, object]:
    card: dict[str, object] = json.loads((model_dir / "card.json").read_text())
    return card


def _flat(value: object, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix: value}


def test_train_when_run_on_the_sample_then_reproduces_the_shipped_model(trained: Path) -> None:
    shipped = sorted(p.relative_to(f.MODEL_DIR) for p in f.MODEL_DIR.rglob("*") if p.is_file())
    assert sorted(p.relative_to(trained) for p in trained.rglob("*") if p.is_file()) == shipped
    for name in shipped:
        if name.name != "card.json":
            assert (trained / name).read_bytes() == (f.MODEL_DIR / name).read_bytes(), name
    ours, theirs = _flat(_card(trained)), _flat(_card(f.MODEL_DIR))
    # The float32 parity residue depends on the CPU's kernels; every metric must agree.
    parity = "parity_max_abs_diff."
    assert all(abs(float(str(card.pop(parity)))) < 1e-5 for card in (ours, theirs))
    assert ours == theirs


def test_fp32_onnx_when_scored_on_held_out_rows_then_equals_sklearn(fitted: Fitted) -> None:
    held_out = fitted.x[fitted.split :].astype(np.float32)
    expected = fitted.model.predict_proba(held_out)[:, 1]

    scored = OnnxModel(f.MODEL_DIR).predict_proba(held_out)

    assert len(held_out) == 75
    np.testing.assert_allclose(scored, expected, rtol=0, atol=1e-5)


def test_fp32_onnx_graph_when_loaded_then_standard_ops_only() -> None:
    graph = onnx.load(str(f.MODEL_DIR / "model.onnx")).graph
    assert "MatMul" in {n.op_type for n in graph.node}
    assert all(n.domain in ("", "ai.onnx") for n in graph.node)  # no ONNX-ML Scaler et al.
    assert not integer_ops(onnx.load(str(f.MODEL_DIR / "model.onnx")))


def test_int8_variant_when_loaded_then_its_matmul_runs_on_integers() -> None:
    model = onnx.load(str(f.MODEL_DIR / "model.int8.onnx"))
    ops = {n.op_type for n in model.graph.node}

    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= integer_ops(model)
    assert "MatMul" not in ops
    int8_shapes = [list(t.dims) for t in model.graph.initializer if t.data_type == TensorProto.INT8]
    assert [len(FEATURE_NAMES), 1] in int8_shapes  # the weights, beside their zero point


def _accuracy(p: np.ndarray, y: np.ndarray) -> float:
    return round(float(np.mean((p >= 0.5) == (y == 1))), 6)


def test_int8_card_entry_when_recomputed_then_comes_from_scoring_the_int8_model(
    fitted: Fitted,
) -> None:
    held_out = fitted.x[fitted.split :].astype(np.float32)
    y = fitted.y[fitted.split :]
    fp32, int8 = OnnxModel(f.MODEL_DIR), OnnxModel(f.MODEL_DIR, "int8")
    p32 = fp32.predict_proba(held_out)
    per_row = np.array([int8.predict_proba(held_out[i : i + 1])[0] for i in range(len(y))])
    one_call = int8.predict_proba(held_out)
    report = _card(f.MODEL_DIR)["int8"]
    assert isinstance(report, dict)

    for key, p in (("test_per_row", per_row), ("test_one_call", one_call)):
        entry = report[key]
        assert entry["accuracy"] == _accuracy(p, y)
        assert entry["accuracy_delta"] == pytest.approx(_accuracy(p, y) - _accuracy(p32, y))
        assert entry["max_abs_dp"] == pytest.approx(float(np.max(np.abs(p - p32))), abs=1e-6)
    # Quantization moved probabilities (a card copied from fp32 would show 0), not by much.
    assert 0 < float(np.max(np.abs(per_row - p32))) < 0.05
    assert report["test_per_row"]["accuracy"] != _accuracy(p32, y)


def test_quantize_int8_when_graph_has_no_standard_matmul_then_refuses(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 3)), np.arange(40) % 2
    model = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(x, y)
    onnx_ml = convert_sklearn(model, initial_types=[("x", FloatTensorType([None, 3]))])
    (tmp_path / "ml.onnx").write_bytes(onnx_ml.SerializeToString())

    with pytest.raises(RuntimeError, match="no integer ops"):
        quantize_int8(tmp_path / "ml.onnx", tmp_path / "ml.int8.onnx")


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "baseline" / "v1"
    shutil.copytree(f.MODEL_DIR, target)
    return target


def test_registry_when_variant_int8_then_serves_the_quantized_file(tmp_path: Path) -> None:
    _copy(tmp_path)
    rows = np.random.default_rng(3).normal(0, 1e-3, size=(16, len(FEATURE_NAMES)))

    int8 = ModelRegistry(tmp_path, FEATURE_SET, FEATURE_NAMES, "int8").load("baseline", "v1")
    fp32 = ModelRegistry(tmp_path, FEATURE_SET, FEATURE_NAMES).load("baseline", "v1")

    assert (int8.version, fp32.version) == ("baseline:v1+int8", "baseline:v1")
    diff = np.abs(int8.predict_proba(rows) - fp32.predict_proba(rows))
    assert 0 < float(diff.max()) < 0.05


def test_int8_variant_when_file_tampered_then_model_error(tmp_path: Path) -> None:
    model_dir = _copy(tmp_path)
    path = model_dir / "model.int8.onnx"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))

    OnnxModel(model_dir)  # the fp32 file is untouched and still loads
    with pytest.raises(ModelError, match="sha256"):
        OnnxModel(model_dir, "int8")


def test_int8_variant_when_card_lists_no_checksum_then_model_error(tmp_path: Path) -> None:
    model_dir = _copy(tmp_path)
    card = _card(model_dir)
    card["files"] = {}
    (model_dir / "card.json").write_text(json.dumps(card))

    with pytest.raises(ModelError, match="no sha256"):
        OnnxModel(model_dir, "int8")


def test_inference_settings_when_variant_set_then_parsed_and_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TICKPIPE_INFERENCE_VARIANT", raising=False)
    assert InferenceSettings().variant == "fp32"
    monkeypatch.setenv("TICKPIPE_INFERENCE_VARIANT", "int8")
    assert InferenceSettings().variant == "int8"
    monkeypatch.setenv("TICKPIPE_INFERENCE_VARIANT", "fp16")
    with pytest.raises(ValidationError):
        InferenceSettings()
