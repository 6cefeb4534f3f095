"""The model registry on disk: `<root>/<name>/<version>/{card.json, model.onnx, ...}`.

Loading validates the model against the feature set the service computes, so a model that
would score the wrong columns never serves.
"""

from __future__ import annotations

import re
from pathlib import Path

from tickpipe_inference.domain.model import ModelError, Variant
from tickpipe_inference.onnx_model import OnnxModel

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ModelRegistry:
    """Loads every model in the same variant, so a hot reload keeps fp32 or int8 serving.

    A `ModelSource` for the handler's reloads.
    """

    def __init__(
        self,
        root: Path,
        feature_set: str,
        feature_names: tuple[str, ...],
        variant: Variant = "fp32",
    ) -> None:
        self.root = root
        self.variant: Variant = variant
        self._feature_set = feature_set
        self._feature_names = feature_names

    def path(self, name: str, version: str) -> Path:
        for part in (name, version):
            if not _NAME.match(part):  # names come from operators: no path traversal
                raise ModelError(f"invalid model name or version {part!r}")
        return self.root / name / version

    def load(self, name: str, version: str) -> OnnxModel:
        return self.load_dir(self.path(name, version))

    def load_dir(self, model_dir: Path) -> OnnxModel:
        model = OnnxModel(model_dir, self.variant)
        model.card.check_features(self._feature_set, self._feature_names)
        return model

    def versions(self, name: str) -> list[str]:
        base = self.root / name
        return (
            sorted(p.name for p in base.iterdir() if (p / "card.json").exists())
            if (base.is_dir())
            else []
        )
