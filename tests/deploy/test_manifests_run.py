"""The dev overlay's workloads, run as they are written, against real Kafka and Redis.

Each container's command is the image's ENTRYPOINT (`tickpipe`, here `python -m tickpipe.cli`)
plus its `args`; its environment is the image's ENV, then the ConfigMap (`envFrom`), then its
`env`. Only where the brokers are (the test's) and the HTTP port/host change (a free loopback
port). Mounted secrets become files with made-up values under the test's tmp dir (a variable
naming the mount itself, a directory, gets one such file in it). The topics Job
must succeed, then every Deployment (the five services and the operator API) must answer its
readiness and liveness probes, and stop cleanly on SIGTERM as the kubelet sends it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.tools import ROOT, SERVICES, by_kind, image_entrypoint_env
from tickpipe.infra import free_port

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

READY_TIMEOUT_S = 90.0


def _argv(container: dict[str, Any], entrypoint: list[str]) -> list[str]:
    argv = list(container.get("command") or entrypoint) + list(container.get("args", []))
    assert argv[0] == "tickpipe", argv
    return [sys.executable, "-m", "tickpipe.cli", *argv[1:]]


def _environment(
    pod: dict[str, Any], configmaps: dict[str, dict[str, Any]], image_env: dict[str, str], tmp: Path
) -> dict[str, str]:
    container = pod["containers"][0]
    env = {"PATH": os.environ["PATH"], **image_env}
    for source in container.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]]["data"])
    for var in container.get("env", []):
        assert "value" in var, f"{var['name']}: only literal values and mounted files are used"
        env[var["name"]] = var["value"]
    # Secret volumes: the same file names, made-up contents, under tmp.
    secrets = {v["name"]: v["secret"] for v in pod.get("volumes", []) if "secret" in v}
    for mount in container.get("volumeMounts", []):
        if mount["name"] not in secrets:
            continue
        local = tmp / "secrets" / mount["name"]
        local.mkdir(parents=True, exist_ok=True)
        for name, value in env.items():
            if value == mount["mountPath"]:
                # The whole mount, a directory of files (TICKPIPE_API_JWT_KEYS_FILE): one entry.
                (local / "k1").write_text(uuid.uuid4().hex + uuid.uuid4().hex + "\n")
                env[name] = str(local)
            elif value.startswith(mount["mountPath"] + "/"):
                path = local / value.removeprefix(mount["mountPath"] + "/")
                path.write_text(uuid.uuid4().hex + uuid.uuid4().hex + "\n")  # 64 bytes
                env[name] = str(path)
    return env


def _port_variable(container: dict[str, Any], env: dict[str, str]) -> str:
    """The variable that sets the port the probes use (TICKPIPE_HTTP_PORT, TICKPIPE_API_PORT)."""
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    port = ports[container["readinessProbe"]["httpGet"]["port"]]
    assert ports[container["livenessProbe"]["httpGet"]["port"]] == port
    names = [n for n in (c.get("name") for c in container.get("env", [])) if env[n] == str(port)]
    assert len(names) == 1, f"{container['name']}: which variable sets port {port}? {names}"
    return names[0]


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:]


def test_dev_workloads_when_run_as_written_then_topics_created_and_every_service_ready(
    manifests: dict[str, list[dict[str, Any]]],
    kafka_bootstrap: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    docs = manifests["dev"]
    configmaps = by_kind(docs, "ConfigMap")
    entrypoint, image_env = image_entrypoint_env()
    namespace = f"deploy{uuid.uuid4().hex[:8]}"
    given = {
        "TICKPIPE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "TICKPIPE_REDIS_URL": redis_url,
        "TICKPIPE_TOPIC_NAMESPACE": namespace,  # the session's broker is shared
        "TICKPIPE_HTTP_HOST": "127.0.0.1",
    }

    job = by_kind(docs, "Job")["topics-create"]["spec"]["template"]["spec"]
    created = subprocess.run(
        _argv(job["containers"][0], entrypoint),
        env={**_environment(job, configmaps, image_env, tmp_path), **given},
        cwd=ROOT,  # the image's WORKDIR holds data/sample and models at the same paths
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    assert f"{namespace}.md.trades.v1: created" in created.stdout

    deployments = {
        name: d
        for name, d in by_kind(docs, "Deployment").items()
        if d["metadata"]["labels"].get("app.kubernetes.io/part-of") == "tickpipe"
    }
    assert set(deployments) == {*SERVICES, "api"}
    procs: dict[str, tuple[subprocess.Popen[bytes], int, dict[str, Any], Path]] = {}
    try:
        for name, d in deployments.items():
            pod = d["spec"]["template"]["spec"]
            c = pod["containers"][0]
            env = _environment(pod, configmaps, image_env, tmp_path)
            port, port_var = free_port(), _port_variable(c, env)
            host_var = port_var.replace("_PORT", "_HOST")  # TICKPIPE_API_HOST beside _API_PORT
            log = tmp_path / f"{name}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    _argv(c, entrypoint),
                    env={**env, **given, port_var: str(port), host_var: "127.0.0.1"},
                    cwd=ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            procs[name] = (proc, port, c, log)

        deadline = time.monotonic() + READY_TIMEOUT_S
        waiting = set(procs)
        while waiting and time.monotonic() < deadline:
            for name in sorted(waiting):
                proc, port, c, log = procs[name]
                assert proc.poll() is None, f"{name} exited {proc.returncode}:\n{_tail(log)}"
                if _get(port, c["readinessProbe"]["httpGet"]["path"]) == 200:
                    waiting.discard(name)
            time.sleep(0.2)
        assert not waiting, {n: _tail(procs[n][3]) for n in waiting}
        for name, (_, port, c, _) in procs.items():
            assert _get(port, c["livenessProbe"]["httpGet"]["path"]) == 200, name
    finally:
        for proc, *_ in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = {}
        for name, (proc, *_rest) in procs.items():
            try:
                codes[name] = proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait()
    # Well inside terminationGracePeriodSeconds (30 s), SIGTERM stops each one cleanly. uvicorn
    # re-raises the signal once it has shut down, so the API ends "killed by SIGTERM" (143 in
    # Kubernetes' terms), after its own last words.
    expected = {**dict.fromkeys(procs, 0), "api": -signal.SIGTERM}
    assert codes == expected, {n: _tail(procs[n][3]) for n in procs}
    assert "Finished server process" in _tail(procs["api"][3])
