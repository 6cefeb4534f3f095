"""`tickpipe train`: features from recorded trades, a labelled walk-forward fit, ONNX export
(fp32 and int8) and a Triton model repository.

Features come from the polars batch path (`tickpipe_quant.batch`), which computes the same
bars and feature set as the feature service's streaming engine (a unit test holds the two
equal on the sample), so training and live scoring see identical inputs.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, brier_score_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from tickpipe.marketdata import QuoteData, TradeData, read_binance_capture
from tickpipe_inference.export import logistic_to_onnx
from tickpipe_inference.onnx_model import VARIANT_FILES, OnnxModel, sha256_file
from tickpipe_inference.quantize import quantize_int8
from tickpipe_inference.triton import write_triton_model
from tickpipe_quant.batch import feature_rows as batch_feature_rows
from tickpipe_quant.batch import frames
from tickpipe_quant.features import FEATURE_NAMES, feature_set_name


@dataclass(frozen=True)
class TrainConfig:
    data: Path
    out_dir: Path
    name: str = "baseline"
    version: str = "v1"
    bar_seconds: float = 1.0
    horizon_bars: int = 5
    dead_zone: float = 1e-5  # |forward log return| below this is unlabelled
    train_fraction: float = 0.7


def capture_frames(path: Path, symbol: str | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One instrument's trades and quotes from a Binance capture, in file order (the order
    the feature service consumes them), as `tickpipe_quant.batch` takes them."""

    def records() -> Iterator[TradeData | QuoteData]:
        wanted = symbol
        for item in read_binance_capture(path):
            if not isinstance(item, (TradeData, QuoteData)):
                continue
            wanted = wanted or item.symbol
            if item.symbol == wanted:
                yield item
            elif symbol is None:
                raise ValueError(f"{path} holds {wanted} and {item.symbol}: name one")

    return frames(records())


def feature_rows(path: Path, bar_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows and bar closes, per emitted bar, in time order (one instrument)."""
    interval = round(bar_seconds * 1e9)
    rows = batch_feature_rows(*capture_frames(path), interval)
    starts = rows["bar_start"].to_numpy()
    if len(starts) > 1 and not np.all(np.diff(starts) == interval):
        raise RuntimeError("feature rows are not one per interval: forward returns would skew")
    x = rows.select(FEATURE_NAMES).to_numpy().astype(np.float64)
    return x, rows["close"].to_numpy().astype(np.float64)


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    auc = roc_auc_score(y, p) if len(set(y.tolist())) == 2 else math.nan
    return {
        "rows": float(len(y)),
        "auc": round(float(auc), 6),
        "accuracy": round(float(accuracy_score(y, p >= 0.5)), 6),
        "brier": round(float(brier_score_loss(y, p)), 6),
        "base_rate": round(float(y.mean()), 6),
    }


@dataclass(frozen=True)
class Fitted:
    """The fitted pipeline and the labelled rows; rows from `split` on are held out."""

    model: Pipeline
    x: np.ndarray
    y: np.ndarray
    split: int


def fit(cfg: TrainConfig) -> Fitted:
    x_all, closes = feature_rows(cfg.data, cfg.bar_seconds)
    h = cfg.horizon_bars
    fwd = np.log(closes[h:] / closes[:-h])
    x_all = x_all[:-h]
    keep = np.abs(fwd) >= cfg.dead_zone
    x, y = x_all[keep], (fwd[keep] > 0).astype(np.int64)
    split = int(len(y) * cfg.train_fraction)
    if split < 20 or len(y) - split < 10:
        raise ValueError(f"not enough labelled rows to train: {len(y)}")
    model = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(C=1.0))])
    model.fit(x[:split], y[:split])
    return Fitted(model, x, y, split)


def _int8_report(out: Path, fitted: Fitted) -> dict[str, object]:
    """The int8 variant scored on the held-out rows, against the fp32 ONNX model.

    Per row (one row per call, how a quiet stream is scored) and as one call over the whole
    split: dynamic quantization takes its input range from each call, so the two differ.
    """
    x_test = fitted.x[fitted.split :].astype(np.float32)
    y_test = fitted.y[fitted.split :]
    fp32, int8 = OnnxModel(out, "fp32"), OnnxModel(out, "int8")
    p32 = fp32.predict_proba(x_test)
    per_row = np.concatenate([int8.predict_proba(x_test[i : i + 1]) for i in range(len(x_test))])
    one_call = int8.predict_proba(x_test)
    base = _metrics(y_test, p32)
    report: dict[str, object] = {
        "file": VARIANT_FILES["int8"],
        "method": "onnxruntime quantize_dynamic: MatMul weights int8, inputs uint8 per call",
        "test_fp32_onnx": base,
    }
    for key, p in (("test_per_row", per_row), ("test_one_call", one_call)):
        m = _metrics(y_test, p)
        report[key] = {
            **m,
            "accuracy_delta": round(m["accuracy"] - base["accuracy"], 6),
            "auc_delta": round(m["auc"] - base["auc"], 6),
            "max_abs_dp": round(float(np.max(np.abs(p - p32))), 6),
        }
    return report


def _export(model: Pipeline, out: Path, cfg: TrainConfig) -> tuple[Path, dict[str, str]]:
    """Writes model.onnx, its int8 variant and their Triton repository into `out`; returns
    the fp32 path and the sha256 of every other file, by path relative to `out`."""
    onnx_path = out / VARIANT_FILES["fp32"]
    onnx_path.write_bytes(logistic_to_onnx(model, f"{cfg.name}:{cfg.version}").SerializeToString())
    int8_path = quantize_int8(onnx_path, out / VARIANT_FILES["int8"])
    triton = out / "triton"
    shutil.rmtree(triton, ignore_errors=True)  # no stale model from an earlier layout
    written = [int8_path]
    for source, name in ((onnx_path, cfg.name), (int8_path, f"{cfg.name}_int8")):
        folder = write_triton_model(source, triton, name)
        written += [folder / "config.pbtxt", folder / "1" / "model.onnx"]
    return onnx_path, {str(p.relative_to(out)): sha256_file(p) for p in written}


def train(cfg: TrainConfig) -> Path:
    """Fit, export fp32 and int8 ONNX and a Triton repository, verify, write the card;
    returns the model directory."""
    fitted = fit(cfg)
    model, x, y, split = fitted.model, fitted.x, fitted.y, fitted.split
    h = cfg.horizon_bars

    out = cfg.out_dir / cfg.name / cfg.version
    out.mkdir(parents=True, exist_ok=True)
    onnx_path, files = _export(model, out, cfg)

    p_train = model.predict_proba(x[:split])[:, 1]
    p_test = model.predict_proba(x[split:])[:, 1]
    card: dict[str, object] = {
        "name": cfg.name,
        "version": cfg.version,
        "kind": "sklearn StandardScaler+LogisticRegression",
        "onnx_graph": "standard ops (Sub, Div, MatMul, Add, Sigmoid, Concat), opset 17",
        "feature_set": feature_set_name(round(cfg.bar_seconds * 1e9)),
        "feature_names": list(FEATURE_NAMES),
        "label": f"sign of the {h}-bar forward log return; |r| < {cfg.dead_zone} unlabelled",
        "bar_seconds": cfg.bar_seconds,
        "split": {"method": "walk-forward (time-ordered)", "train_fraction": cfg.train_fraction},
        "metrics": {"train": _metrics(y[:split], p_train), "test": _metrics(y[split:], p_test)},
        "data": {
            "file": cfg.data.name,
            "sha256": hashlib.sha256(cfg.data.read_bytes()).hexdigest(),
        },
        "onnx_sha256": sha256_file(onnx_path),
        "onnx_inputs": {"features": ["float32", [None, len(FEATURE_NAMES)]]},
        "onnx_outputs": {"probabilities": ["float32", [None, 2]]},
        "files": files,
    }
    # The card goes down before scoring: OnnxModel checks each file against it.
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")

    scored = OnnxModel(out).predict_proba(x[split:].astype(np.float32))
    expected = model.predict_proba(x[split:].astype(np.float32))[:, 1]
    worst = float(np.max(np.abs(scored - expected)))
    if worst > 1e-5:
        raise RuntimeError(f"ONNX output differs from the fitted model by {worst}")
    card["parity_max_abs_diff"] = worst
    card["int8"] = _int8_report(out, fitted)
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    return out
