"""A fitted StandardScaler+LogisticRegression as an ONNX graph of standard operators.

skl2onnx would emit the ONNX-ML `Scaler` and `LinearClassifier` ops; onnxruntime's dynamic
quantizer only rewrites standard ops (MatMul, Conv, ...), so an int8 variant of that graph
would be the fp32 graph again. This graph computes the same function with standard ops:

    probabilities = [1 - p, p],  p = Sigmoid(((features - mean) / scale) @ coef + intercept)

The scaling stays a separate step before the MatMul: quantizing standardized inputs (all of
order 1) loses far less than quantizing raw features that span 1e-5 (returns) to 1e2 (RSI).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

INPUT = "features"
OUTPUT = "probabilities"  # the output `OnnxModel` reads: [N, 2], column 1 is P(up)
OPSET = 17
# IR 8 is what opset 17 shipped with: older onnxruntime builds (Triton's among them) load it.
IR_VERSION = 8


def _tensor(name: str, values: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(values, dtype=np.float32), name)


def logistic_to_onnx(model: Pipeline, name: str) -> onnx.ModelProto:
    """The fitted pipeline as a standard-op graph; raises on any other pipeline shape."""
    scaler, clf = model.named_steps.get("scale"), model.named_steps.get("clf")
    if not isinstance(scaler, StandardScaler) or not isinstance(clf, LogisticRegression):
        raise TypeError(
            "expected Pipeline([('scale', StandardScaler), ('clf', LogisticRegression)])"
        )
    if clf.coef_.shape[0] != 1:
        raise ValueError("only a binary LogisticRegression has a single-logit graph")
    n = int(clf.coef_.shape[1])
    mean = scaler.mean_ if scaler.with_mean else np.zeros(n)
    scale = scaler.scale_ if scaler.with_std else np.ones(n)
    initializers = [
        _tensor("mean", mean),
        _tensor("scale", scale),
        _tensor("coef", clf.coef_.T),  # [n, 1]: the MatMul weight the quantizer turns int8
        _tensor("intercept", clf.intercept_),
        _tensor("one", np.ones(1)),
    ]
    nodes = [
        helper.make_node("Sub", [INPUT, "mean"], ["centered"], name="center"),
        helper.make_node("Div", ["centered", "scale"], ["scaled"], name="standardize"),
        helper.make_node("MatMul", ["scaled", "coef"], ["weighted"], name="weights"),
        helper.make_node("Add", ["weighted", "intercept"], ["logit"], name="bias"),
        helper.make_node("Sigmoid", ["logit"], ["p_up"], name="logistic"),
        helper.make_node("Sub", ["one", "p_up"], ["p_down"], name="complement"),
        helper.make_node("Concat", ["p_down", "p_up"], [OUTPUT], name="classes", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        name.replace(":", "_"),
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", n])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", 2])],
        initializers,
    )
    onnx_model = helper.make_model(
        graph,
        producer_name="tickpipe",
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
    )
    onnx_model.doc_string = name
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model
