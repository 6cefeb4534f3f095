"""Architecture rules, checked on the source: pure domain code, services independent."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.unit.factories import REPO

SERVICES = sorted(p.name for p in (REPO / "services").iterdir() if (p / "src").is_dir())
SERVICE_PACKAGES = {f"tickpipe_{name}" for name in SERVICES}
# Pinned as well, so a service folder moved or renamed cannot shrink what the rules check.
KNOWN_SERVICE_PACKAGES = {
    "tickpipe_ingest",
    "tickpipe_feature",
    "tickpipe_inference",
    "tickpipe_risk",
    "tickpipe_execution",
    "tickpipe_api",
}
DOMAIN_FILES = sorted(
    [*REPO.glob("services/*/src/*/domain/**/*.py"), *REPO.glob("libs/quant/**/*.py")]
)
# Adapters: brokers, caches, network and environment. Domain code gets these injected.
BANNED_MODULES = (
    "confluent_kafka",
    "redis",
    "requests",
    "httpx",
    "aiohttp",
    "websockets",
    # Model runtimes are adapters too: a domain scores through the `Model` port.
    "onnxruntime",
    "urllib.request",
    "http.client",
    "socket",
    "pydantic_settings",
    "tickpipe.bus",
    "tickpipe.cache",
    "tickpipe.settings",
    "time",
)
ENV_NAMES = {"environ", "getenv", "putenv", "environb"}
WALL_CLOCK_CALLS = {"now", "utcnow", "today", "time_ns"}


def _imports(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _banned(module: str) -> bool:
    return any(module == b or module.startswith(b + ".") for b in BANNED_MODULES)


def violations(source: str) -> list[str]:
    """What a domain module must not do, found by walking its syntax tree."""
    tree = ast.parse(source)
    found = [f"imports {m}" for m in _imports(tree) if _banned(m)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            base = node.value
            if isinstance(base, ast.Name) and base.id == "os" and node.attr in ENV_NAMES:
                found.append(f"reads os.{node.attr}")
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [f"imports os.{a.name}" for a in node.names if a.name in ENV_NAMES]
        func = node.func if isinstance(node, ast.Call) else None
        if isinstance(func, ast.Attribute) and func.attr in WALL_CLOCK_CALLS:
            found.append(f"calls .{func.attr}() (wall clock)")
    return found


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


@pytest.mark.parametrize(
    "source",
    [
        "import confluent_kafka",
        "from confluent_kafka.admin import AdminClient",
        "import redis.asyncio as r",
        "import requests",
        "from httpx import Client",
        "import os\nx = os.environ['A']",
        "import os\nx = os.getenv('A')",
        "from os import environ",
        "from tickpipe.bus.kafka import KafkaBus",
        "import onnxruntime as ort",
        "from onnxruntime.quantization import quantize_dynamic",
        "from datetime import datetime\nx = datetime.now()",
        "import time\nx = time.time_ns()",
    ],
)
def test_violations_when_source_touches_adapters_reports_it(source: str) -> None:
    assert violations(source)


def test_violations_when_source_is_pure_reports_nothing() -> None:
    source = "import math\nfrom decimal import Decimal\nfrom tickpipe.messages import Side\n"
    assert violations(source) == []


def test_domain_files_when_listed_include_every_service_domain_and_quant() -> None:
    rel = {_rel(p) for p in DOMAIN_FILES}

    assert "libs/quant/src/tickpipe_quant/indicators.py" in rel
    assert "services/risk/src/tickpipe_risk/domain/checks.py" in rel
    assert "services/execution/src/tickpipe_execution/domain/orders.py" in rel
    assert {p.split("/")[1] for p in rel if p.startswith("services/")} == {
        "execution",
        "inference",
        "ingest",
        "risk",
    }


@pytest.mark.parametrize("path", DOMAIN_FILES, ids=_rel)
def test_domain_module_when_parsed_imports_no_adapters_or_environment(path: Path) -> None:
    assert violations(path.read_text()) == []


def _service_domain_files() -> list[Path]:
    return [p for p in DOMAIN_FILES if p.is_relative_to(REPO / "services")]


@pytest.mark.parametrize("path", _service_domain_files(), ids=_rel)
def test_domain_module_when_parsed_imports_only_the_domain_of_its_own_service(
    path: Path,
) -> None:
    # The adapters of its own service (an ONNX model, a registry on disk) reach a domain
    # only through the ports it declares, never by import.
    package = path.relative_to(REPO / "services").parts[2]
    outside = [
        m
        for m in _imports(ast.parse(path.read_text()))
        if m.split(".")[0] == package and not m.startswith(f"{package}.domain")
    ]
    assert outside == []


def _source_files(root: Path) -> list[Path]:
    return sorted(root.glob("**/*.py"))


@pytest.mark.parametrize("service", SERVICES)
def test_service_when_parsed_imports_no_other_service(service: str) -> None:
    own = f"tickpipe_{service}"
    files = _source_files(REPO / "services" / service / "src")
    assert files

    crossing = [
        f"{_rel(path)}: {module}"
        for path in files
        for module in _imports(ast.parse(path.read_text()))
        if module.split(".")[0] in SERVICE_PACKAGES - {own}
    ]

    assert crossing == []


def test_service_packages_when_listed_include_every_known_service() -> None:
    assert SERVICE_PACKAGES >= KNOWN_SERVICE_PACKAGES


def _dynamic_imports(tree: ast.AST) -> list[str]:
    """Modules named by string to importlib.import_module or __import__."""
    names: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        first = node.args[0]
        if name in ("import_module", "__import__") and isinstance(first, ast.Constant):
            names.append(str(first.value))
    return names


def _upward(source: str) -> list[str]:
    tree = ast.parse(source)
    return [
        m
        for m in [*_imports(tree), *_dynamic_imports(tree)]
        if m.split(".")[0] in SERVICE_PACKAGES | KNOWN_SERVICE_PACKAGES
    ]


@pytest.mark.parametrize(
    "source",
    [
        "from tickpipe_risk.handlers import RiskHandler",
        "def f():\n    import tickpipe_api.app",
        "import importlib\nm = importlib.import_module('tickpipe_inference.app')",
        "m = __import__('tickpipe_ingest')",
    ],
)
def test_upward_imports_when_source_names_a_service_reports_it(source: str) -> None:
    assert _upward(source)


def test_upward_imports_when_source_names_only_libraries_reports_nothing() -> None:
    source = "import tickpipe.messages\nimport importlib\nm = importlib.import_module('json')"
    assert _upward(source) == []


@pytest.mark.parametrize("lib", ["tickpipe", "quant"])
def test_library_when_parsed_imports_no_service(lib: str) -> None:
    # Dependencies point one way, services -> libs: the libraries find services through
    # entry points, never by importing them.
    files = _source_files(REPO / "libs" / lib / "src")
    assert files

    upward = [f"{_rel(path)}: {module}" for path in files for module in _upward(path.read_text())]

    assert upward == []
