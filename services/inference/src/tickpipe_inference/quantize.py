"""The INT8 variant: onnxruntime dynamic quantization of the fp32 graph's MatMul.

Weights become int8 once, at export; each call quantizes its input to uint8 over that call's
own min/max (DynamicQuantizeLinear), so an int8 probability depends slightly on the other rows
scored in the same call. The fp32 model does not have that property.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic

# Ops that only exist in a graph that really computes in integers.
INTEGER_OPS = frozenset(
    {
        "DynamicQuantizeLinear",
        "MatMulInteger",
        "ConvInteger",
        "DynamicQuantizeMatMul",
        "MatMulIntegerToFloat",
        "QLinearMatMul",
    }
)


def _not_preprocess_hint(record: logging.LogRecord) -> bool:
    # quantize_dynamic suggests shape inference and fusions first; it already infers shapes
    # itself, and a seven-node graph with static weights has nothing to fuse.
    return "pre-processing before quantization" not in record.getMessage()


def quantize_int8(fp32_path: Path, int8_path: Path) -> Path:
    """Writes the int8 variant of `fp32_path`; raises if nothing was quantized."""
    root = logging.getLogger()
    root.addFilter(_not_preprocess_hint)
    try:
        quantize_dynamic(
            fp32_path, int8_path, op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8
        )
    finally:
        root.removeFilter(_not_preprocess_hint)
    found = integer_ops(onnx.load(str(int8_path)))
    if not found:
        # quantize_dynamic skips ops it does not know and still writes a file: refuse that.
        raise RuntimeError(f"{int8_path}: quantization left no integer ops in the graph")
    return int8_path


def integer_ops(model: onnx.ModelProto) -> set[str]:
    return {node.op_type for node in model.graph.node} & INTEGER_OPS
