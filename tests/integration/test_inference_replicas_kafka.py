"""A model reload reaches every inference replica, against real Kafka: control.v1 is a
broadcast input (read by each replica in full, outside the consumer group; one partition in
the group would give each command to one replica of several), and a replica started after
the reload serves the reloaded model from its first record (control.v1's history)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.integration.outage import metric
from tests.integration.recovery import service_env, wait_until
from tests.unit import factories as f
from tests.unit.inference_models import register, register_inverted
from tickpipe.bus.admin import create_topics
from tickpipe.bus.kafka import KafkaBus
from tickpipe.messages import ControlAction
from tickpipe.processes import ServiceProcesses
from tickpipe.runner import encode_emit
from tickpipe.service import Emit
from tickpipe.topics import CONTROL, TopicNames

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

V1, V2 = "baseline:v1", "baseline:v2"


def _serving(procs: ServiceProcesses, name: str) -> str | None:
    """The model version the replica's /metrics says it serves."""
    try:
        text = procs.metrics(name)
    except OSError:
        return None
    serving = [v for v in (V1, V2) if metric(text, "tickpipe_model_info", version=v) == 1]
    return serving[0] if len(serving) == 1 else None


def test_inference_replicas_when_a_reload_is_published_all_serve_it(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    registry = tmp_path / "models"
    register(registry, "v1")
    register_inverted(registry, "v2")
    namespace = f"inf{uuid.uuid4().hex[:8]}"
    names = TopicNames(namespace)
    create_topics(kafka_bootstrap, names)
    env = service_env(
        kafka_bootstrap,
        redis_url,
        namespace,
        TICKPIPE_INFERENCE_REGISTRY=str(registry),
        TICKPIPE_INFERENCE_MODEL_DIR=str(registry / "baseline" / "v1"),
    )
    procs = ServiceProcesses(env, tmp_path / "logs", base_port=None)
    replicas = ["inference-a", "inference-b"]
    try:
        for name in replicas:
            procs.start(name, {"TICKPIPE_INSTANCE_ID": name}, service="inference")
        procs.wait_ready(replicas)
        assert [_serving(procs, n) for n in replicas] == [V1, V1]

        producer = KafkaBus(kafka_bootstrap, names).producer("test-control")
        command = f.control(
            ControlAction.RELOAD_MODEL,
            target="inference",
            args={"name": "baseline", "version": "v2"},
            event_id=f"01RELOAD{uuid.uuid4().hex[:8].upper()}",
        )
        producer.send(encode_emit(Emit(CONTROL, command, key=command.compaction_key), ()))
        producer.flush()
        producer.close()
        wait_until(
            lambda: [_serving(procs, n) for n in replicas] == [V2, V2],
            lambda: f"serving: {[_serving(procs, n) for n in replicas]}",
            timeout_s=30,
        )
        procs.start("inference-c", {"TICKPIPE_INSTANCE_ID": "inference-c"}, service="inference")
        procs.wait_ready(["inference-c"])
        assert _serving(procs, "inference-c") == V2, procs.log("inference-c")[-2000:]
    finally:
        codes = procs.stop()
    assert all(code == 0 for code in codes.values()), codes
