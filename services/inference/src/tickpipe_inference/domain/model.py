"""A registered model: its card (what it expects) and an onnxruntime session to score with."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort

Variant = Literal["fp32", "int8"]
# The file each variant of a registered model lives in, beside its card.
VARIANT_FILES: dict[Variant, str] = {"fp32": "model.onnx", "int8": "model.int8.onnx"}


class ModelError(RuntimeError):
    """A model that cannot serve: missing files, bad checksum, or features it does not expect."""


@dataclass(frozen=True)
class ModelCard:
    name: str
    version: str
    feature_set: str
    feature_names: tuple[str, ...]
    sha256: str
    raw: dict[str, object]

    def checksum(self, onnx_file: str) -> str | None:
        """The sha256 the card records for a file of the model (`model.onnx` or a variant)."""
        if onnx_file == "model.onnx":
            return self.sha256
        files = self.raw.get("files", {})
        value = files.get(onnx_file) if isinstance(files, dict) else None
        return str(value) if value is not None else None

    @classmethod
    def load(cls, path: Path) -> ModelCard:
        data = json.loads(path.read_text())
        return cls(
            name=str(data["name"]),
            version=str(data["version"]),
            feature_set=str(data["feature_set"]),
            feature_names=tuple(data["feature_names"]),
            sha256=str(data["onnx_sha256"]),
            raw=data,
        )


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class OnnxModel:
    """Scores rows of features in card order; returns P(up) per row."""

    def __init__(self, model_dir: Path, variant: Variant = "fp32") -> None:
        self.variant: Variant = variant
        onnx_file = VARIANT_FILES[variant]
        card_path = model_dir / "card.json"
        onnx_path = model_dir / onnx_file
        if not card_path.exists() or not onnx_path.exists():
            raise ModelError(f"no model at {model_dir} (need card.json and {onnx_file})")
        self.card = ModelCard.load(card_path)
        expected = self.card.checksum(onnx_file)
        if expected is None:
            raise ModelError(f"{onnx_path}: the model card lists no sha256 for it")
        if sha256_file(onnx_path) != expected:
            raise ModelError(f"{onnx_path}: sha256 does not match the model card")
        options = ort.SessionOptions()
        # One scoring thread per process: the services share two cores with Kafka.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        outputs = [o.name for o in self._session.get_outputs()]
        self._prob_output = "probabilities" if "probabilities" in outputs else outputs[-1]

    @property
    def version(self) -> str:
        # Signals say which variant scored them: int8 probabilities differ slightly.
        base = f"{self.card.name}:{self.card.version}"
        return base if self.variant == "fp32" else f"{base}+{self.variant}"

    def check_features(self, feature_set: str, names: tuple[str, ...]) -> None:
        if feature_set != self.card.feature_set:
            raise ModelError(
                f"feature set {feature_set!r} does not match the model's {self.card.feature_set!r}"
            )
        if names != self.card.feature_names:
            missing = sorted(set(self.card.feature_names) - set(names))
            raise ModelError(f"feature names differ from the model card (missing: {missing})")

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        out = self._session.run([self._prob_output], {self._input: rows.astype(np.float32)})
        probs = np.asarray(out[0])
        return probs[:, 1]
