"""JWT attacks (RFC 8725): each is answered 401 and publishes nothing."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from tests.api.conftest import AUDIENCE, ISSUER, KEY, Api, token
from tests.api.testclient import TestClient
from tickpipe_api.auth import TokenVerifier


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**override: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "mallory",
        "role": "admin",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
    }
    claims.update(override)
    return {k: v for k, v in claims.items() if v is not None}


def _hs256(**override: Any) -> str:
    return jwt.encode(_claims(**override), KEY.get_secret_value(), algorithm="HS256")


def _alg_none() -> str:
    header = _b64(orjson.dumps({"alg": "none", "typ": "JWT"}))
    return f"{header}.{_b64(orjson.dumps(_claims()))}."


def _tampered() -> str:
    head, payload, sig = token("viewer-user").split(".")
    # Same signature over an escalated payload.
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    return f"{head}.{_b64(orjson.dumps(claims))}.{sig}"


def _flip_signature(jwt_text: str) -> str:
    head, payload, sig = jwt_text.split(".")
    middle = len(sig) // 2
    flipped = "A" if sig[middle] != "A" else "B"
    return f"{head}.{payload}.{sig[:middle]}{flipped}{sig[middle + 1 :]}"


def _es256() -> str:
    return jwt.encode(_claims(), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")


ATTACKS: dict[str, Callable[[], str]] = {
    "alg_none": _alg_none,
    "alg_none_uppercase": lambda: _alg_none().replace(
        _b64(orjson.dumps({"alg": "none", "typ": "JWT"})),
        _b64(orjson.dumps({"alg": "None", "typ": "JWT"})),
    ),
    "wrong_alg_hs512_same_key": lambda: jwt.encode(
        _claims(), KEY.get_secret_value(), algorithm="HS512"
    ),
    "wrong_alg_es256": _es256,
    "wrong_key": lambda: jwt.encode(_claims(), "x" * 40, algorithm="HS256"),
    "wrong_audience": lambda: _hs256(aud="someone-else"),
    "wrong_issuer": lambda: _hs256(iss="evil"),
    "expired": lambda: _hs256(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
    "missing_exp": lambda: _hs256(exp=None),
    "missing_aud": lambda: _hs256(aud=None),
    "missing_iss": lambda: _hs256(iss=None),
    "missing_sub": lambda: _hs256(sub=None),
    "unknown_role": lambda: _hs256(role="root"),
    "lifetime_too_long": lambda: _hs256(exp=int(time.time()) + 30 * 86400),
    "tampered_signature": lambda: (
        token()[:-4] + ("AAAA" if not token().endswith("AAAA") else "BBBB")
    ),
    "tampered_payload": _tampered,
    "garbage": lambda: "not.a.jwt",
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_control_when_token_is_attack_rejected_401_and_nothing_published(
    api: Api, client: TestClient, attack: str
) -> None:
    bad = ATTACKS[attack]()
    r = client.post(
        "/control/kill-switch", json={"engaged": True}, headers={"Authorization": f"Bearer {bad}"}
    )
    assert r.status_code == 401
    assert api.control.published == []


@pytest.mark.parametrize("attack", ["alg_none", "expired", "wrong_audience"])
def test_stream_when_query_token_is_attack_rejected_401(client: TestClient, attack: str) -> None:
    r = client.get("/dashboard/stream", params={"access_token": ATTACKS[attack](), "max_events": 1})
    assert r.status_code == 401


def test_control_when_valid_admin_token_accepted(api: Api, client: TestClient) -> None:
    # The control case for the attacks above: the same request with an honest token works.
    r = client.post(
        "/control/kill-switch",
        json={"engaged": True},
        headers={"Authorization": f"Bearer {_hs256()}"},
    )
    assert r.status_code == 202
    assert [c.issued_by for c in api.control.published] == ["mallory"]


def test_verifier_when_key_shorter_than_32_bytes_refuses_to_start() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        TokenVerifier(SecretStr("short"), ISSUER, AUDIENCE)
