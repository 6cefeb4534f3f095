"""No drift: docker-compose.yml and the Kubernetes manifests start the image's entry point with
the same commands and settings, and the entry point accepts them.

Each workload that runs the image (the five services, the API, the topics job) is compared as
it starts. argv: the image's ENTRYPOINT plus compose's `command` or the container's `args`
(neither may replace the entry point). Environment: the image's ENV, then compose's
`environment` as `docker-compose config` resolves it (defaults interpolated), or the ConfigMap
and the container's `env`. Both must be equal but for the differences listed in ONLY_IN with
their reasons; every argv must parse with tickpipe's own parser and every environment must
validate against the settings classes of what it runs. The running stack is compared with the
manifests too (tests/deploy/test_compose_stack.py).
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.engine import clean_env, require_compose
from tests.deploy.tools import OVERLAYS, ROOT, SERVICES, by_kind, image_entrypoint_env
from tickpipe.app import load_specs
from tickpipe.cli import build_parser
from tickpipe.settings import PlatformSettings
from tickpipe.telemetry.tracing import export_configured
from tickpipe_api.settings import ApiSettings

WORKLOADS = (*SERVICES, "api", "topics")
K8S_NAME = {"topics": "topics-create"}
# Variables set on one side only, by workload (`*`: any), and why that is no drift.
ONLY_IN: dict[str, dict[str, set[str]]] = {
    "compose": {
        # The JWT key comes from the operator's shell; Kubernetes mounts a Secret of keys.
        "api": {"TICKPIPE_API_JWT_KEY"},
    },
    "k8s": {
        "api": {"TICKPIPE_API_JWT_KEYS_FILE"},
        # Live trading's exchange credentials, mounted from a Secret; compose trades on paper.
        "execution": {"TICKPIPE_EXECUTION_API_KEY_FILE", "TICKPIPE_EXECUTION_API_SECRET_FILE"},
        # Traces: compared below by whether they are exported (neither exports them in dev).
        "*": {"OTEL_TRACES_EXPORTER"},
    },
}
TRACING = {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER"}
# Where the overlays legitimately differ from compose, beyond dev: prod's replication factor.
PROD_ARGS = {"topics": ["topics", "create", "--replication-factor", "3"]}


def _compose_config() -> dict[str, Any]:
    """`docker-compose config` of every profile: what compose itself makes of the file."""
    compose = require_compose()
    env = clean_env()
    for name in ("TICKPIPE_API_JWT_KEY", "TICKPIPE_INGEST_SPEED", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        env.pop(name, None)
    done = subprocess.run(
        [str(compose), "-f", str(ROOT / "docker-compose.yml"), "config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def started(
    manifests: dict[str, list[dict[str, Any]]],
) -> dict[str, dict[str, tuple[list[str], dict[str, str]]]]:
    """side (`compose`, `dev`, `prod`) -> workload -> (argv, environment)."""
    entrypoint, image_env = image_entrypoint_env()
    sides: dict[str, dict[str, tuple[list[str], dict[str, str]]]] = {"compose": {}}
    for name, s in _compose_config()["services"].items():
        if name not in WORKLOADS:
            continue
        assert "entrypoint" not in s, f"compose {name} replaces the image's entry point"
        env = {**image_env, **{k: str(v) for k, v in s.get("environment", {}).items()}}
        sides["compose"][name] = ([*entrypoint, *s["command"]], env)
    for overlay in OVERLAYS:
        docs = manifests[overlay]
        configmaps = by_kind(docs, "ConfigMap")
        workloads = {**by_kind(docs, "Deployment"), **by_kind(docs, "Job")}
        sides[overlay] = {}
        for name in WORKLOADS:
            (c,) = workloads[K8S_NAME.get(name, name)]["spec"]["template"]["spec"]["containers"]
            assert "command" not in c, f"{overlay} {name} replaces the image's entry point"
            env = dict(image_env)
            for source in c.get("envFrom", []):
                env.update(configmaps[source["configMapRef"]["name"]]["data"])
            env.update({v["name"]: v["value"] for v in c.get("env", [])})
            sides[overlay][name] = ([*entrypoint, *c["args"]], env)
    return sides


def _tracing(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> bool:
    for name in TRACING:
        monkeypatch.delenv(name, raising=False)
    for name in TRACING & set(env):
        monkeypatch.setenv(name, env[name])
    return export_configured()


def test_compose_and_k8s_when_compared_then_every_workload_runs_on_both() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert {n for n, s in compose.items() if "tickpipe" in s["image"].lower()} == {
        *WORKLOADS,
        "train",  # a one-shot job of compose's (Kubernetes: `kubectl run` the same image)
    }


def test_argv_when_compared_then_compose_starts_what_the_overlays_start(
    started: dict[str, dict[str, tuple[list[str], dict[str, str]]]],
) -> None:
    for name in WORKLOADS:
        argv = started["compose"][name][0]
        assert started["dev"][name][0] == argv, name
        assert started["prod"][name][0][1:] == PROD_ARGS.get(name, argv[1:]), name


def test_settings_when_compared_then_equal_but_for_the_listed_reasons(
    started: dict[str, dict[str, tuple[list[str], dict[str, str]]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in WORKLOADS:
        compose_env = started["compose"][name][1]
        dev_env = started["dev"][name][1]
        only_compose = ONLY_IN["compose"].get(name, set()) | ONLY_IN["compose"].get("*", set())
        only_k8s = ONLY_IN["k8s"].get(name, set()) | ONLY_IN["k8s"].get("*", set())
        assert set(compose_env) - set(dev_env) == only_compose, name
        assert set(dev_env) - set(compose_env) == only_k8s, name
        shared = (set(compose_env) & set(dev_env)) - TRACING
        assert {v: compose_env[v] for v in shared} == {v: dev_env[v] for v in shared}, name
        assert _tracing(compose_env, monkeypatch) == _tracing(dev_env, monkeypatch), name


def _settings_classes(argv: list[str]) -> list[type[Any]]:
    if argv[1] == "run":
        return [PlatformSettings, load_specs()[argv[2]].settings]
    if argv[1] == "api":
        return [PlatformSettings, ApiSettings]
    return [PlatformSettings]


@pytest.mark.parametrize("side", ["compose", *OVERLAYS])
def test_entry_point_when_given_each_command_and_environment_then_accepts_both(
    started: dict[str, dict[str, tuple[list[str], dict[str, str]]]],
    side: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parser = build_parser()
    for name, (argv, env) in started[side].items():
        assert argv[0] == "tickpipe", name
        try:
            parser.parse_args(argv[1:])
        except SystemExit as exc:
            pytest.fail(f"{side} {name}: `{' '.join(argv)}` refused by the CLI ({exc})")
        for var in [v for v in os.environ if v.startswith(("TICKPIPE_", "OTEL_"))]:
            monkeypatch.delenv(var)
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        for cls in _settings_classes(argv):
            cls()  # validates every variable it reads; a bad value raises here


def test_settings_check_when_a_value_is_bad_then_fails(
    started: dict[str, dict[str, tuple[list[str], dict[str, str]]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check above can fail: a port that is not a number is refused, not ignored."""
    argv, env = started["compose"]["risk"]
    for var, value in {**env, "TICKPIPE_HTTP_PORT": "91o4"}.items():
        monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match="http_port"):
        for cls in _settings_classes(argv):
            cls()
