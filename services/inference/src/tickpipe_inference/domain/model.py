"""The model port: what the handler needs from a model, and nothing about how it runs.

A model is anything with a card (the feature set and the feature names, in the order its
rows take them), a version and a batch scoring call. The onnxruntime adapter
(`tickpipe_inference.onnx_model`) and the registry on disk (`tickpipe_inference.model_registry`)
are one implementation; a plain Python object is another (tests, backtests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

# fp32, or the dynamically quantized int8 variant of the same model.
Variant = Literal["fp32", "int8"]


class ModelError(RuntimeError):
    """A model that cannot serve: missing files, bad checksum, or features it does not expect."""


@dataclass(frozen=True)
class ModelCard:
    """What a model expects: rows of `feature_names`, computed by `feature_set`."""

    name: str
    version: str
    feature_set: str
    feature_names: tuple[str, ...]

    def check_features(self, feature_set: str, names: tuple[str, ...]) -> None:
        """Raises ModelError unless rows of `names` from `feature_set` are what it scores."""
        if feature_set != self.feature_set:
            raise ModelError(
                f"feature set {feature_set!r} does not match the model's {self.feature_set!r}"
            )
        if names != self.feature_names:
            missing = sorted(set(self.feature_names) - set(names))
            raise ModelError(f"feature names differ from the model card (missing: {missing})")


class Model(Protocol):
    """A model the handler can serve."""

    @property
    def card(self) -> ModelCard: ...

    @property
    def version(self) -> str:
        """What signals carry as `model_version` (e.g. `baseline:v1`, `baseline:v1+int8`)."""
        ...

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        """P(up) per row: `rows` is [N, len(card.feature_names)] in card order; returns [N]."""
        ...


class ModelSource(Protocol):
    """Where a hot reload (`control.v1` reload_model) finds a model by name and version."""

    def load(self, name: str, version: str) -> Model:
        """The model, checked against the features the service computes; ModelError if not."""
        ...
