"""deploy/Dockerfile, its build context, the wheelhouse it installs from, and the container
HEALTHCHECK script.

The Dockerfile's structure is checked here (checkov's Dockerfile checks run in test_k8s.py;
tests/deploy/test_compose_stack.py builds and runs the image): an air-gapped build from the
wheelhouse, on a PYTHON_IMAGE build argument. The build context is derived from
deploy/Dockerfile.dockerignore with Docker's matching rules, and the HEALTHCHECK script runs
against a real health server.
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

IMAGES = (ROOT / "deploy/docker/images.sh").read_text()
# What images.sh exports from uv.lock: the runtime, none of the dependency groups.
EXPORT = re.search(r'"\$uv" export (.+?) -q -o', IMAGES, re.S)


def _stages() -> dict[str, list[tuple[str, str]]]:
    return dockerfile_stages()


def _uv() -> str:
    uv = ROOT / ".tools" / "bin" / "uv"
    found = str(uv) if uv.exists() else shutil.which("uv")
    if found is None:
        missing("uv")
    return found


def test_dockerfile_when_read_then_two_stages_on_a_python_image_build_argument() -> None:
    stages = _stages()
    assert list(stages) == ["builder", "runtime"]  # the last stage is what ships
    text = (ROOT / "deploy/Dockerfile").read_text()
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert default, "the base image is a build argument"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", default[1])
    for stage in ("builder", "runtime"):
        assert stages[stage][0] == ("FROM", f"${{PYTHON_IMAGE}} AS {stage}")
    assert "# syntax=" not in text  # BuildKit would fetch that frontend from a registry


def test_dockerfile_when_built_then_nothing_is_fetched_only_the_wheelhouse_installed() -> None:
    builder = _stages()["builder"]
    env = {p.split("=")[0]: p.split("=")[1] for w, r in builder if w == "ENV" for p in r.split()}
    assert env["PIP_NO_INDEX"] == "1"
    runs = [rest for word, rest in builder if word == "RUN"]
    deps = [r for r in runs if "type=bind,source=.tickpipe/wheelhouse/deps" in r]
    assert (
        len(deps) == 1
        and "--require-hashes" in deps[0]
        and "-r /wheels/requirements.txt" in deps[0]
    )
    members = [r for r in runs if "type=bind,source=.tickpipe/wheelhouse/members" in r]
    assert len(members) == 1 and "pip check" in members[0]
    for stage in _stages().values():
        for word, rest in stage:
            if word == "RUN":
                assert not re.search(r"apt-get|apk |curl|wget|uv sync|--index-url", rest), rest
                pip = re.findall(r"pip install (.*?)(?:&&|$)", rest)
                assert all("--find-links" in p or "/members/" in p for p in pip), rest
    # ... and the wheelhouse holds the runtime as the lock pins it, none of the groups.
    assert EXPORT
    assert [word for word in EXPORT[1].split() if word != "\\"] == [
        "--project", '"$ROOT"', "--frozen", "--no-default-groups", "--all-packages",
        "--no-emit-workspace", "--no-header",
    ]  # fmt: skip
    assert "--require-hashes --only-binary=:all:" in IMAGES


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


def test_wheelhouse_when_built_then_holds_every_workspace_member(tmp_path: Path) -> None:
    """images.sh builds the members with `uv build --all-packages`: a new member is in the
    image without a Dockerfile change."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    members = {
        tomllib.loads(p.read_text())["project"]["name"].replace("-", "_")
        for pattern in root["tool"]["uv"]["workspace"]["members"]
        for p in ROOT.glob(f"{pattern}/pyproject.toml")
    }
    assert '"$uv" build --project "$ROOT" --all-packages --wheel' in IMAGES
    done = run([_uv(), "build", "--project", ROOT, "--all-packages", "--wheel", "-q", "-o",
                tmp_path], cwd=ROOT, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert {w.name.split("-")[0] for w in tmp_path.glob("*.whl")} == members


def test_target_requirements_when_markers_name_a_patch_level_then_kept_for_any_3_11() -> None:
    """pip decides markers by the interpreter it runs on; the wheelhouse keeps what any
    CPython 3.11 on Linux may install (the image's pip decides again)."""
    spec = importlib.util.spec_from_file_location(
        "target_requirements", ROOT / "deploy/docker/target_requirements.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (
        "async-timeout==5.0.1 ; python_full_version < '3.11.3' \\\n    --hash=sha256:aa\n"
        "colorama==0.4.6 ; sys_platform == 'win32' \\\n    --hash=sha256:bb\n"
        "orjson==3.10.0 \\\n    --hash=sha256:cc\n"
        "tomli==2.0.0 ; python_full_version < '3.11' \\\n    --hash=sha256:dd\n"
    )
    assert module.target(text, "x86_64") == (
        "async-timeout==5.0.1 \\\n    --hash=sha256:aa\norjson==3.10.0 \\\n    --hash=sha256:cc\n"
    )


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
    """The image has the runtime without any dependency group: whatever the code imports must
    come without them."""
    uv_path = _uv()
    export = run(
        [uv_path, "export", "--frozen", "--no-default-groups", "--all-packages", "--no-hashes",
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
    # BuildKit reads the ignore file beside the Dockerfile in place of the root one.
    for raw in (ROOT / "deploy/Dockerfile.dockerignore").read_text().splitlines():
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


def test_build_context_when_filtered_by_dockerignore_then_holds_what_the_build_uses() -> None:
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
    mounted = [
        m for stage in _stages().values() for w, rest in stage if w == "RUN"
        for m in re.findall(r"--mount=type=bind,source=(\S+?),", rest)
    ]  # fmt: skip
    assert mounted == [".tickpipe/wheelhouse/deps", ".tickpipe/wheelhouse/members"]
    for source in mounted:  # built by `make wheelhouse`: its paths, whether built or not
        assert _in_context(f"{source}/tickpipe-0.1.0-py3-none-any.whl", rules), source
    assert _in_context("models/baseline/v1/model.onnx", rules)
    for kept_out in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        ".tools/bin/uv",
        "libs/tickpipe/src/tickpipe/app.py",  # the image installs the members' wheels
        ".tickpipe/images.env",
        ".tickpipe/infra/state.json",
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
