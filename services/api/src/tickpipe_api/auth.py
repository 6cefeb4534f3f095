"""Bearer JWTs per RFC 8725: one pinned algorithm, required exp/aud/iss/sub, role claims.

HS256 is pinned: the API and the `tickpipe api token` helper share one secret, which suits a
single-team deployment. Moving to an IdP means pinning ES256 and loading its public key here;
nothing else changes. The algorithm comes from this constant, never from the token header.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import jwt
from pydantic import SecretStr

ALGORITHM = "HS256"
MIN_KEY_BYTES = 32  # RFC 7518 §3.2: an HS256 key is at least as long as the hash output
LEEWAY_S = 10
MAX_LIFETIME_S = 24 * 3600


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role
    expires_at: float  # seconds since the epoch: long-lived streams end here

    def allows(self, needed: Role) -> bool:
        return _RANK[self.role] >= _RANK[needed]


class InvalidToken(Exception):
    """A token that does not authenticate anyone; the reason is for logs, not for clients."""


class TokenVerifier:
    def __init__(self, key: SecretStr, issuer: str, audience: str) -> None:
        if len(key.get_secret_value().encode()) < MIN_KEY_BYTES:
            raise ValueError(f"the JWT key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key
        self._issuer = issuer
        self._audience = audience

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._key.get_secret_value(),
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "aud", "iss", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(type(exc).__name__) from exc
        if claims["exp"] - claims["iat"] > MAX_LIFETIME_S:
            raise InvalidToken("lifetime too long")
        try:
            role = Role(claims.get("role", ""))
        except ValueError as exc:
            raise InvalidToken("unknown role") from exc
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("bad subject")
        return Principal(subject, role, float(claims["exp"]))


def issue_token(
    key: SecretStr,
    *,
    subject: str,
    role: Role,
    issuer: str,
    audience: str,
    now_s: int,
    ttl_s: int = 8 * 3600,
) -> str:
    """A signed token for local use and tests (`tickpipe api token`)."""
    claims = {
        "sub": subject,
        "role": role.value,
        "iss": issuer,
        "aud": audience,
        "iat": now_s,
        "exp": now_s + min(ttl_s, MAX_LIFETIME_S),
    }
    return jwt.encode(claims, key.get_secret_value(), algorithm=ALGORITHM)
