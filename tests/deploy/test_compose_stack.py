"""docker-compose.yml run for real on the Docker engine.

The image is built as `make images` builds it (air-gapped, from the wheelhouse) under a tag of
this run's own; the core stack (Kafka, Redis, the topics job, the five services, Prometheus and
the operator API) comes up under a compose project of its own, published on loopback ports
picked here; then it is checked from the host as an operator would, and `down -v` leaves
nothing behind. Base images are what `make base-images` recorded in .tickpipe/images.env: the
public ones, or their local equivalents where no registry answers.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
import pytest
import yaml
from confluent_kafka import Consumer
from pydantic import SecretStr

from tests.deploy.engine import (
    COMPOSE,
    DOCKER,
    IMAGES,
    REPORT,
    clean_env,
    docker,
    inspect,
    project_name,
    project_resources,
    remove_orphan_projects,
    remove_project,
    require_engine,
)
from tests.deploy.tools import ROOT, SERVICES, by_kind
from tickpipe.infra import free_port
from tickpipe_api.auth import Role, issue_token

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

# The core stack: every service without a profile, and the API.
PROFILES = ("--profile", "api")
EVERY_PROFILE = ("--profile", "api", "--profile", "observability", "--profile", "jobs")
RUNS_THE_IMAGE = (*SERVICES, "api", "topics")
PUBLISHED = ("kafka", "redis", "prometheus", "api", *SERVICES)
INGEST_SPEED = "10"  # the sample at ten times real time: fills within seconds
ARTIFACTS = ROOT / ".tickpipe" / "artifacts" / "compose"


@dataclass
class Stack:
    project: str
    image: str
    env: dict[str, str]
    ports: dict[str, int]
    jwt_key: str
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    down_done: bool = False

    def compose(
        self, *args: str, timeout: float = 300, profiles: tuple[str, ...] = PROFILES
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(COMPOSE), "-p", self.project, "--project-directory", str(ROOT)]
        argv += ["-f", str(ROOT / "docker-compose.yml"), *profiles, *args]
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "40").stdout[-12000:]

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def containers(self) -> dict[str, dict[str, Any]]:
        """service -> `docker inspect` of its container."""
        ids = self.compose("ps", "-q").stdout.split()
        found = {}
        for c in inspect("container", *ids):
            found[c["Config"]["Labels"]["com.docker.compose.service"]] = c
        return found

    def mark(self, what: str) -> None:
        self.timings.setdefault(what, round(time.monotonic() - self.started, 1))

    def down(self) -> None:
        if self.down_done:
            return
        self.down_done = True
        done = self.compose("down", "-v", "--remove-orphans", "-t", "10", profiles=EVERY_PROFILE)
        if done.returncode != 0:
            remove_project(self.project)  # whatever compose could not, by label
        docker("rmi", self.image, check=False)
        self.mark("down")


def _request(url: str, token: str | None) -> urllib.request.Request:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    return request


def _status(url: str, token: str | None = None) -> int:
    try:
        with urllib.request.urlopen(_request(url, token), timeout=3) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _json(url: str, token: str | None = None) -> Any:
    with urllib.request.urlopen(_request(url, token), timeout=5) as reply:
        return json.loads(reply.read())


def _until(what: str, check: Any, timeout_s: float, stack: Stack) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, ValueError, KeyError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            stack.mark(what)
            return last
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s (last: {last!r})\n{stack.logs()}")


def _build(image: str) -> tuple[float, int]:
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(IMAGES), "tickpipe"],
        env=clean_env(TICKPIPE_IMAGE=image),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-6000:]
    (info,) = inspect("image", image)
    return time.monotonic() - started, int(info["Size"])


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    images = require_engine()
    remove_orphan_projects()
    project = project_name()
    image = f"tickpipe-test:{project}"
    ports: dict[str, int] = {}
    for name in PUBLISHED:
        port = free_port()
        while port in ports.values():
            port = free_port()
        ports[name] = port
    jwt_key = secrets.token_hex(32)  # made here, for this run only; never printed
    env = clean_env(
        **{k: v for k, v in images.items() if k.endswith("_IMAGE") and k != "TICKPIPE_IMAGE"},
        TICKPIPE_IMAGE=image,
        TICKPIPE_API_JWT_KEY=jwt_key,
        TICKPIPE_INGEST_SPEED=INGEST_SPEED,
        OTEL_EXPORTER_OTLP_ENDPOINT="",
        **{f"{name.upper()}_HOST_PORT": str(port) for name, port in ports.items()},
    )
    s = Stack(project, image, env, ports, jwt_key)
    size = 0
    try:
        build_s, size = _build(image)
        s.timings["build"] = round(build_s, 1)
        s.started = time.monotonic()
        up = s.compose("up", "-d", "--no-build", timeout=420)
        assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-4000:] + s.logs()
        s.mark("up")
        yield s
    finally:
        s.down()
        size_mb = size / 1e6
        REPORT.append(
            f"image {size_mb:.0f} MB; compose stack timings (s): "
            + ", ".join(f"{k} {v}" for k, v in s.timings.items())
        )
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        report = {"image_size_bytes": size, "timings_s": s.timings, "images": images}
        (ARTIFACTS / "report.json").write_text(json.dumps(report, indent=2) + "\n")


def test_image_when_run_by_compose_then_uid_10001_on_a_read_only_root(stack: Stack) -> None:
    (image,) = inspect("image", stack.image)
    assert image["Config"]["User"] == "10001:10001"
    containers = stack.containers()
    for name in (*SERVICES, "api"):
        c = containers[name]
        assert c["Config"]["User"] == "10001:10001", name
        assert c["HostConfig"]["ReadonlyRootfs"] is True, name
        assert c["HostConfig"]["CapDrop"] == ["ALL"], name
    ingest = containers["ingest"]["Id"]
    assert docker("exec", ingest, "id", "-u").strip() == "10001"
    # Even root cannot write outside the tmpfs; the service can write its /tmp.
    refused = subprocess.run(
        [str(DOCKER), "exec", "-u", "0", ingest, "touch", "/app/written"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    docker("exec", ingest, "touch", "/tmp/written")


def test_services_when_up_then_each_readyz_answers_on_its_loopback_port(stack: Stack) -> None:
    def all_ready() -> bool:
        return all(_status(stack.url(n, "/readyz")) == 200 for n in (*SERVICES, "api"))

    _until("ready", all_ready, 180, stack)
    topics = stack.containers()["topics"]
    assert topics["State"]["Status"] == "exited"
    assert topics["State"]["ExitCode"] == 0


def test_pipeline_when_up_then_fills_reach_executions_from_the_host(stack: Stack) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": f"127.0.0.1:{stack.ports['kafka']}",
            "group.id": f"compose-test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe(["executions.v1"])
    try:

        def a_fill() -> dict[str, Any] | None:
            message = consumer.poll(1.0)
            if message is None or message.error():
                return None
            report: dict[str, Any] = orjson.loads(message.value() or b"{}")
            return report if Decimal(report.get("last_qty", "0")) > 0 else None

        fill = _until("first fill", a_fill, 240, stack)
    finally:
        consumer.close()
    assert fill["exchange"] == "binance" and Decimal(fill["last_price"]) > 0


def test_prometheus_when_up_then_every_target_up_and_the_alert_rules_loaded(stack: Stack) -> None:
    def targets_up() -> list[dict[str, Any]] | None:
        active = _json(stack.url("prometheus", "/api/v1/targets"))["data"]["activeTargets"]
        return active if active and all(t["health"] == "up" for t in active) else None

    active = _until("targets up", targets_up, 120, stack)
    scraped = {t["labels"].get("tickpipe_service") for t in active} - {None}
    assert scraped == set(SERVICES)

    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    expected = {g["name"]: [r["alert"] for r in g["rules"]] for g in rules["groups"]}

    def rules_evaluated() -> dict[str, list[str]] | None:
        groups = _json(stack.url("prometheus", "/api/v1/rules"))["data"]["groups"]
        evaluated = all(r["health"] == "ok" for g in groups for r in g["rules"])
        return {g["name"]: [r["name"] for r in g["rules"]] for g in groups} if evaluated else None

    assert _until("rules evaluated", rules_evaluated, 60, stack) == expected


def test_api_when_called_with_a_token_then_sees_every_service_and_without_one_refuses(
    stack: Stack,
) -> None:
    token = issue_token(
        SecretStr(stack.jwt_key),
        subject="compose-test",
        role=Role.VIEWER,
        issuer="tickpipe",
        audience="tickpipe-api",
        now_s=int(time.time()),
        ttl_s=600,
    )
    assert _status(stack.url("api", "/health")) == 401
    forged = issue_token(
        SecretStr(secrets.token_hex(32)),
        subject="compose-test",
        role=Role.VIEWER,
        issuer="tickpipe",
        audience="tickpipe-api",
        now_s=int(time.time()),
    )
    assert _status(stack.url("api", "/health"), forged) == 401

    def every_service_ready() -> dict[str, Any] | None:
        health = _json(stack.url("api", "/health"), token)
        ready = {s["service"]: s["ready"] for s in health["services"]}
        return health if ready == dict.fromkeys(SERVICES, True) else None

    _until("api sees services", every_service_ready, 60, stack)
    assert isinstance(_json(stack.url("api", "/fills"), token), list)


def test_containers_when_up_then_start_what_the_k8s_dev_overlay_starts(
    stack: Stack, manifests: dict[str, list[dict[str, Any]]]
) -> None:
    """Compose and Kubernetes run the image's entry point with the same arguments, and no
    container restarted (a crash would be restarted by compose and pass unseen)."""
    docs = manifests["dev"]
    args = {n: d["spec"]["template"]["spec"]["containers"][0]["args"] for n, d in by_kind(
        docs, "Deployment").items()}  # fmt: skip
    job = by_kind(docs, "Job")["topics-create"]["spec"]["template"]["spec"]["containers"][0]
    args["topics"] = job["args"]
    containers = stack.containers()
    for name in RUNS_THE_IMAGE:
        c = containers[name]
        assert [c["Path"], *c["Args"]] == ["tickpipe", *args[name]], name
        assert c["RestartCount"] == 0, f"{name} restarted:\n{stack.logs()}"


def test_network_when_up_then_only_the_project_network_and_loopback_ports(stack: Stack) -> None:
    network = f"{stack.project}_default"
    for name, c in stack.containers().items():
        assert set(c["NetworkSettings"]["Networks"]) == {network}, name
        assert c["HostConfig"]["NetworkMode"] in {network, "default"}, name
        for bindings in (c["HostConfig"]["PortBindings"] or {}).values():
            assert all(b["HostIp"] == "127.0.0.1" for b in bindings), name
    (net,) = inspect("network", network)
    assert net["Driver"] == "bridge"


def test_stack_when_taken_down_then_no_container_network_volume_or_image_left(
    stack: Stack,
) -> None:
    stack.down()
    assert project_resources(stack.project) == {"containers": [], "networks": [], "volumes": []}
    assert not docker("images", "-q", stack.image).strip()
