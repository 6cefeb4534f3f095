"""Fixtures for the deploy checks: each kustomize overlay built once per session; the engine
tests' measurements in the session's summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deploy.tools import OVERLAYS, ROOT, load_all, run, tool


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """overlay -> the file holding `kustomize build k8s/overlays/<overlay>`."""
    kustomize = tool("kustomize")
    out = tmp_path_factory.mktemp("kustomize")
    files = {}
    for overlay in OVERLAYS:
        result = run([kustomize, "build", ROOT / "k8s" / "overlays" / overlay])
        assert result.returncode == 0, result.stderr
        files[overlay] = out / f"{overlay}.yaml"
        files[overlay].write_text(result.stdout)
    return files


@pytest.fixture(scope="session")
def manifests(built: dict[str, Path]) -> dict[str, list[dict[str, Any]]]:
    """overlay -> its parsed documents."""
    return {overlay: load_all(path.read_text()) for overlay, path in built.items()}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """What the engine tests measured (image size, build and start-up times)."""
    from tests.deploy.engine import REPORT

    for line in REPORT:
        terminalreporter.write_line(f"deploy: {line}")
