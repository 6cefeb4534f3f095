"""Credentials: environment, secret files, or an AES-256-GCM keyfile; held as SecretStr so
they never show in reprs or errors. Paper mode loads none."""

from __future__ import annotations

import argparse
import json
import stat
from pathlib import Path

import pytest

from tickpipe_execution import app
from tickpipe_execution.cli import add_parser, create_keyfile
from tickpipe_execution.domain.paper import PaperExchange
from tickpipe_execution.live.credentials import CredentialsError, load_credentials
from tickpipe_execution.live.keyfile import KeyfileError, decode_key, new_key, read_keyfile

KEY = "SENTINEL-KEY-7f3a9c"
SECRET = "SENTINEL-SECRET-b81e44"
P = "TICKPIPE_EXECUTION_"


def _keyfile(tmp_path: Path, key: str) -> Path:
    out = tmp_path / "keys.enc"
    env = {f"{P}KEYFILE_KEY": key, f"{P}API_KEY": KEY, f"{P}API_SECRET": SECRET}
    create_keyfile(out, env, prompt=lambda _: pytest.fail("no prompt expected"))
    return out


def test_credentials_when_given_in_environment_load_as_secret_str() -> None:
    creds = load_credentials({f"{P}API_KEY": KEY, f"{P}API_SECRET": SECRET})

    assert creds.ccxt_config() == {"apiKey": KEY, "secret": SECRET}
    assert KEY not in repr(creds) and SECRET not in str(creds)
    assert KEY not in creds.model_dump_json()


def test_credentials_when_given_as_secret_files_read_and_strip_them(tmp_path: Path) -> None:
    (tmp_path / "k").write_text(KEY + "\n")
    (tmp_path / "s").write_text(SECRET + "\n")

    creds = load_credentials(
        {f"{P}API_KEY_FILE": str(tmp_path / "k"), f"{P}API_SECRET_FILE": str(tmp_path / "s")}
    )

    assert creds.ccxt_config() == {"apiKey": KEY, "secret": SECRET}


def test_credentials_when_keyfile_and_key_in_env_decrypts_them(tmp_path: Path) -> None:
    key = new_key()
    path = _keyfile(tmp_path, key)
    (tmp_path / "kk").write_text(key)

    via_env = load_credentials({f"{P}KEYFILE": str(path), f"{P}KEYFILE_KEY": key})
    via_file = load_credentials(
        {f"{P}KEYFILE": str(path), f"{P}KEYFILE_KEY_FILE": str(tmp_path / "kk")}
    )

    assert via_env == via_file
    assert via_env.ccxt_config() == {"apiKey": KEY, "secret": SECRET}
    blob = path.read_bytes()
    assert KEY.encode() not in blob and SECRET.encode() not in blob
    assert set(json.loads(blob)) == {"v", "nonce", "ciphertext"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_keyfile_when_decrypted_with_wrong_key_fails_without_revealing_anything(
    tmp_path: Path,
) -> None:
    path = _keyfile(tmp_path, new_key())
    wrong = new_key()

    with pytest.raises(CredentialsError) as err:
        load_credentials({f"{P}KEYFILE": str(path), f"{P}KEYFILE_KEY": wrong})

    assert "cannot be decrypted" in str(err.value)
    assert wrong not in str(err.value) and KEY not in str(err.value)


def test_keyfile_when_tampered_refuses_it(tmp_path: Path) -> None:
    key = new_key()
    path = _keyfile(tmp_path, key)
    doc = json.loads(path.read_bytes())
    doc["ciphertext"] = doc["ciphertext"][:-4] + (
        "AAAA" if doc["ciphertext"][-4:] != "AAAA" else "BBBB"
    )
    path.write_text(json.dumps(doc))

    with pytest.raises(KeyfileError):
        read_keyfile(path, decode_key(key))


@pytest.mark.parametrize("key", ["not base64 !!", "c2hvcnQ="])
def test_keyfile_key_when_not_32_bytes_of_base64_is_refused(key: str) -> None:
    with pytest.raises(KeyfileError):
        decode_key(key)


def test_credentials_when_missing_name_the_variables_not_values() -> None:
    with pytest.raises(CredentialsError) as err:
        load_credentials({f"{P}API_KEY": KEY})

    assert f"{P}API_SECRET" in str(err.value)
    assert KEY not in str(err.value)


def test_keys_cli_when_credentials_not_in_env_prompts_hidden(tmp_path: Path) -> None:
    key = new_key()
    answers = {"api_key: ": KEY, "api_secret: ": SECRET}

    create_keyfile(tmp_path / "k.enc", {f"{P}KEYFILE_KEY": key}, prompt=answers.__getitem__)

    assert read_keyfile(tmp_path / "k.enc", decode_key(key)) == {
        "api_key": KEY,
        "api_secret": SECRET,
    }


def test_execution_build_when_paper_mode_loads_no_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(f"{P}API_KEY", KEY)

    def explode(_: object) -> None:
        raise AssertionError("paper mode must not load credentials")

    monkeypatch.setattr("tickpipe_execution.live.credentials.load_credentials", explode)

    venue = app.build_venue(app.ExecutionSettings(mode="paper"))

    assert isinstance(venue, PaperExchange)


def test_execution_build_when_live_without_credentials_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("API_KEY", "API_SECRET", "KEYFILE"):
        monkeypatch.delenv(f"{P}{name}", raising=False)

    with pytest.raises(SystemExit, match="needs credentials"):
        app.build_venue(app.ExecutionSettings(mode="live"))


def test_keys_command_when_parsed_genkey_then_create_writes_a_readable_keyfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    genkey = parser.parse_args(["keys", "genkey"])
    assert genkey.func(genkey) == 0
    key = capsys.readouterr().out.strip()
    for name, value in {"KEYFILE_KEY": key, "API_KEY": KEY, "API_SECRET": SECRET}.items():
        monkeypatch.setenv(f"{P}{name}", value)

    create = parser.parse_args(["keys", "create", "--out", str(tmp_path / "k.enc")])
    code = create.func(create)

    assert code == 0
    assert KEY not in capsys.readouterr().out
    assert read_keyfile(tmp_path / "k.enc", decode_key(key))["api_key"] == KEY
