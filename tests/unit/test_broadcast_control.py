"""Broadcast inputs (`ServiceSpec.broadcast`): every replica of inference reads every
command on control.v1, outside the consumer group, so a model reload reaches all of them;
a replica that starts later serves the model last reloaded (from control.v1's history)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.unit import factories as f
from tests.unit.inference_models import register, register_inverted
from tickpipe.app import load_specs, make_stream_runner
from tickpipe.bus.memory import MemoryBus
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import ControlAction
from tickpipe.runner import StreamRunner, encode_emit
from tickpipe.service import Emit, ServiceContext, ServiceSpec
from tickpipe.settings import PlatformSettings
from tickpipe.telemetry.tracing import make_tracer
from tickpipe.topics import CONTROL
from tickpipe_inference.handlers import InferenceHandler


def _replica(
    bus: MemoryBus, registry: Path, instance: str
) -> tuple[InferenceHandler, StreamRunner]:
    spec = load_specs()["inference"]
    clock = SimClock(f.T0)
    ctx = ServiceContext(
        PlatformSettings(instance_id=instance),
        bus,
        MemoryCache(clock),
        clock,
        EventIds(clock, seed=1),
        threading.Event(),
    )
    settings = spec.settings_from(
        {"registry": str(registry), "model_dir": str(registry / "baseline" / "v1")}
    )
    handler = spec.make(ctx, settings)
    assert isinstance(handler, InferenceHandler)
    runner = make_stream_runner(spec, handler, ctx, make_tracer("test"))
    runner.start(ctx)
    return handler, runner


def _reload(bus: MemoryBus, version: str) -> None:
    command = f.control(
        ControlAction.RELOAD_MODEL,
        target="inference",
        args={"name": "baseline", "version": version},
        event_id=f"01RELOAD{version}",
    )
    bus.append(encode_emit(Emit(CONTROL, command, key=command.compaction_key), ()))


def test_inference_replicas_when_a_reload_is_published_each_serves_the_new_model(
    tmp_path: Path,
) -> None:
    register(tmp_path, "v1")
    register_inverted(tmp_path, "v2")
    bus = MemoryBus()
    replicas = [_replica(bus, tmp_path, name) for name in ("a", "b", "c")]
    assert {h.model.card.version for h, _ in replicas} == {"v1"}
    _reload(bus, "v2")
    for _, runner in replicas:
        runner.step(0.0)
    assert [h.model.card.version for h, _ in replicas] == ["v2", "v2", "v2"]
    late, _ = _replica(bus, tmp_path, "d")  # starts after the reload: serves v2 as well
    assert late.model.card.version == "v2"


def test_service_spec_refuses_broadcast_outside_inputs_or_with_transactions() -> None:
    spec = load_specs()["inference"]
    fields = {
        "name": "x",
        "order": 1,
        "outputs": (),
        "settings": spec.settings,
        "build": spec.build,
    }
    with pytest.raises(ValueError, match="broadcast topics must be inputs"):
        ServiceSpec(inputs=("features.v1",), broadcast=(CONTROL,), **fields)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="transactional"):
        ServiceSpec(
            inputs=(CONTROL,),
            broadcast=(CONTROL,),
            transactional=True,
            **fields,  # type: ignore[arg-type]
        )
