"""The onnxruntime adapter of the model port: a model folder on disk, checked, then served.

<model dir>/card.json         name, version, feature set and names, sha256 of each file
<model dir>/model.onnx        fp32
<model dir>/model.int8.onnx   its int8 variant
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tickpipe_inference.domain.model import ModelCard, ModelError, Variant

# The file each variant of a registered model lives in, beside its card.
VARIANT_FILES: dict[Variant, str] = {"fp32": "model.onnx", "int8": "model.int8.onnx"}


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _checksum(card: dict[str, object], onnx_file: str) -> str | None:
    """The sha256 the card records for a file of the model (`model.onnx` or a variant)."""
    if onnx_file == VARIANT_FILES["fp32"]:
        value = card.get("onnx_sha256")
    else:
        files = card.get("files", {})
        value = files.get(onnx_file) if isinstance(files, dict) else None
    return str(value) if value is not None else None


def read_card(path: Path) -> tuple[ModelCard, dict[str, object]]:
    """The card and the raw card.json it came from (checksums, metrics, provenance)."""
    try:
        data = json.loads(path.read_text())
        card = ModelCard(
            name=str(data["name"]),
            version=str(data["version"]),
            feature_set=str(data["feature_set"]),
            feature_names=tuple(str(n) for n in data["feature_names"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        # A reload of an unreadable card must be refused like any other bad model.
        raise ModelError(f"{path}: unreadable model card ({exc!r})") from exc
    return card, data


class OnnxModel:
    """Scores rows of features in card order; returns P(up) per row."""

    def __init__(self, model_dir: Path, variant: Variant = "fp32") -> None:
        self.variant: Variant = variant
        onnx_file = VARIANT_FILES[variant]
        card_path = model_dir / "card.json"
        onnx_path = model_dir / onnx_file
        if not card_path.exists() or not onnx_path.exists():
            raise ModelError(f"no model at {model_dir} (need card.json and {onnx_file})")
        self.card, raw = read_card(card_path)
        expected = _checksum(raw, onnx_file)
        if expected is None:
            raise ModelError(f"{onnx_path}: the model card lists no sha256 for it")
        if sha256_file(onnx_path) != expected:
            raise ModelError(f"{onnx_path}: sha256 does not match the model card")
        self.sha256 = expected
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

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        out = self._session.run([self._prob_output], {self._input: rows.astype(np.float32)})
        probs = np.asarray(out[0])
        return probs[:, 1]
