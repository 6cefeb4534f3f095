"""The CLI's front door: a user's mistake is one line on stderr and a non-zero exit, never
a traceback (unless --debug); `--version`; a help text for every argument."""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tickpipe.cli import build_parser, main

SAMPLE = Path("data/sample/binance-spot-btcusdt-20240808.gz")


def _cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TICKPIPE_")}
    return subprocess.run(
        [sys.executable, "-m", "tickpipe.cli", *argv],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _one_line(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The command failed with exactly one line on stderr naming every needle."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def truncated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "truncated.gz"
    data = SAMPLE.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(EOFError), gzip.open(path) as fh:  # it is truncated indeed
        fh.read()
    return path


@pytest.mark.parametrize("command", ["demo", "train"])
def test_missing_data_file_is_one_line(command: str) -> None:
    result = _cli(command, "--data", "/nonexistent")
    assert result.returncode == 2
    _one_line(result, f"tickpipe {command}", "/nonexistent", "no such file")


def test_missing_sample_when_run_elsewhere_says_where_to_run_from(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tickpipe.cli", "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    _one_line(result, str(SAMPLE), "repository root")


@pytest.mark.parametrize("command", ["backtest", "demo"])
def test_truncated_gzip_is_one_line_naming_the_file(command: str, truncated: Path) -> None:
    argv = [command, "--data", str(truncated)] + (["--quiet"] if command == "backtest" else [])
    result = _cli(*argv)
    assert result.returncode == 2
    _one_line(result, f"tickpipe {command}: {truncated}", "truncated or corrupt")


def test_debug_shows_the_traceback(truncated: Path) -> None:
    for argv in (
        ["--debug", "backtest", "--data", str(truncated), "--quiet"],
        ["backtest", "--data", str(truncated), "--quiet", "--debug"],
    ):
        result = _cli(*argv)
        assert result.returncode != 0
        assert "Traceback" in result.stderr and "EOFError" in result.stderr


def test_bad_setting_value_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--set", "risk.capital=abc", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("tickpipe backtest:") and "capital" in err


def test_unknown_service_in_set_names_it_and_the_known_ones() -> None:
    result = _cli("backtest", "--set", "nosvc.x=1")
    assert result.returncode == 2
    line = _one_line(result, "--set", "unknown service 'nosvc'", "risk", "ingest")
    assert "invalid _assignment value" not in line


def test_window_without_data_is_an_error_with_the_data_span(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["backtest", "--from", "2030-01-01", "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1, captured.err
    assert "no market data" in captured.err
    assert "spans 2024-08-08T23:54:14Z to 2024-08-09T00:00:01Z" in captured.err
    assert "Per instrument" not in captured.out  # no empty report


def test_window_without_data_in_a_sweep_fails_before_running(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["backtest", "--from", "2030-01-01", "--quiet", "--sweep", "risk.capital=1e4,2e4"]
    assert main(argv) == 2
    assert "spans 2024-08-08T23:54:14Z" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["api", "token", "--sub", "alice"], ["api", "serve"]])
def test_api_without_a_key_says_which_setting_to_provide(argv: list[str]) -> None:
    result = _cli(*argv)
    _one_line(result, "no JWT key", "TICKPIPE_API_JWT_KEY", "TICKPIPE_API_JWT_KEY_FILE")


def test_invalid_environment_names_the_variable_not_its_value() -> None:
    result = _cli("topics", "list", env={"TICKPIPE_HTTP_PORT": "s3cr3t"})
    assert result.returncode == 2
    line = _one_line(result, "tickpipe topics: invalid settings: TICKPIPE_HTTP_PORT")
    assert "s3cr3t" not in line


def test_usage_error_is_one_line_pointing_at_help() -> None:
    result = _cli("backtest", "--from", "yesterday")
    assert result.returncode == 2
    _one_line(result, "--from", "expected an ISO time", "tickpipe backtest --help")


def test_unexpected_error_is_one_line_and_keeps_the_traceback(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def boom(args: argparse.Namespace) -> int:
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr("tickpipe.cli._schemas", boom)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("TICKPIPE_DEBUG", raising=False)
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    assert main(["schemas", "check"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "unexpected error: RuntimeError: something broke" in err
    saved = list(tmp_path.glob("tickpipe-error-*.txt"))
    assert len(saved) == 1 and str(saved[0]) in err
    assert "Traceback" in saved[0].read_text() and "boom" in saved[0].read_text()
    with pytest.raises(RuntimeError):
        main(["--debug", "schemas", "check"])
    monkeypatch.setenv("TICKPIPE_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["schemas", "check"])


def test_interrupt_is_one_line_and_exit_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr("tickpipe.cli._schemas", interrupted)
    monkeypatch.delenv("TICKPIPE_DEBUG", raising=False)
    assert main(["schemas", "check"]) == 130
    assert capsys.readouterr().err == "tickpipe schemas: interrupted\n"


def test_a_commands_own_exit_message_passes_through(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuses(args: argparse.Namespace) -> int:
        raise SystemExit("tickpipe schemas: no")

    monkeypatch.setattr("tickpipe.cli._schemas", refuses)
    with pytest.raises(SystemExit, match="tickpipe schemas: no"):
        main(["schemas", "check"])


def test_version_is_the_installed_packages() -> None:
    from importlib.metadata import version

    result = _cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"tickpipe {version('tickpipe')}"


def _parsers(
    parser: argparse.ArgumentParser,
) -> Iterator[tuple[argparse.ArgumentParser, list[argparse.Action]]]:
    yield parser, parser._actions
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


def test_every_argument_of_every_command_has_help() -> None:
    missing = []
    for parser, actions in _parsers(build_parser()):
        for action in actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                helped = {a.dest for a in action._choices_actions if a.help}
                missing += [f"{parser.prog} {c}" for c in action.choices if c not in helped]
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                name = "/".join(action.option_strings) or action.dest
                missing.append(f"{parser.prog} {name}")
    assert not missing, f"arguments without help: {missing}"
