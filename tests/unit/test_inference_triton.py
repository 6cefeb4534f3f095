"""The Triton model repository `tickpipe train` writes agrees with the real ONNX models.

config.pbtxt is parsed with protobuf's text format against the part of Triton's
`inference.ModelConfig` schema (common/protobuf/model_config.proto, same field numbers) that
tickpipe writes, so a misspelled field or enum value fails to parse, as it would in Triton.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from onnx import TensorProto, helper

from tests.unit import factories as f
from tickpipe_inference.triton import triton_config
from tickpipe_quant.features import FEATURE_NAMES

N = len(FEATURE_NAMES)  # the feature set's width: the model's input

REPOSITORY = f.MODEL_DIR / "triton"
MODELS = {"baseline": "model.onnx", "baseline_int8": "model.int8.onnx"}

_F = descriptor_pb2.FieldDescriptorProto
DATA_TYPES = [
    "TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64",
    "TYPE_INT8", "TYPE_INT16", "TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32",
    "TYPE_FP64", "TYPE_STRING", "TYPE_BF16",
]  # fmt: skip
# onnxruntime's type strings as Triton names them (independent of tickpipe's own table).
ORT_TO_TRITON = {
    "tensor(float)": "TYPE_FP32",
    "tensor(double)": "TYPE_FP64",
    "tensor(int64)": "TYPE_INT64",
    "tensor(int32)": "TYPE_INT32",
}


def _message(
    file: descriptor_pb2.FileDescriptorProto, name: str, fields: list[tuple[Any, ...]]
) -> None:
    msg = file.message_type.add(name=name)
    for field_name, number, kind, *rest in fields:
        repeated = bool(rest and rest[0] == "repeated")
        type_name = rest[-1] if rest and rest[-1] != "repeated" else None
        field = msg.field.add(
            name=field_name,
            number=number,
            type=kind,
            label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
        )
        if type_name:
            field.type_name = f".inference.{type_name}"


def _model_config_class() -> Any:
    file = descriptor_pb2.FileDescriptorProto(
        name="tickpipe_model_config_subset.proto", package="inference", syntax="proto3"
    )
    data_type = file.enum_type.add(name="DataType")
    for number, name in enumerate(DATA_TYPES):
        data_type.value.add(name=name, number=number)
    kind = file.enum_type.add(name="Kind")
    for number, name in enumerate(["KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"]):
        kind.value.add(name=name, number=number)
    tensor = [("name", 1, _F.TYPE_STRING), ("data_type", 2, _F.TYPE_ENUM, "DataType")]
    _message(file, "ModelInput", [*tensor, ("dims", 4, _F.TYPE_INT64, "repeated")])
    _message(file, "ModelOutput", [*tensor, ("dims", 3, _F.TYPE_INT64, "repeated")])
    _message(
        file,
        "ModelDynamicBatching",
        [
            ("preferred_batch_size", 1, _F.TYPE_INT32, "repeated"),
            ("max_queue_delay_microseconds", 2, _F.TYPE_UINT64),
        ],
    )
    _message(
        file,
        "ModelInstanceGroup",
        [("count", 2, _F.TYPE_INT32), ("kind", 4, _F.TYPE_ENUM, "Kind")],
    )
    _message(
        file,
        "ModelConfig",
        [
            ("name", 1, _F.TYPE_STRING),
            ("platform", 2, _F.TYPE_STRING),
            ("max_batch_size", 4, _F.TYPE_INT32),
            ("input", 5, _F.TYPE_MESSAGE, "repeated", "ModelInput"),
            ("output", 6, _F.TYPE_MESSAGE, "repeated", "ModelOutput"),
            ("instance_group", 7, _F.TYPE_MESSAGE, "repeated", "ModelInstanceGroup"),
            ("dynamic_batching", 11, _F.TYPE_MESSAGE, "ModelDynamicBatching"),
        ],
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


ModelConfig = _model_config_class()


def parse_config(text: str) -> Any:
    return text_format.Parse(text, ModelConfig())


def _tensors(config_tensors: Any) -> list[tuple[str, str, list[int]]]:
    return [(t.name, DATA_TYPES[t.data_type], [int(d) for d in t.dims]) for t in config_tensors]


def _session_tensors(args: list[Any]) -> list[tuple[str, str, list[int]]]:
    """Name, Triton type and dims after the batch dimension (-1 where free)."""
    return [
        (a.name, ORT_TO_TRITON[a.type], [d if isinstance(d, int) else -1 for d in a.shape[1:]])
        for a in args
    ]


def mismatches(config: Any, onnx_path: Path) -> list[str]:
    """How a parsed config disagrees with the model onnxruntime loads; empty when it fits."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    problems = []
    if config.platform != "onnxruntime_onnx":
        problems.append(f"platform {config.platform!r}")
    if config.max_batch_size <= 0:
        problems.append("max_batch_size must be positive: the model's first dim is the batch")
    args = [*session.get_inputs(), *session.get_outputs()]
    problems += [f"{a.name}: fixed batch dimension" for a in args if isinstance(a.shape[0], int)]
    for kind, ours, real in (
        ("input", _tensors(config.input), _session_tensors(session.get_inputs())),
        ("output", _tensors(config.output), _session_tensors(session.get_outputs())),
    ):
        if ours != real:
            problems.append(f"{kind}: config {ours} but model {real}")
    return problems


@pytest.mark.parametrize("name", sorted(MODELS))
def test_triton_repository_when_parsed_then_matches_the_real_model(name: str) -> None:
    folder = REPOSITORY / name
    config = parse_config((folder / "config.pbtxt").read_text())

    assert config.name == name  # Triton requires the folder name
    assert (folder / "1" / "model.onnx").read_bytes() == (f.MODEL_DIR / MODELS[name]).read_bytes()
    assert mismatches(config, folder / "1" / "model.onnx") == []
    assert _tensors(config.input) == [("features", "TYPE_FP32", [N])]
    assert _tensors(config.output) == [("probabilities", "TYPE_FP32", [2])]
    assert config.HasField("dynamic_batching")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('name: "features"', 'name: "input"'),
        (f"data_type: TYPE_FP32\n    dims: [ {N} ]", f"data_type: TYPE_FP64\n    dims: [ {N} ]"),
        (f"dims: [ {N} ]", f"dims: [ {N - 1} ]"),
        (f"dims: [ {N} ]", f"dims: [ -1, {N} ]"),
        ("dims: [ 2 ]", "dims: [ 1 ]"),
        ('name: "probabilities"', 'name: "label"'),
        ("max_batch_size: 256", "max_batch_size: 0"),
        ('"onnxruntime_onnx"', '"tensorrt_plan"'),
    ],
)
def test_triton_mismatches_when_config_is_wrong_then_reported(old: str, new: str) -> None:
    path = REPOSITORY / "baseline" / "config.pbtxt"
    text = path.read_text()
    assert old in text

    assert mismatches(parse_config(text.replace(old, new, 1)), path.parent / "1" / "model.onnx")


@pytest.mark.parametrize("typo", ["data_typ: TYPE_FP32", "data_type: TYPE_FLOAT"])
def test_triton_config_when_field_or_type_misspelled_then_does_not_parse(typo: str) -> None:
    text = (REPOSITORY / "baseline" / "config.pbtxt").read_text()

    with pytest.raises(text_format.ParseError):
        parse_config(text.replace("data_type: TYPE_FP32", typo, 1))


def test_triton_config_when_batch_dimension_fixed_then_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(tmp_path / "fixed.onnx"))
    hand_written = parse_config(
        'platform: "onnxruntime_onnx" max_batch_size: 4 '
        'input { name: "x" data_type: TYPE_FP32 dims: [3] } '
        'output { name: "y" data_type: TYPE_FP32 dims: [3] }'
    )

    with pytest.raises(ValueError, match="dynamic batch"):
        triton_config(model, "fixed")
    assert mismatches(hand_written, tmp_path / "fixed.onnx") == [
        "x: fixed batch dimension",
        "y: fixed batch dimension",
    ]


def test_triton_config_when_model_has_int64_output_then_typed_and_shaped_from_the_graph(
    tmp_path: Path,
) -> None:
    graph = helper.make_graph(
        [helper.make_node("ArgMax", ["x"], ["label"], axis=1, keepdims=1)],
        "argmax",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["N", 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(tmp_path / "m.onnx"))

    config = parse_config(triton_config(model, "argmax"))

    assert _tensors(config.output) == [("label", "TYPE_INT64", [1])]
    assert mismatches(config, tmp_path / "m.onnx") == []
