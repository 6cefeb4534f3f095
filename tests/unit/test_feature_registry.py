"""The feature registry: entries need both halves, the set's name follows its definitions,
and the live set's pieces fit together (streaming parity itself: test_batch_parity.py)."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from collections.abc import Callable

import polars as pl
import pytest

from tests.unit import factories as f
from tickpipe_quant.bars import Bar
from tickpipe_quant.features import (
    COMPONENTS,
    FEATURE_NAMES,
    FEATURE_SET,
    REGISTRY,
    FeatureEngine,
)
from tickpipe_quant.indicators import Return, Sma
from tickpipe_quant.microstructure import mid
from tickpipe_quant.registry import (
    BatchInputs,
    Component,
    Feature,
    FeatureSet,
    StreamingEngine,
)

RET = Component(
    "ret", Return, "close", lambda x, lag: {"value": x.close / x.close.shift(lag) - 1.0}, {"lag": 1}
)
SMA = Component(
    "sma", Sma, "close", lambda x, period: {"value": x.close.rolling_mean(period)}, {"period": 3}
)
RET_F = Feature("ret", "ret.value", lambda x: x["ret.value"])
SMA_F = Feature("sma_dev", "close / sma.value - 1.0", lambda x: x.close / x["sma.value"] - 1.0)


def _set(*features: Feature, components: tuple[Component, ...] = (RET, SMA)) -> FeatureSet:
    return FeatureSet(components, features or (RET_F, SMA_F), helpers=(mid,))


def _bars(closes: list[float]) -> list[Bar]:
    return [
        Bar(i, i + 1, c, c + 1, c - 1, c, 2.0, 2.0 * c, 3, 1.5, 0.5) for i, c in enumerate(closes)
    ]


def test_feature_when_batch_half_missing_cannot_be_registered() -> None:
    with pytest.raises(TypeError, match=r"feature 'spread': no batch half \(batch=\)"):
        Feature("spread", "ask - bid", None)  # type: ignore[arg-type]  # the case under test


@pytest.mark.parametrize("stream", [None, "", "  ", lambda engine, bar: bar.close])
def test_feature_when_streaming_half_missing_cannot_be_registered(stream: object) -> None:
    with pytest.raises(TypeError, match=r"feature 'spread': no streaming half \(stream=\)"):
        Feature("spread", stream, lambda x: x.ask - x.bid)  # type: ignore[arg-type]


def test_feature_when_streaming_half_is_no_expression_raises_naming_it() -> None:
    with pytest.raises(ValueError, match=r"feature 'spread': streaming half .* not an expression"):
        Feature("spread", "spread = ask - bid", lambda x: x.ask - x.bid)


@pytest.mark.parametrize(
    ("indicator", "batch", "half"),
    [(None, RET.batch, "streaming"), (Return, None, "batch")],
)
def test_component_when_a_half_missing_cannot_be_registered(
    indicator: object, batch: object, half: str
) -> None:
    with pytest.raises(TypeError, match=rf"component 'ret': no {half} half"):
        Component("ret", indicator, "close", batch)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("features", "components", "error"),
    [
        (
            (Feature("x", "close / smaa.value", SMA_F.batch),),
            (SMA,),
            r"'x': unknown names \['smaa'\]",
        ),
        ((RET_F, RET_F), (RET,), r"feature names registered twice: \['ret'\]"),
        ((RET_F,), (RET, SMA), r"components no feature reads: \['sma'\]"),
        (
            (Feature("m", "mid(bid, ask)", lambda x: x.bid),),
            (Component("mid", Sma, "close", SMA.batch),),
            "named like a helper",
        ),
        ((), (), "at least one feature"),
    ],
)
def test_feature_set_when_entries_do_not_fit_raises_naming_them(
    features: tuple[Feature, ...], components: tuple[Component, ...], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        FeatureSet(components, features, helpers=(mid,))


@pytest.mark.parametrize(
    "changed",
    [
        lambda: _set(RET_F, dataclasses.replace(SMA_F, stream="close / sma.value")),
        lambda: _set(RET_F, dataclasses.replace(SMA_F, revision=1)),
        lambda: _set(SMA_F, RET_F),  # order is part of the vector
        lambda: _set(RET_F, SMA_F, Feature("ret2", "ret.value * 2", lambda x: x["ret.value"] * 2)),
        lambda: _set(components=(RET, dataclasses.replace(SMA, params={"period": 4}))),
        lambda: _set(components=(RET, dataclasses.replace(SMA, revision=1))),
        lambda: _set(
            components=(RET, dataclasses.replace(SMA, indicator=Return, params={"lag": 3}))
        ),
    ],
    ids=["stream", "feature-revision", "order", "added", "params", "component-revision", "class"],
)
def test_feature_set_name_when_an_entry_definition_changes_changes(
    changed: Callable[[], FeatureSet],
) -> None:
    before = _set()

    after = changed()

    assert after.set_name(f.SECOND) != before.set_name(f.SECOND)
    assert after.set_name(f.SECOND).startswith("bars1s.")


def test_feature_set_name_when_only_layout_or_tolerance_changes_stays() -> None:
    spaced = dataclasses.replace(SMA_F, stream="close/sma.value  -  1.0", exact=False)

    assert _set(RET_F, spaced).digest == _set().digest == _set().digest


def test_live_feature_set_when_any_entry_changes_changes_name() -> None:
    rsi = next(i for i, c in enumerate(COMPONENTS) if c.name == "rsi")
    components = list(COMPONENTS)
    components[rsi] = dataclasses.replace(COMPONENTS[rsi], params={"period": 15})

    other = FeatureSet(components, REGISTRY.features, tuple(REGISTRY.helpers.values()))

    assert other.set_name(f.SECOND) != FEATURE_SET


def test_shipped_model_card_when_read_names_the_live_feature_set() -> None:
    card = json.loads((f.MODEL_DIR / "card.json").read_text())

    assert card["feature_set"] == FEATURE_SET
    assert card["feature_names"] == list(FEATURE_NAMES)


def test_feature_set_when_built_from_entries_streams_and_batches_the_same_values() -> None:
    class Engine(StreamingEngine, features=_set()):
        __slots__ = ()

    closes = [100.0, 101.0, 99.5, 102.0, 102.0, 100.25]
    engine = Engine()
    streamed = [engine.on_bar(bar) for bar in _bars(closes)]

    batch = pl.DataFrame({"close": closes}).with_columns(_set().exprs())

    assert streamed[:2] == [None, None]  # SMA(3) warming up
    rows = [tuple(v.values()) for v in streamed[2:] if v is not None]
    assert rows == batch.select("ret", "sma_dev").rows()[2:]


def test_live_components_when_batched_mirror_the_streaming_attributes() -> None:
    x = BatchInputs(COMPONENTS)
    for component, indicator in zip(COMPONENTS, REGISTRY.build(), strict=True):
        outputs = component.batch(x, **component.params)
        assert outputs, component.name
        missing = [a for a in outputs if not hasattr(indicator, a)]
        assert missing == [], component.name


def test_feature_engine_when_snapshotted_keeps_one_entry_per_component() -> None:
    engine = FeatureEngine()
    for bar in _bars([100.0 + i for i in range(40)]):
        engine.on_bar(bar)

    state = engine.state()
    fresh = FeatureEngine()
    fresh.load(state)

    assert set(state) == {f"_{c.name}" for c in COMPONENTS} | {
        "_bid",
        "_ask",
        "_bid_size",
        "_ask_size",
    }
    assert fresh.state() == state
    with pytest.raises(ValueError, match="FeatureEngine: snapshot holds"):
        fresh.load({k: v for k, v in state.items() if k != "_macd"})


def test_feature_engine_when_imported_and_run_needs_no_polars() -> None:
    code = (
        "import sys\n"
        "from tickpipe_quant.bars import Bar\n"
        "from tickpipe_quant.features import FeatureEngine\n"
        "e = FeatureEngine()\n"
        "e.on_bar(Bar(0, 1, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1, 1.0, 0.0))\n"
        "assert 'polars' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_feature_engine_when_warm_returns_finite_vector_in_set_order() -> None:
    engine = FeatureEngine()
    engine.on_quote(99.0, 101.0, 1.0, 2.0)

    vectors = [engine.on_bar(bar) for bar in _bars([100.0 + (i % 7) for i in range(40)])]

    assert vectors[32] is None and vectors[33] is not None  # MACD's signal: bar 26 + 9 - 1
    assert tuple(vectors[-1] or ()) == FEATURE_NAMES
    assert all(math.isfinite(v) for v in (vectors[-1] or {}).values())
