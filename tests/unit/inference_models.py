"""Model registries for the inference tests: the shipped model, and versions of it with other
weights, so a reload test sees the scores change and not only the label."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
from onnx import numpy_helper

from tests.unit import factories as f
from tickpipe_inference.onnx_model import VARIANT_FILES, sha256_file
from tickpipe_inference.quantize import quantize_int8


def register(root: Path, version: str, name: str = "baseline") -> Path:
    """A byte-for-byte copy of the shipped model, registered as `name/version`."""
    target = root / name / version
    shutil.copytree(f.MODEL_DIR, target)
    card_path = target / "card.json"
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "name": name, "version": version}))
    return target


def register_inverted(root: Path, version: str, name: str = "baseline") -> Path:
    """The shipped model with its logistic weights and intercept negated: P(up) becomes
    1 - P(up) of the shipped model on every row. Its int8 variant is quantized again."""
    target = register(root, version, name)
    fp32 = target / VARIANT_FILES["fp32"]
    graph = onnx.load(str(fp32))
    for tensor in graph.graph.initializer:
        if tensor.name in ("coef", "intercept"):
            tensor.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(tensor), tensor.name))
    graph.doc_string = f"{name}:{version}"
    fp32.write_bytes(graph.SerializeToString())
    int8 = quantize_int8(fp32, target / VARIANT_FILES["int8"])
    shutil.rmtree(target / "triton")  # the Triton copies would still be the old weights
    card_path = target / "card.json"
    card = json.loads(card_path.read_text())
    card["onnx_sha256"] = sha256_file(fp32)
    card["files"] = {int8.name: sha256_file(int8)}
    card_path.write_text(json.dumps(card))
    return target
