"""A deploy tool that is not installed skips a test locally and fails it in CI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy import tools


@pytest.fixture
def no_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools, "TOOLS", tmp_path / "tools")
    monkeypatch.setattr(tools, "DEPLOY_VENV", tmp_path / "venv" / "bin")


@pytest.mark.usefixtures("no_tools")
def test_tool_when_missing_in_ci_then_the_test_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"deploy/tools/install\.sh"):
        tools.tool("kustomize")


@pytest.mark.usefixtures("no_tools")
def test_tool_when_missing_outside_ci_then_the_test_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"deploy/tools/install\.sh"):
        tools.tool("promtool")


def test_install_script_when_read_then_pins_every_tool() -> None:
    script = (tools.ROOT / "deploy/tools/install.sh").read_text()
    assert "KUSTOMIZE_VERSION=v5." in script
    assert "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" in script
    assert re.search(r"^K8S_VERSION=v1\.\d+\.\d+ ", script, re.M)
    assert re.search(r"^PROMETHEUS_OPERATOR_VERSION=v\d+\.\d+\.\d+$", script, re.M)
    assert '"k8s.io/kubernetes@$K8S_VERSION"' in script
    requirements = (tools.ROOT / "deploy/tools/requirements.txt").read_text()
    for pin in ("checkov==", "kubernetes-validate==", "check-jsonschema=="):
        assert pin in requirements
    assert "--hash=sha256:" in requirements
