"""Helpers for the tests that drive the Docker engine (`make docker-engine` starts one).

Debian's CLIs are called by path: a newer `docker` earlier on PATH may refuse BuildKit without
the buildx plugin. Everything a test creates carries its owner (pid and start time) in its
name or label, so that a later session removes what a killed one left behind.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.brokers import docker_available, images_env, owner_alive, owner_token, unavailable
from tests.deploy.tools import ROOT

DOCKER = Path("/usr/bin/docker")
COMPOSE = Path("/usr/bin/docker-compose")
IMAGES = ROOT / "deploy" / "docker" / "images.sh"
PROJECT_PREFIX = "tpt"  # compose projects of these tests: tpt-<pid>-<start time>
# Lines for the session's summary (tests/deploy/conftest.py prints them).
REPORT: list[str] = []


def require_compose() -> Path:
    """Debian's docker-compose (1.29), which reads the compose files without an engine."""
    if not COMPOSE.is_file():
        unavailable(f"{COMPOSE} not installed: make docker-engine (as root)")
    return COMPOSE


def require_engine() -> dict[str, str]:
    """The images this machine has (.tickpipe/images.env), once an engine answers."""
    if not docker_available():
        unavailable("no Docker engine answers: make docker-engine (as root)")
    for tool in (DOCKER, COMPOSE):
        if not tool.is_file():
            unavailable(f"{tool} not installed: make docker-engine (as root)")
    images = images_env()
    if not images.get("KAFKA_IMAGE"):
        unavailable("no .tickpipe/images.env: make base-images")
    return images


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    done = subprocess.run(
        [str(DOCKER), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {done.stderr.strip()[-2000:]}")
    return done.stdout


def inspect(kind: str, *names: str) -> list[dict[str, Any]]:
    if not names:
        return []
    return json.loads(docker(kind, "inspect", *names))  # type: ignore[no-any-return]


def project_name() -> str:
    pid, start = owner_token().split(":")
    return f"{PROJECT_PREFIX}-{pid}-{start}"


def project_resources(project: str) -> dict[str, list[str]]:
    """Containers, networks and volumes of a compose project, by its label."""
    label = f"label=com.docker.compose.project={project}"
    return {
        "containers": docker("ps", "-aq", "--filter", label).split(),
        "networks": docker("network", "ls", "-q", "--filter", label).split(),
        "volumes": docker("volume", "ls", "-q", "--filter", label).split(),
    }


def remove_project(project: str) -> None:
    """What `down -v` removes, by label: the last resort when compose itself failed."""
    found = project_resources(project)
    if found["containers"]:
        docker("rm", "-f", "-v", *found["containers"], check=False)
    for kind in ("networks", "volumes"):
        if found[kind]:
            docker(kind.removesuffix("s"), "rm", *found[kind], check=False)


def remove_orphan_projects() -> list[str]:
    """Remove compose projects of earlier sessions whose process is gone."""
    projects = set(
        docker("ps", "-a", "--format", '{{.Label "com.docker.compose.project"}}').split()
        + docker("volume", "ls", "--format", '{{.Label "com.docker.compose.project"}}').split()
    )
    removed = []
    for project in projects:
        match = re.fullmatch(rf"{PROJECT_PREFIX}-(\d+)-(\d+)", project)
        if match and not owner_alive(f"{match[1]}:{match[2]}"):
            remove_project(project)
            docker("rmi", f"tickpipe-test:{project}", check=False)
            removed.append(project)
    return removed


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment less what would redirect compose or the image build (a
    project name, images, ports), plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("COMPOSE_") and not k.endswith(("_IMAGE", "_HOST_PORT"))
    }
    return {**env, **extra}
