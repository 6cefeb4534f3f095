"""docker-compose.yml: valid against the compose specification's schema, ordered start-up,
and services, ports and Prometheus targets that agree with the code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import ROOT, SERVICES, run, tool
from tickpipe.app import load_specs

COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # type: ignore[no-any-return]


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in service.get("environment", {}).items()}


def test_compose_when_checked_against_the_compose_spec_schema_then_valid() -> None:
    result = run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", COMPOSE])

    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_when_a_key_is_misspelled_then_fails(tmp_path: Path) -> None:
    """The schema check can fail: a typo'd service key is an error, not a silent no-op."""
    bad = yaml.safe_load(COMPOSE.read_text())
    bad["services"]["risk"]["depends_onn"] = bad["services"]["risk"].pop("depends_on")
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(bad))

    result = run(
        [
            tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            tmp_path / "docker-compose.yml",
        ]
    )

    assert result.returncode != 0
    assert "depends_onn" in result.stdout + result.stderr


def test_services_when_composed_then_each_runs_itself_on_its_default_port(
    compose: dict[str, Any],
) -> None:
    specs = load_specs()
    for name in SERVICES:
        s = compose["services"][name]
        assert s["command"] == ["run", name]
        port = specs[name].default_http_port
        assert _env(s)["TICKPIPE_HTTP_PORT"] == str(port)
        assert s["ports"] == [f"127.0.0.1:{port}:{port}"]
        assert _env(s)["TICKPIPE_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert _env(s)["TICKPIPE_REDIS_URL"] == "redis://redis:6379/0"
        assert _env(s)["TICKPIPE_HTTP_HOST"] == "0.0.0.0"
        assert s["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
        assert s["read_only"] is True and s["cap_drop"] == ["ALL"]


def test_start_up_when_composed_then_ordered_by_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["topics"]["command"] == ["topics", "create"]
    assert services["topics"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    for name in SERVICES:
        deps = services[name]["depends_on"]
        assert deps["topics"] == {"condition": "service_completed_successfully"}
        assert deps["redis"] == {"condition": "service_healthy"}
    # The source starts last, once the consumers answer.
    ingest = services["ingest"]["depends_on"]
    assert {n for n, d in ingest.items() if d["condition"] == "service_healthy"} >= {
        "feature",
        "risk",
        "execution",
    }
    for name in ("kafka", "redis", "prometheus", "grafana"):
        assert "test" in services[name]["healthcheck"], name


def test_kafka_when_composed_then_single_node_kraft_with_transaction_log_rf_1(
    compose: dict[str, Any],
) -> None:
    kafka = compose["services"]["kafka"]
    env = _env(kafka)
    assert kafka["image"].startswith("apache/kafka:")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    # A KRaft cluster id is 16 bytes, URL-safe base64 without padding.
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_prometheus_when_composed_then_scrapes_every_service_where_it_listens(
    compose: dict[str, Any],
) -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "tickpipe"]
    targets = {sc["labels"]["tickpipe_service"]: sc["targets"] for sc in job["static_configs"]}
    assert set(targets) == set(SERVICES)
    for name, [target] in targets.items():
        assert target == f"{name}:{_env(compose['services'][name])['TICKPIPE_HTTP_PORT']}"
    # A target label named `service` would clash with the series' own and rename it.
    assert all("service" not in sc.get("labels", {}) for sc in job["static_configs"])


def test_mounted_files_when_composed_then_exist_in_the_repository(compose: dict[str, Any]) -> None:
    for name, s in compose["services"].items():
        for volume in s.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source}"


def test_images_when_composed_then_exact_tags(compose: dict[str, Any]) -> None:
    for name, s in compose["services"].items():
        image = s["image"]
        if name in (*SERVICES, "topics", "train", "api"):
            assert image == "${TICKPIPE_IMAGE:-tickpipe:local}"
            continue
        assert re.fullmatch(r"[\w./-]+:v?\d+(\.\d+)+(-[\w.]+)?", image), f"{name}: {image}"


def test_api_when_composed_then_serves_its_port_and_probes_every_service(
    compose: dict[str, Any],
) -> None:
    specs = load_specs()
    api = compose["services"]["api"]
    env = _env(api)
    assert api["command"] == ["api", "serve"]
    assert api["ports"] == [f"127.0.0.1:{env['TICKPIPE_API_PORT']}:{env['TICKPIPE_API_PORT']}"]
    targets = json.loads(env["TICKPIPE_API_HEALTH_TARGETS"])
    assert targets == {n: f"http://{n}:{specs[n].default_http_port}" for n in SERVICES}
    # The key comes from the operator's environment, never from this file.
    assert env["TICKPIPE_API_JWT_KEY"] == "${TICKPIPE_API_JWT_KEY:-}"
