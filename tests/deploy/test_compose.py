"""docker-compose.yml as a file: valid against the compose specification's schema and for
Debian's docker-compose 1.29, ordered start-up, services, ports and Prometheus targets that
agree with the code, loopback-only ports, no address outside the compose network, and the
image defaults everywhere the same; docker-compose.secure.yml switches it to SASL_SSL and TLS
with per-service credentials from files. tests/deploy/test_compose_stack.py runs it."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import brokers
from tests.brokers import unavailable
from tests.deploy.engine import clean_env, require_compose
from tests.deploy.tools import ROOT, SERVICES, run, tool
from tickpipe.app import load_specs

COMPOSE = ROOT / "docker-compose.yml"
SECURE = ROOT / "docker-compose.secure.yml"
SECRETS_DIR = "${TICKPIPE_SECRETS_DIR:-.tickpipe/secrets}/"
# `${NAME:-default}`: a value the environment may override.
DEFAULTED = re.compile(r"\$\{(?P<var>[A-Z0-9_]+):-(?P<default>[^}]*)\}")
# Today's public images, as deploy/docker/images.sh names them.
PUBLIC = {
    m["var"]: m["image"]
    for m in re.finditer(
        r"^PUBLIC_(?P<var>[A-Z]+)=(?P<image>\S+)$",
        (ROOT / "deploy/docker/images.sh").read_text(),
        re.M,
    )
}


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
        assert s["ports"] == [f"127.0.0.1:${{{name.upper()}_HOST_PORT:-{port}}}:{port}"]
        assert _env(s)["TICKPIPE_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert _env(s)["TICKPIPE_REDIS_URL"] == "redis://redis:6379/0"
        assert _env(s)["TICKPIPE_HTTP_HOST"] == "0.0.0.0"
        assert s["build"] == {
            "context": ".",
            "dockerfile": "deploy/Dockerfile",
            "args": {"PYTHON_IMAGE": f"${{PYTHON_IMAGE:-{PUBLIC['PYTHON']}}}"},
        }
        assert s["read_only"] is True and s["cap_drop"] == ["ALL"]


def test_start_up_when_composed_then_ordered_by_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["topics"]["command"][:2] == ["topics", "create"]
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
    assert kafka["image"] == f"${{KAFKA_IMAGE:-{PUBLIC['KAFKA']}}}"
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
        given = DEFAULTED.fullmatch(image)
        image = given["default"] if given else image
        assert re.fullmatch(r"[\w./-]+:v?\d+(\.\d+)+(-[\w.]+)?", image), f"{name}: {image}"


def test_public_images_when_named_anywhere_then_the_same_tags() -> None:
    """images.sh, the compose file, the Dockerfile and the broker fixtures agree on today's
    public images (the defaults where no local equivalent is asked for)."""
    assert set(PUBLIC) == {"PYTHON", "KAFKA", "REDIS", "PROMETHEUS"}
    text = COMPOSE.read_text()
    for var in ("KAFKA", "REDIS", "PROMETHEUS", "PYTHON"):
        assert f"${{{var}_IMAGE:-{PUBLIC[var]}}}" in text, var
    dockerfile = (ROOT / "deploy/Dockerfile").read_text()
    assert f"ARG PYTHON_IMAGE={PUBLIC['PYTHON']}\n" in dockerfile
    assert PUBLIC["KAFKA"] == brokers.KAFKA_IMAGE
    assert PUBLIC["REDIS"] == brokers.REDIS_IMAGE


def test_profiles_when_composed_then_the_core_stack_needs_no_profiled_service(
    compose: dict[str, Any],
) -> None:
    """`up` without a profile starts Kafka, Redis, topics, the services and Prometheus; the
    images without Debian packages (Grafana, the Collector, Jaeger) are profile
    `observability`, never a dependency of the core."""
    services = compose["services"]
    core = {n for n, s in services.items() if not s.get("profiles")}
    assert core == {"kafka", "redis", "topics", "prometheus", *SERVICES}
    assert services["api"]["profiles"] == ["api"]
    for name in ("grafana", "otel-collector", "jaeger"):
        assert services[name]["profiles"] == ["observability"], name
    for name in (*core, "api"):
        assert set(services[name].get("depends_on", {})) <= core, name


def _hosts(value: str) -> set[str]:
    """Host names in a setting: URLs, `host:port` lists and JSON maps of URLs."""
    found = set()
    for url in re.findall(r"[a-z]+://([^/:\s\"',]+)", value):
        found.add(url)
    if "://" not in value:
        for item in value.split(","):
            host, sep, port = item.strip().partition(":")
            if sep and port.isdigit():
                found.add(host.rpartition("@")[2])  # a KRaft voter is id@host:port
    return found


def test_addresses_when_composed_then_only_compose_services_and_loopback_ports(
    compose: dict[str, Any],
) -> None:
    """Containers talk to each other on the compose network, and the host to them on ports
    published on 127.0.0.1: nothing addresses another host."""
    names = set(compose["services"])
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        t.split(":")[0]
        for job in config["scrape_configs"]
        for sc in job["static_configs"]
        for t in sc["targets"]
    }
    assert targets <= names | {"localhost"}
    for name, s in compose["services"].items():
        assert "network_mode" not in s and "extra_hosts" not in s and "dns" not in s, name
        assert "networks" not in s, name  # the project's default network only
        for port in s.get("ports", []):
            # Loopback only, at a port a *_HOST_PORT variable moves.
            assert re.fullmatch(r"127\.0\.0\.1:\$\{[A-Z]+_HOST_PORT:-\d+\}:\d+", port), name
        for var, value in _env(s).items():
            for host in _hosts(DEFAULTED.sub(lambda m: m["default"], value)):
                assert host in names | {"localhost"}, f"{name}: {var} names {host}"
    assert "networks" not in compose


def test_compose_files_when_read_by_debians_docker_compose_then_accepted(tmp_path: Path) -> None:
    """docker-compose 1.29 (what `make docker-engine` installs) reads both files: no keys it
    does not know (a top-level `name`, `configs.content`)."""
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    for source in yaml.safe_load(SECURE.read_text())["secrets"].values():
        (secrets_dir / source["file"].removeprefix(SECRETS_DIR)).touch()
    for files in (["-f", COMPOSE], ["-f", COMPOSE, "-f", SECURE]):
        result = subprocess.run(
            [str(require_compose()), *files, "config", "-q"],
            env=clean_env(TICKPIPE_SECRETS_DIR=str(secrets_dir)),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "will be ignored" not in result.stderr, result.stderr


def test_api_when_composed_then_serves_its_port_and_probes_every_service(
    compose: dict[str, Any],
) -> None:
    specs = load_specs()
    api = compose["services"]["api"]
    env = _env(api)
    assert api["command"] == ["api", "serve"]
    port = env["TICKPIPE_API_PORT"]
    assert api["ports"] == [f"127.0.0.1:${{API_HOST_PORT:-{port}}}:{port}"]
    targets = json.loads(env["TICKPIPE_API_HEALTH_TARGETS"])
    assert targets == {n: f"http://{n}:{specs[n].default_http_port}" for n in SERVICES}
    # The key comes from the operator's environment, never from this file.
    assert env["TICKPIPE_API_JWT_KEY"] == "${TICKPIPE_API_JWT_KEY:-}"


# --- docker-compose.secure.yml: the same stack over SASL_SSL and TLS -----------------------

# Every container that runs the image, and the Kafka user it is.
CLIENTS = {**{name: name for name in SERVICES}, "api": "api", "topics": "topics"}


@pytest.fixture(scope="module")
def secure() -> dict[str, Any]:
    return yaml.safe_load(SECURE.read_text())  # type: ignore[no-any-return]


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`docker compose -f base -f override` for one service, in the parts checked here:
    mappings merge, `secrets` add up, `command` and `healthcheck.test` are replaced."""
    merged = {**base, **override}
    merged["environment"] = {**base.get("environment", {}), **override.get("environment", {})}
    merged["secrets"] = base.get("secrets", []) + override.get("secrets", [])
    merged["depends_on"] = {**base.get("depends_on", {}), **override.get("depends_on", {})}
    return merged


def _mounted_secrets(service: dict[str, Any]) -> dict[str, str]:
    """Path in the container -> the top-level secret mounted there."""
    mounted = {}
    for s in service.get("secrets", []):
        source, target = (
            (s, s) if isinstance(s, str) else (s["source"], s.get("target", s["source"]))
        )
        mounted[target if target.startswith("/") else f"/run/secrets/{target}"] = source
    return mounted


def test_secure_override_when_checked_against_the_compose_spec_schema_then_valid() -> None:
    result = run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", SECURE])

    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_when_not_overridden_then_plaintext_without_credentials(
    compose: dict[str, Any],
) -> None:
    for name in CLIENTS:
        env = _env(compose["services"][name])
        assert not {v for v in env if v.startswith(("TICKPIPE_KAFKA_S", "TICKPIPE_REDIS_P"))}
        assert "secrets" not in compose["services"][name]


def test_secure_override_when_merged_then_each_container_uses_its_own_files(
    compose: dict[str, Any], secure: dict[str, Any]
) -> None:
    from tests.deploy.test_k8s import _is_setting, _settings_classes

    classes = _settings_classes()
    declared = secure["secrets"]
    for name, user in CLIENTS.items():
        s = _merged(compose["services"][name], secure["services"][name])
        env = _env(s)
        assert env["TICKPIPE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", name
        assert env["TICKPIPE_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512", name
        assert env["TICKPIPE_KAFKA_SASL_USERNAME"] == f"tickpipe-{user}", name
        mounted = _mounted_secrets(s)
        secret_vars = ("_PASSWORD_FILE", "_CA_FILE", "_CERT_FILE", "_KEY_FILE")
        files = {v: p for v, p in env.items() if v.endswith(secret_vars)}
        assert mounted[files["TICKPIPE_KAFKA_SASL_PASSWORD_FILE"]] == f"kafka-{user}.password"
        assert mounted[files["TICKPIPE_KAFKA_SSL_CA_FILE"]] == "ca.crt", name
        if name != "topics":  # the topics job does not use Redis
            assert env["TICKPIPE_REDIS_URL"] == "rediss://redis:6379/0", name
            assert mounted[files["TICKPIPE_REDIS_PASSWORD_FILE"]] == "redis.password", name
            assert mounted[files["TICKPIPE_REDIS_CA_FILE"]] == "ca.crt", name
        assert set(files.values()) <= set(mounted), f"{name}: a *_FILE names no mounted secret"
        unknown = [v for v in env if v.startswith("TICKPIPE_") and not _is_setting(v, classes)]
        assert not unknown, f"{name}: {unknown}"
        # Secrets come from the untracked secrets folder, never from values in this file.
        for source in mounted.values():
            assert declared[source] == {"file": f"{SECRETS_DIR}{source}"}, source
    assert ".tickpipe/" in (ROOT / ".gitignore").read_text().splitlines()


def test_secure_override_when_merged_then_users_exist_before_any_client_connects(
    compose: dict[str, Any], secure: dict[str, Any]
) -> None:
    users = secure["services"]["kafka-users"]
    assert users["network_mode"] == "service:kafka"  # the broker's loopback listener
    assert users["image"] == compose["services"]["kafka"]["image"]
    assert users["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    script = users["command"][0]
    (loop,) = [line for line in script.splitlines() if line.startswith("for user in")]
    created = set(loop.removeprefix("for user in ").removesuffix("; do").split())
    assert created == set(CLIENTS.values())
    assert set(users["secrets"]) == {f"kafka-{u}.password" for u in created}
    topics = _merged(compose["services"]["topics"], secure["services"]["topics"])
    assert topics["depends_on"]["kafka-users"] == {"condition": "service_completed_successfully"}
    for name in SERVICES:  # ... and the services wait for the topics job, as before
        deps = compose["services"][name]["depends_on"]
        assert deps["topics"] == {"condition": "service_completed_successfully"}


def test_secure_override_when_merged_then_brokers_refuse_plaintext_clients(
    compose: dict[str, Any], secure: dict[str, Any]
) -> None:
    kafka = _env(_merged(compose["services"]["kafka"], secure["services"]["kafka"]))
    protocols = dict(p.split(":") for p in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners = dict(listener.split("://", 1) for listener in kafka["KAFKA_LISTENERS"].split(","))
    for listener, address in listeners.items():
        # Anything reachable from outside the broker's own container speaks SASL_SSL.
        if not address.startswith("localhost:"):
            assert protocols[listener] == "SASL_SSL", listener
    assert "SASL_SSL://kafka:9092" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    assert kafka["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    redis = secure["services"]["redis"]["command"]
    assert redis[redis.index("--port") + 1] == "0"  # no plaintext port
    assert redis[redis.index("--tls-port") + 1] == "6379"
    assert "--aclfile" in redis and "--requirepass" not in redis  # no password in argv


def test_secure_override_secrets_when_made_as_documented_then_exactly_those_declared(
    secure: dict[str, Any], tmp_path: Path
) -> None:
    """The recipe at the top of docker-compose.secure.yml makes every file it mounts."""
    if not shutil.which("openssl"):
        unavailable("openssl not installed")
    lines = SECURE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "mkdir -p -m 0700" in line)
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("#   "):
            break
        recipe.append(line.removeprefix("#   "))
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(recipe)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    made = {p.name for p in tmp_path.iterdir()}
    assert made == {f["file"].removeprefix(SECRETS_DIR) for f in secure["secrets"].values()}
    acl = (tmp_path / "redis-users.acl").read_text()
    password = (tmp_path / "redis.password").read_text().strip()
    assert acl == f"user default on #{hashlib.sha256(password.encode()).hexdigest()} ~* &* +@all\n"
