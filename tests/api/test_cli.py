"""`tickpipe api token` and `tickpipe signals tail` parsing; API settings and key handling."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from tests.api.conftest import KEY
from tests.api.factories import signal
from tickpipe_api.auth import Role, TokenVerifier
from tickpipe_api.cli import add_parser, add_signals_parser
from tickpipe_api.settings import ApiSettings
from tickpipe_api.tail import parse_time, render


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tickpipe")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    add_signals_parser(sub)
    return parser


def test_token_command_when_run_prints_token_the_api_accepts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TICKPIPE_API_JWT_KEY", KEY.get_secret_value())
    args = _parser().parse_args(["api", "token", "--sub", "alice", "--role", "operator"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out.strip()
    principal = TokenVerifier(KEY, "tickpipe", "tickpipe-api").verify(printed)
    assert (principal.subject, principal.role) == ("alice", Role.OPERATOR)
    assert KEY.get_secret_value() not in printed


def test_token_command_when_no_key_configured_fails_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in ("TICKPIPE_API_JWT_KEY", "TICKPIPE_API_JWT_KEY_FILE", "TICKPIPE_API_JWT_KEYS_FILE"):
        monkeypatch.delenv(var, raising=False)
    args = _parser().parse_args(["api", "token", "--sub", "alice"])
    with pytest.raises(SystemExit) as exited:
        args.func(args)
    assert isinstance(exited.value.code, str)  # printed to stderr, exit status 1
    assert exited.value.code.startswith("api token: no JWT key")
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("key", ["short", "x" * 31, ""])
def test_token_command_when_key_shorter_than_the_api_accepts_refuses_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    """A token the API would answer 401 is never printed: the key is refused up front."""
    monkeypatch.delenv("TICKPIPE_API_JWT_KEY_FILE", raising=False)
    monkeypatch.delenv("TICKPIPE_API_JWT_KEYS_FILE", raising=False)
    monkeypatch.setenv("TICKPIPE_API_JWT_KEY", key)
    args = _parser().parse_args(["api", "token", "--sub", "alice"])
    with pytest.raises(SystemExit) as exited:
        args.func(args)
    message = exited.value.code
    assert isinstance(message, str) and "\n" not in message
    if key:
        assert (
            message
            == "api token: TICKPIPE_API_JWT_KEY: the JWT key 'default' must be at least 32 bytes"
        )
        with pytest.raises(ValueError, match="at least 32 bytes"):
            TokenVerifier(SecretStr(key), "tickpipe", "tickpipe-api")  # the API agrees
    else:  # compose passes an unset key through as ""
        assert message.startswith("api token: no JWT key")
    assert capsys.readouterr().out == ""


def test_token_command_when_run_as_a_process_exits_non_zero_with_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKPIPE_API_JWT")} | {
        "TICKPIPE_API_JWT_KEY": "short"
    }
    result = subprocess.run(
        [sys.executable, "-m", "tickpipe.cli", "api", "token", "--sub", "alice"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "api token: TICKPIPE_API_JWT_KEY: the JWT key 'default' must be at least 32 bytes"
    ]


def test_token_command_when_a_keys_file_holds_a_weak_key_refuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"k1": KEY.get_secret_value(), "k2": "too-short"}))
    monkeypatch.delenv("TICKPIPE_API_JWT_KEY", raising=False)
    monkeypatch.setenv("TICKPIPE_API_JWT_KEYS_FILE", str(keys))
    monkeypatch.setenv("TICKPIPE_API_JWT_SIGNING_KID", "k1")
    args = _parser().parse_args(["api", "token", "--sub", "alice"])
    # Even signing with the good key: the API would refuse to start with this file.
    with pytest.raises(SystemExit, match="'k2' must be at least 32 bytes"):
        args.func(args)


def test_token_command_when_bad_setting_names_it_without_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TICKPIPE_API_JWT_KEY", KEY.get_secret_value())
    monkeypatch.setenv("TICKPIPE_API_JWT_KEY_FILE", "/nonexistent")
    args = _parser().parse_args(["api", "token", "--sub", "alice"])
    with pytest.raises(SystemExit) as exited:
        args.func(args)
    message = str(exited.value.code)
    assert message.startswith("api token: settings: Value error, set only one of")
    assert "\n" not in message and KEY.get_secret_value() not in message


def test_settings_when_key_file_given_reads_it_and_hides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "jwt.key"
    secret.write_text(KEY.get_secret_value() + "\n")
    monkeypatch.delenv("TICKPIPE_API_JWT_KEY", raising=False)
    monkeypatch.setenv("TICKPIPE_API_JWT_KEY_FILE", str(secret))
    ring = ApiSettings().key_ring()
    assert ring.signer() == ("default", ring.keys["default"])
    assert ring.keys["default"].get_secret_value() == KEY.get_secret_value()
    assert KEY.get_secret_value() not in repr(ring)


def test_settings_when_key_file_missing_says_which_setting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^TICKPIPE_API_JWT_KEY_FILE: cannot read"):
        ApiSettings(jwt_key_file=tmp_path / "absent").key_ring()


def test_settings_when_key_and_key_file_both_set_refuses(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="set only one of"):
        ApiSettings(jwt_key=SecretStr("k" * 40), jwt_key_file=tmp_path / "k")
    with pytest.raises(ValidationError, match="set only one of"):
        ApiSettings(jwt_key=SecretStr("k" * 40), jwt_keys_file=tmp_path / "k")


def test_settings_when_signing_kid_without_keys_file_refuses() -> None:
    with pytest.raises(ValidationError, match="TICKPIPE_API_JWT_SIGNING_KID"):
        ApiSettings(jwt_key=KEY, jwt_signing_kid="k1")


def test_settings_when_printed_never_shows_key() -> None:
    settings = ApiSettings(jwt_key=KEY)
    assert KEY.get_secret_value() not in repr(settings) + str(settings.model_dump())
    assert KEY.get_secret_value() not in repr(settings.key_ring())


def test_tail_parser_when_given_options_parses_them() -> None:
    args = _parser().parse_args(
        ["signals", "tail", "--symbol", "binance:BTC/USDT", "--from", "2024-08-08T00:00", "--json"]
    )
    assert (args.symbol, args.from_time, args.json) == (
        "binance:BTC/USDT",
        "2024-08-08T00:00",
        True,
    )


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2024-08-08T00:00:00", 1723075200000),
        ("2024-08-08T02:00:00+02:00", 1723075200000),
        ("1723075200000", 1723075200000),
    ],
)
def test_parse_time_when_iso_or_epoch_ms_returns_epoch_ms(text: str, ms: int) -> None:
    assert parse_time(text) == ms


def test_render_when_json_gives_one_parseable_line() -> None:
    s = signal(probability=0.8)
    line = render(s, as_json=True)
    assert "\n" not in line
    assert type(s).model_validate_json(line) == s
    assert "long" in render(s, as_json=False)
