"""The deploy checks' tools (installed by deploy/tools/install.sh) and shared helpers.

A missing tool skips a test on a developer's machine and fails it in CI (`CI=true`), so a
broken install never passes as green.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any, NoReturn

import yaml

from tests.brokers import unavailable
from tickpipe.app import service_names

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools"
DEPLOY_VENV = TOOLS / "deploy-venv" / "bin"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
OVERLAYS = ("dev", "prod")
# The installed services (their specs): a new service needs its manifests, nothing here.
SERVICES = tuple(service_names())
INSTALL_HINT = "run deploy/tools/install.sh"


def missing(what: str) -> NoReturn:
    unavailable(f"{what} not installed: {INSTALL_HINT}")


def tool(name: str) -> Path:
    """A tool from .tools/bin or the tools venv (never from PATH: versions are pinned there)."""
    for candidate in (TOOLS / "bin" / name, DEPLOY_VENV / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    missing(name)


def run(
    argv: list[str | Path], timeout: float = 120, **kw: Any
) -> subprocess.CompletedProcess[str]:
    # The tools venv's own interpreter runs its scripts; the project's venv stays out of it.
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    return subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        **kw,
    )


def load_all(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """stage name -> its (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            current = []
            stages[rest.split()[-1]] = current
        current.append((word.upper(), rest.strip()))
    return stages


def image_entrypoint_env() -> tuple[list[str], dict[str, str]]:
    """The runtime stage's ENTRYPOINT and ENV (PATH aside: it names the image's venv)."""
    runtime = dockerfile_stages()["runtime"]
    entrypoint: list[str] = json.loads([r for w, r in runtime if w == "ENTRYPOINT"][-1])
    env = {}
    for word, rest in runtime:
        if word == "ENV":
            env.update(dict(pair.split("=", 1) for pair in rest.split()))
    env.pop("PATH")
    return entrypoint, env
