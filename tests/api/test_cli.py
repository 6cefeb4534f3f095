"""`tickpipe api token` and `tickpipe signals tail` parsing; API settings and key handling."""

from __future__ import annotations

import argparse
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


def test_token_command_when_no_key_configured_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TICKPIPE_API_JWT_KEY", raising=False)
    monkeypatch.delenv("TICKPIPE_API_JWT_KEY_FILE", raising=False)
    args = _parser().parse_args(["api", "token", "--sub", "alice"])
    with pytest.raises(ValueError, match="no JWT key"):
        args.func(args)


def test_settings_when_key_file_given_reads_it_and_hides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "jwt.key"
    secret.write_text(KEY.get_secret_value() + "\n")
    monkeypatch.delenv("TICKPIPE_API_JWT_KEY", raising=False)
    monkeypatch.setenv("TICKPIPE_API_JWT_KEY_FILE", str(secret))
    settings = ApiSettings()
    assert settings.signing_key().get_secret_value() == KEY.get_secret_value()
    assert KEY.get_secret_value() not in repr(settings.signing_key())


def test_settings_when_key_and_key_file_both_set_refuses(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not both"):
        ApiSettings(jwt_key=SecretStr("k" * 40), jwt_key_file=tmp_path / "k")


def test_settings_when_printed_never_shows_key() -> None:
    settings = ApiSettings(jwt_key=KEY)
    assert KEY.get_secret_value() not in repr(settings) + str(settings.model_dump())


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
