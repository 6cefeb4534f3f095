"""deploy/Dockerfile, .dockerignore and the container HEALTHCHECK script.

No Docker engine here: the Dockerfile's structure is checked (checkov's Dockerfile checks run
in test_k8s.py), the build context is derived from .dockerignore with Docker's matching rules,
and the HEALTHCHECK script runs against a real health server.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shutil
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import packages_distributions
from pathlib import Path
from types import ModuleType

import pytest

from tests.deploy.tools import ROOT, dockerfile_stages, missing, run
from tickpipe.app import load_specs
from tickpipe.telemetry.http import HealthServer


def _stages() -> dict[str, list[tuple[str, str]]]:
    return dockerfile_stages()


def test_dockerfile_when_read_then_multi_stage_with_uv_and_a_slim_python_3_11() -> None:
    stages = _stages()
    assert list(stages) == ["uv", "builder", "runtime"]  # the last stage is what ships
    makefile = (ROOT / "Makefile").read_text()
    uv_version = re.search(r"^UV_VERSION := (\S+)", makefile, re.M)
    assert uv_version
    assert stages["uv"][0][1] == f"ghcr.io/astral-sh/uv:{uv_version.group(1)} AS uv"
    for stage in ("builder", "runtime"):
        image = stages[stage][0][1].split()[0]
        assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", image), image
    runs = [rest for word, rest in stages["builder"] if word == "RUN"]
    assert any(
        "uv sync --frozen --no-dev --all-packages" in r and "--no-editable" in r for r in runs
    )
    assert ("ENV", "UV_PROJECT_ENVIRONMENT=/app/.venv") in [
        (w, part) for w, rest in stages["builder"] for part in rest.split() if w == "ENV"
    ]


def test_dockerfile_when_read_then_runtime_is_non_root_with_a_healthcheck() -> None:
    runtime = dict(_stages()["runtime"][::-1])  # first occurrence wins
    assert runtime["USER"] == "10001:10001"
    assert "--uid 10001" in runtime["RUN"]
    assert runtime["WORKDIR"] == "/app"
    assert json.loads(runtime["ENTRYPOINT"]) == ["tickpipe"]
    assert runtime["HEALTHCHECK"].endswith('CMD ["python", "/app/healthcheck.py"]')
    copies = [rest for word, rest in _stages()["runtime"] if word == "COPY"]
    # Defaults of ingest (sample), risk (exchange filters) and inference (model) are relative
    # to the working directory: the image carries them at the same paths as the repository.
    assert "data/sample ./data/sample" in copies
    assert "models ./models" in copies
    assert "--from=builder /app/.venv /app/.venv" in copies


def test_workspace_when_built_then_every_member_is_in_the_copied_trees() -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = {rest.split()[0] for w, rest in _stages()["builder"] if w == "COPY"}
    assert {"pyproject.toml", "libs", "services"} <= copied
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        assert pattern.split("/")[0] in copied, pattern


# Imports the image cannot satisfy today. services/api imports httpx at run time (health.py)
# but only the dev group brings it: `tickpipe api serve` fails in the image with
# ModuleNotFoundError until services/api/pyproject.toml lists httpx. Then empty this set.
KNOWN_MISSING_AT_RUNTIME: set[str] = set()


def _imports(path: Path) -> Iterator[str]:
    """Top-level modules a source file imports, leaving out `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for n in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_runtime_dependencies_when_synced_without_dev_then_cover_every_import() -> None:
    """The image syncs `--no-dev`: whatever the code imports must come without the dev group."""
    uv = ROOT / ".tools" / "bin" / "uv"
    uv_path = str(uv) if uv.exists() else shutil.which("uv")
    if uv_path is None:
        missing("uv")
    export = run(
        [uv_path, "export", "--frozen", "--no-dev", "--all-packages", "--no-hashes",
         "--no-emit-workspace", "--no-header"],
        cwd=ROOT,
    )  # fmt: skip
    assert export.returncode == 0, export.stderr
    locked = {
        _normalize(re.split(r"[=<>;\s\[]", line.strip())[0])
        for line in export.stdout.splitlines()
        if line.strip() and not line.startswith(("#", " "))
    }
    assert {"confluent-kafka", "onnxruntime", "fastapi"} <= locked
    providers = packages_distributions()
    unresolved: dict[str, set[str]] = {}
    for source in [*ROOT.glob("libs/*/src/**/*.py"), *ROOT.glob("services/*/src/**/*.py")]:
        for module in _imports(source):
            if module in sys.stdlib_module_names or module.startswith("tickpipe"):
                continue
            if not {_normalize(d) for d in providers.get(module, [])} & locked:
                unresolved.setdefault(module, set()).add(str(source.relative_to(ROOT)))
    assert set(unresolved) == KNOWN_MISSING_AT_RUNTIME, unresolved


def _dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*", "\0").replace(r"\*", "[^/]*")
        regex = regex.replace(r"\?", "[^/]").replace("\0", ".*")
        rules.append((include, re.compile(regex)))
    return rules


def _in_context(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for include, regex in rules:
        if any(regex.fullmatch(c) for c in candidates):
            included = include
    return included


def test_build_context_when_filtered_by_dockerignore_then_holds_what_copy_needs() -> None:
    rules = _dockerignore_rules()
    sources = [
        rest.split()[0]
        for stage in _stages().values()
        for w, rest in stage
        if w == "COPY" and not rest.startswith("--from")
    ]
    for source in sources:
        base = ROOT / source
        files = [base] if base.is_file() else [p for p in base.rglob("*") if p.is_file()]
        files = [f for f in files if "__pycache__" not in f.parts]
        assert files, source
        for f in files:
            assert _in_context(str(f.relative_to(ROOT)), rules), f"{f} left out of the context"
    assert _in_context("models/baseline/v1/model.onnx", rules)
    for kept_out in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        ".tools/bin/uv",
        "libs/tickpipe/src/tickpipe/__pycache__/app.cpython-311.pyc",
    ):
        assert not _in_context(kept_out, rules), kept_out


# --- the HEALTHCHECK script ------------------------------------------------------------------


@pytest.fixture
def healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck", ROOT / "deploy/healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cmdline(tmp_path: Path, *argv: str) -> Path:
    path = tmp_path / "cmdline"
    path.write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    return path


def test_healthcheck_when_port_unset_then_uses_the_default_of_the_service_pid_1_runs(
    healthcheck: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TICKPIPE_HTTP_PORT", raising=False)
    specs = load_specs()
    for name in ("feature", "risk"):
        argv = ("/app/.venv/bin/python", "/app/.venv/bin/tickpipe", "run", name)
        assert healthcheck.port(_cmdline(tmp_path, *argv)) == specs[name].default_http_port


def test_healthcheck_when_a_job_runs_then_there_is_nothing_to_check(
    healthcheck: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TICKPIPE_HTTP_PORT", raising=False)
    argv = ("/app/.venv/bin/python", "/app/.venv/bin/tickpipe", "topics", "create")
    assert healthcheck.port(_cmdline(tmp_path, *argv)) is None


def test_healthcheck_when_server_answers_then_healthy_and_when_gone_then_not(
    healthcheck: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cmdline = _cmdline(tmp_path, "/usr/local/bin/python", "/app/.venv/bin/tickpipe", "run", "risk")
    server = HealthServer("127.0.0.1", 0, lambda: True).start()
    try:
        monkeypatch.setenv("TICKPIPE_HTTP_PORT", str(server.port))
        assert healthcheck.main(cmdline) == 0
    finally:
        server.stop()
    assert healthcheck.main(cmdline) == 1


def test_healthcheck_when_the_api_runs_then_checks_the_api_port(
    healthcheck: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tickpipe_api.settings import ApiSettings

    monkeypatch.delenv("TICKPIPE_API_PORT", raising=False)
    for argv in (("/sbin/docker-init", "--", "tickpipe", "api", "serve"), ("tickpipe", "api")):
        assert healthcheck.port(_cmdline(tmp_path, *argv)) == ApiSettings().port
    monkeypatch.setenv("TICKPIPE_API_PORT", "18080")
    assert healthcheck.port(_cmdline(tmp_path, "tickpipe", "api", "serve")) == 18080
    assert healthcheck.port(_cmdline(tmp_path, "tickpipe", "api", "token", "--sub", "x")) is None
