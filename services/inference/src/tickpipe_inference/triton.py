"""A Triton Inference Server model repository for an exported model.

    <model dir>/triton/<triton name>/config.pbtxt
    <model dir>/triton/<triton name>/1/model.onnx

`tritonserver --model-repository <model dir>/triton` serves it with the onnxruntime backend.
The config is read off the ONNX graph itself, so names, types and shapes cannot drift from
the model; a unit test parses the file against Triton's ModelConfig schema to hold that.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
from onnx import TensorProto

MAX_BATCH_SIZE = 256
# Triton's DataType names (model_config.proto) for the ONNX element types a model may use.
TRITON_TYPES: dict[int, str] = {
    TensorProto.BOOL: "TYPE_BOOL",
    TensorProto.UINT8: "TYPE_UINT8",
    TensorProto.INT8: "TYPE_INT8",
    TensorProto.INT32: "TYPE_INT32",
    TensorProto.INT64: "TYPE_INT64",
    TensorProto.FLOAT16: "TYPE_FP16",
    TensorProto.FLOAT: "TYPE_FP32",
    TensorProto.DOUBLE: "TYPE_FP64",
    TensorProto.STRING: "TYPE_STRING",
}


def _tensor_block(value: onnx.ValueInfoProto) -> str:
    tensor = value.type.tensor_type
    dims = list(tensor.shape.dim)
    if not dims or dims[0].HasField("dim_value"):
        # Triton batches along a leading dimension the config leaves out: it must be free.
        raise ValueError(f"{value.name}: the first dimension must be the dynamic batch")
    rest = [d.dim_value if d.HasField("dim_value") else -1 for d in dims[1:]]
    return (
        "  {\n"
        f'    name: "{value.name}"\n'
        f"    data_type: {TRITON_TYPES[tensor.elem_type]}\n"
        f"    dims: [ {', '.join(str(d) for d in rest)} ]\n"
        "  }"
    )


def triton_config(model: onnx.ModelProto, name: str, max_batch_size: int = MAX_BATCH_SIZE) -> str:
    """config.pbtxt for `model`, served under `name` with Triton's dynamic batcher."""
    weights = {init.name for init in model.graph.initializer}
    inputs = ",\n".join(_tensor_block(v) for v in model.graph.input if v.name not in weights)
    outputs = ",\n".join(_tensor_block(v) for v in model.graph.output)
    return (
        f'name: "{name}"\n'
        'platform: "onnxruntime_onnx"\n'
        f"max_batch_size: {max_batch_size}\n"
        f"input [\n{inputs}\n]\n"
        f"output [\n{outputs}\n]\n"
        "dynamic_batching {\n  max_queue_delay_microseconds: 100\n}\n"
        "# tickpipe's models are small: a GPU round trip costs more than their arithmetic.\n"
        "instance_group [\n  {\n    count: 1\n    kind: KIND_CPU\n  }\n]\n"
    )


def write_triton_model(onnx_path: Path, repository: Path, name: str) -> Path:
    """Writes `<repository>/<name>/{config.pbtxt, 1/model.onnx}`; returns the model folder."""
    folder = repository / name
    (folder / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, folder / "1" / "model.onnx")
    config = triton_config(onnx.load(str(onnx_path)), name)
    (folder / "config.pbtxt").write_text(config)
    return folder
