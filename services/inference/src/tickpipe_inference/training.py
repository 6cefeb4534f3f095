"""`tickpipe train`: features from recorded trades, a labelled walk-forward fit, ONNX export.

Features come from the polars batch path (`tickpipe_quant.batch`), which computes the same
bars and feature set as the feature service's streaming engine (a unit test holds the two
equal on the sample), so training and live scoring see identical inputs.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, brier_score_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from tickpipe.marketdata import QuoteData, TradeData, read_binance_capture
from tickpipe_inference.domain.model import OnnxModel, sha256_file
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


def train(cfg: TrainConfig) -> Path:
    """Fit, export, verify ONNX parity, write the card; returns the model directory."""
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

    out = cfg.out_dir / cfg.name / cfg.version
    out.mkdir(parents=True, exist_ok=True)
    onnx_model = convert_sklearn(
        model,
        name=f"{cfg.name}:{cfg.version}",  # skl2onnx's default is a random uuid: bytes would vary
        initial_types=[("features", FloatTensorType([None, len(FEATURE_NAMES)]))],
        options={id(model): {"zipmap": False}},
        target_opset=17,
    )
    onnx_path = out / "model.onnx"
    onnx_path.write_bytes(onnx_model.SerializeToString())

    p_train = model.predict_proba(x[:split])[:, 1]
    p_test = model.predict_proba(x[split:])[:, 1]
    card = {
        "name": cfg.name,
        "version": cfg.version,
        "kind": "sklearn StandardScaler+LogisticRegression",
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
    }
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")

    scored = OnnxModel(out).predict_proba(x[split:].astype(np.float32))
    expected = model.predict_proba(x[split:].astype(np.float32))[:, 1]
    worst = float(np.max(np.abs(scored - expected)))
    if worst > 1e-5:
        raise RuntimeError(f"ONNX output differs from the fitted model by {worst}")
    card["parity_max_abs_diff"] = worst
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    return out
