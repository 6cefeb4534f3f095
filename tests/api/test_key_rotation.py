"""Signing-key rotation: tokens name their key (`kid`); two keys verify during a rotation,
and once the old key is removed its tokens are refused."""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import hmac
import json
import os
import time
from pathlib import Path

import jwt
import orjson
import pytest
from pydantic import SecretStr

from tests.api.conftest import AUDIENCE, ISSUER, build_api
from tests.api.testclient import TestClient
from tickpipe_api.api import create_app
from tickpipe_api.auth import InvalidToken, KeyRing, Role, TokenVerifier, issue_token
from tickpipe_api.cli import add_parser
from tickpipe_api.settings import ApiSettings

OLD = SecretStr("old-signing-key-" + "a1" * 24)
NEW = SecretStr("new-signing-key-" + "b2" * 24)


def _token(keys: KeyRing | SecretStr, kid: str | None = None, sub: str = "alice") -> str:
    return issue_token(
        keys,
        subject=sub,
        role=Role.VIEWER,
        issuer=ISSUER,
        audience=AUDIENCE,
        now_s=int(time.time()),
        ttl_s=600,
        kid=kid,
    )


def _status(keys: KeyRing, token: str) -> int:
    """What the API answers a read with `token`, when it is configured with `keys`."""
    ports = dataclasses.replace(build_api().ports, verifier=TokenVerifier(keys, ISSUER, AUDIENCE))
    with TestClient(create_app(ports)) as client:
        reply = client.get("/positions", headers={"Authorization": f"Bearer {token}"})
        return int(reply.status_code)


def _header(token: str) -> dict[str, object]:
    return jwt.get_unverified_header(token)


def _claims() -> dict[str, object]:
    now = int(time.time())
    return {
        "sub": "mallory",
        "role": "admin",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
    }


def test_rotation_when_both_keys_configured_then_old_and_new_tokens_accepted() -> None:
    before = KeyRing({"k1": OLD}, "k1")
    during = KeyRing({"k1": OLD, "k2": NEW}, "k2")
    after = KeyRing({"k2": NEW}, "k2")
    old_token, new_token = _token(before), _token(during)
    assert (_header(old_token)["kid"], _header(new_token)["kid"]) == ("k1", "k2")

    assert _status(before, old_token) == 200
    assert _status(during, old_token) == 200
    assert _status(during, new_token) == 200
    # The old key removed: its tokens are refused, the new ones still work.
    assert _status(after, old_token) == 401
    assert _status(after, new_token) == 200


def test_verify_when_kid_unknown_then_401() -> None:
    ring = KeyRing({"k1": OLD, "k2": NEW}, "k2")
    # Signed with a configured key, but naming a kid that is not configured.
    unknown = jwt.encode(
        _claims(), NEW.get_secret_value(), algorithm="HS256", headers={"kid": "k9"}
    )
    assert _status(ring, unknown) == 401
    with pytest.raises(InvalidToken, match="unknown kid"):
        TokenVerifier(ring, ISSUER, AUDIENCE).verify(unknown)


def _signed_with_header(header: dict[str, object], key: SecretStr) -> str:
    """HS256 by hand: PyJWT will not encode a header it would not accept."""

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = b64(orjson.dumps(header)) + b"." + b64(orjson.dumps(_claims()))
    mac = hmac.new(key.get_secret_value().encode(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + b64(mac)).decode()


@pytest.mark.parametrize("kid", [7, None, ["k1"], {"k": "k1"}, "", "K1", "k1 "])
def test_verify_when_kid_is_not_a_configured_name_then_401(kid: object) -> None:
    token = _signed_with_header({"alg": "HS256", "typ": "JWT", "kid": kid}, OLD)
    assert _status(KeyRing({"k1": OLD}), token) == 401
    # The same token naming the key properly is accepted: only the kid was wrong.
    honest = _signed_with_header({"alg": "HS256", "typ": "JWT", "kid": "k1"}, OLD)
    assert _status(KeyRing({"k1": OLD}), honest) == 200


def test_verify_when_token_names_one_key_but_is_signed_with_the_other_then_401() -> None:
    """The kid picks the one key tried: a valid signature under another key is not enough."""
    ring = KeyRing({"k1": OLD, "k2": NEW}, "k2")
    crossed = jwt.encode(
        _claims(), OLD.get_secret_value(), algorithm="HS256", headers={"kid": "k2"}
    )
    assert _status(ring, crossed) == 401


def test_verify_when_signed_with_a_retired_key_under_a_current_kid_then_401() -> None:
    # The same kid reused for a new key (not advised, but it must not let the old key in).
    retired = _token(KeyRing({"k1": OLD}))
    assert _status(KeyRing({"k1": NEW}), retired) == 401


def test_verify_when_token_has_no_kid_then_checked_against_the_default_key() -> None:
    """Tokens issued before keys had ids keep working while their key is the `default` one."""
    legacy = jwt.encode(_claims(), OLD.get_secret_value(), algorithm="HS256")
    assert "kid" not in _header(legacy)
    assert _status(KeyRing.single(OLD), legacy) == 200
    assert _status(KeyRing({"default": OLD, "k2": NEW}, "k2"), legacy) == 200
    assert _status(KeyRing({"k1": OLD}), legacy) == 401


def test_single_key_settings_when_issuing_then_kid_is_default() -> None:
    token = _token(ApiSettings(jwt_key=OLD).key_ring())
    assert _header(token)["kid"] == "default"
    assert _status(ApiSettings(jwt_key=OLD).key_ring(), token) == 200


def test_key_ring_when_a_key_is_weak_then_refused_naming_its_kid_only() -> None:
    with pytest.raises(ValueError, match="'k2' must be at least 32 bytes") as refused:
        KeyRing({"k1": OLD, "k2": SecretStr("hunter2")})
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize("kid", ["", "..data", "a/b", "k 1", "x" * 65])
def test_key_ring_when_kid_malformed_then_refused(kid: str) -> None:
    with pytest.raises(ValueError, match="key id"):
        KeyRing({kid: OLD})


def test_key_ring_when_signing_kid_not_configured_then_refused() -> None:
    with pytest.raises(ValueError, match="'k3' is not among the keys"):
        KeyRing({"k1": OLD, "k2": NEW}, "k3")


def test_signer_when_several_keys_and_none_chosen_then_refused() -> None:
    ring = KeyRing({"k1": OLD, "k2": NEW})
    with pytest.raises(ValueError, match=r"several JWT keys \(k1, k2\)"):
        ring.signer()
    assert ring.signer("k1")[0] == "k1"


# --- where the keys come from ------------------------------------------------------------


def _kubernetes_secret_dir(root: Path, entries: dict[str, str]) -> Path:
    """A secret volume as the kubelet writes it: entries are links into `..data`."""
    data = root / "..2026_01_01_00_00_00.000000000"
    data.mkdir(parents=True)
    for name, value in entries.items():
        (data / name).write_text(value + "\n")
    (root / "..data").symlink_to(data.name)
    for name in entries:
        (root / name).symlink_to(Path("..data") / name)
    return root


@pytest.mark.parametrize("form", ["json", "toml", "directory"])
def test_keys_file_when_read_then_every_key_by_kid(tmp_path: Path, form: str) -> None:
    entries = {"k1": OLD.get_secret_value(), "k2": NEW.get_secret_value()}
    if form == "json":
        path = tmp_path / "keys.json"
        path.write_text(json.dumps(entries))
    elif form == "toml":
        path = tmp_path / "keys.toml"
        path.write_text("".join(f'{kid} = "{key}"\n' for kid, key in entries.items()))
    else:
        path = _kubernetes_secret_dir(tmp_path / "jwt", entries)

    ring = ApiSettings(jwt_keys_file=path, jwt_signing_kid="k2").key_ring()

    assert sorted(ring.keys) == ["k1", "k2"]
    assert ring.signer() == ("k2", ring.keys["k2"])
    assert ring.keys["k1"].get_secret_value() == OLD.get_secret_value()


@pytest.mark.parametrize(
    ("name", "text", "error"),
    [
        ("keys.json", '{"k1": "', "not JSON"),
        ("keys.json", '["a"]', "kid = key strings"),
        ("keys.json", '{"k1": 12345678901234567890123456789012345}', "kid = key strings"),
        ("keys.json", "{}", "no JWT key configured"),
        ("keys.toml", 'k1 = "unterminated', "not TOML"),
        ("keys.yaml", "k1: x", "a directory, a .json or a .toml file"),
    ],
)
def test_keys_file_when_malformed_then_one_line_naming_the_setting_and_no_key(
    tmp_path: Path, name: str, text: str, error: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=error) as refused:
        ApiSettings(jwt_keys_file=path).key_ring()
    message = str(refused.value)
    assert message.startswith("TICKPIPE_API_JWT_KEYS_FILE: ") and "\n" not in message
    assert "unterminated" not in message


def test_keys_file_when_missing_then_says_so(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        ApiSettings(jwt_keys_file=tmp_path / "absent.json").key_ring()


def test_rotation_when_driven_through_settings_and_the_token_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's steps: add the new key, sign with it, remove the old one."""
    parser = argparse.ArgumentParser(prog="tickpipe")
    add_parser(parser.add_subparsers(dest="command", required=True))
    keys = tmp_path / "jwt"
    keys.mkdir()
    for var in ("TICKPIPE_API_JWT_KEY", "TICKPIPE_API_JWT_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TICKPIPE_API_JWT_KEYS_FILE", str(keys))

    def issue(*extra: str) -> str:
        args = parser.parse_args(["api", "token", "--sub", "alice", *extra])
        assert args.func(args) == 0
        return capsys.readouterr().out.strip()

    def server() -> KeyRing:
        return ApiSettings().key_ring()  # what `tickpipe api serve` verifies with

    (keys / "k1").write_text(OLD.get_secret_value())
    old_token = issue()  # the only key signs
    (keys / "k2").write_text(NEW.get_secret_value())  # 1. add the new key
    with pytest.raises(SystemExit, match="several JWT keys"):
        issue()
    monkeypatch.setenv("TICKPIPE_API_JWT_SIGNING_KID", "k2")  # 2. sign with it
    new_token = issue()
    assert _header(issue("--kid", "k1"))["kid"] == "k1"  # an explicit choice wins
    assert _status(server(), old_token) == 200
    assert _status(server(), new_token) == 200
    os.remove(keys / "k1")  # 3. once old tokens have expired, remove the old key
    assert _status(server(), old_token) == 401
    assert _status(server(), new_token) == 200
    with pytest.raises(SystemExit, match="no JWT key with id 'k1'"):
        issue("--kid", "k1")
