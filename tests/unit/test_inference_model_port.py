"""The model port: InferenceHandler serves any object with a card, a version and
`predict_proba`, and reloads from any `ModelSource`; no onnxruntime involved."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

from tests.unit import factories as f
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import ControlAction, ControlCommand, Event, FeatureVector, Signal
from tickpipe.service import Rejected
from tickpipe.topics import CONTROL, FEATURES
from tickpipe_inference.domain.model import Model, ModelCard, ModelError
from tickpipe_inference.handlers import InferenceHandler
from tickpipe_quant.features import FEATURE_NAMES, FEATURE_SET


@dataclass(frozen=True)
class Logistic:
    """P(up) = sigmoid(bias + weight * the one feature it looks at), in plain Python."""

    card: ModelCard
    feature: str
    weight: float
    bias: float = 0.0

    @property
    def version(self) -> str:
        return f"{self.card.name}:{self.card.version}"

    def p_up(self, value: float) -> float:
        return 1.0 / (1.0 + math.exp(-(self.bias + self.weight * value)))

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        column = self.card.feature_names.index(self.feature)
        return np.array([self.p_up(row[column]) for row in rows.tolist()])


class Shelf:
    """A `ModelSource` holding its models in a dict."""

    def __init__(self, *models: Model) -> None:
        self._models = {(m.card.name, m.card.version): m for m in models}

    def load(self, name: str, version: str) -> Model:
        try:
            return self._models[(name, version)]
        except KeyError:
            raise ModelError(f"no model {name}:{version}") from None


def _card(version: str, names: tuple[str, ...] = FEATURE_NAMES) -> ModelCard:
    return ModelCard("trend", version, FEATURE_SET, names)


V1 = Logistic(_card("v1"), "ema_fast_dev", weight=1000.0)
V2 = Logistic(_card("v2"), "ema_fast_dev", weight=-1000.0, bias=0.5)  # other weights
OTHER_FEATURES = Logistic(_card("v3", FEATURE_NAMES[::-1]), "ema_fast_dev", weight=1.0)


def _handler(source: Shelf | None = None) -> InferenceHandler:
    return InferenceHandler(
        V1,
        EventIds(SimClock(f.T0), seed=3),
        MemoryCache(),
        "trend",
        registry=source or Shelf(V1, V2, OTHER_FEATURES),
    )


def _vector(ema_fast_dev: float, i: int = 0) -> FeatureVector:
    values = dict(f.feature_vector().values)
    values["ema_fast_dev"] = ema_fast_dev
    return f.feature_vector(values=values, event_id=f"01FV{i:04d}")


def _reload(version: str) -> ControlCommand:
    return f.control(
        ControlAction.RELOAD_MODEL, target="inference", args={"name": "trend", "version": version}
    )


def _signal(handler: InferenceHandler, x: float) -> Signal:
    (emit,) = handler.handle(_vector(x), FEATURES, f.T0)
    assert isinstance(emit.event, Signal)
    return emit.event


def test_inference_handler_when_model_is_plain_python_scores_with_it() -> None:
    handler = _handler()

    up, down = _signal(handler, 0.002), _signal(handler, -0.002)

    assert up.model_version == "trend:v1"
    assert up.probability == pytest.approx(V1.p_up(0.002))
    assert (up.direction, down.direction) == (1, -1)


def test_inference_handler_when_plain_model_batched_equals_one_at_a_time() -> None:
    xs = [0.002, -0.001, 0.0, 0.0005]
    items: list[tuple[Event, str]] = [(_vector(x, i), FEATURES) for i, x in enumerate(xs)]

    results = _handler().handle_batch(items, f.T0)

    probabilities = []
    for result in results:
        assert not isinstance(result, Exception)
        signal = result[0].event
        assert isinstance(signal, Signal)
        probabilities.append(signal.probability)
    assert probabilities == pytest.approx([V1.p_up(x) for x in xs])


def test_inference_reload_when_plain_source_has_version_then_its_weights_score() -> None:
    handler = _handler()
    before = _signal(handler, 0.002)

    assert handler.handle(_reload("v2"), CONTROL, f.T0) == ()

    after = _signal(handler, 0.002)
    assert after.model_version == "trend:v2"
    assert after.probability == pytest.approx(V2.p_up(0.002))
    assert (before.direction, after.direction) == (1, -1)


def test_inference_handler_when_plain_model_restored_then_serves_the_snapshotted_one() -> None:
    handler = _handler()
    handler.handle(_reload("v2"), CONTROL, f.T0)
    restarted = _handler()

    restarted.restore(handler.snapshot())

    assert _signal(restarted, 0.002).probability == pytest.approx(V2.p_up(0.002))


@pytest.mark.parametrize(
    ("version", "detail"), [("v9", "no model trend:v9"), ("v3", "feature names differ")]
)
def test_inference_reload_when_plain_source_refuses_or_features_differ_then_old_model_serves(
    version: str, detail: str
) -> None:
    handler = _handler()

    with pytest.raises(Rejected) as info:
        handler.handle(_reload(version), CONTROL, f.T0)

    assert info.value.reason == "model_reload_failed"
    assert detail in info.value.detail
    assert _signal(handler, 0.002).model_version == "trend:v1"


def test_inference_handler_when_no_source_configured_then_reload_rejected() -> None:
    handler = InferenceHandler(V1, EventIds(SimClock(f.T0), seed=3), MemoryCache(), "trend")

    with pytest.raises(Rejected, match="no model registry"):
        handler.handle(_reload("v2"), CONTROL, f.T0)


def test_inference_handler_when_imported_then_onnxruntime_is_not() -> None:
    # The handler and the domain are pure: onnxruntime comes only with the ONNX adapter.
    code = (
        "import sys\n"
        "import tickpipe_inference.handlers, tickpipe_inference.domain.model\n"
        "assert 'onnxruntime' not in sys.modules, 'onnxruntime was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
