"""Bearer JWTs per RFC 8725: one pinned algorithm, required exp/aud/iss/sub, role claims.

HS256 is pinned: the API and the `tickpipe api token` helper share the keys, which suits a
single-team deployment. Moving to an IdP means pinning ES256 and loading its public keys here;
nothing else changes. The algorithm comes from this constant, never from the token header.

Keys carry an id (`kid`, in the token's header). During a rotation several are configured
(`KeyRing`); a token is checked against the key its `kid` names and no other, so a token
naming an unknown or retired key is refused without trying the rest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

import jwt
from pydantic import SecretStr

ALGORITHM = "HS256"
MIN_KEY_BYTES = 32  # RFC 7518 §3.2: an HS256 key is at least as long as the hash output
LEEWAY_S = 10
MAX_LIFETIME_S = 24 * 3600
# The kid of a key given alone (TICKPIPE_API_JWT_KEY / _KEY_FILE); tokens issued before keys
# had ids carry no kid and are checked against this one.
DEFAULT_KID = "default"
# A kid is also a file name (a key directory, a Kubernetes secret's entries) and a header value.
KID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


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


def check_key(kid: str, key: SecretStr) -> None:
    """Refuses a kid or a key the verifier would refuse (the message never holds the key)."""
    if not KID_PATTERN.fullmatch(kid):
        raise ValueError(
            f"JWT key id {kid!r} must be 1-64 of A-Z a-z 0-9 . _ - (not starting with . _ -)"
        )
    if len(key.get_secret_value().encode()) < MIN_KEY_BYTES:
        raise ValueError(f"the JWT key {kid!r} must be at least {MIN_KEY_BYTES} bytes")


@dataclass(frozen=True, eq=False)
class KeyRing:
    """The configured HS256 keys by kid, and the kid new tokens are signed with (if chosen)."""

    keys: Mapping[str, SecretStr]
    signing_kid: str | None = None

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("no JWT key configured")
        for kid, key in self.keys.items():
            check_key(kid, key)
        # A copy that nobody can change after these checks.
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))
        if self.signing_kid is not None and self.signing_kid not in self.keys:
            raise ValueError(
                f"signing key id {self.signing_kid!r} is not among the keys ({self.kids()})"
            )

    @classmethod
    def single(cls, key: SecretStr, kid: str = DEFAULT_KID) -> KeyRing:
        return cls({kid: key}, kid)

    def kids(self) -> str:
        return ", ".join(sorted(self.keys))

    def get(self, kid: str) -> SecretStr | None:
        return self.keys.get(kid)

    def signer(self, kid: str | None = None) -> tuple[str, SecretStr]:
        """(kid, key) to sign with: `kid`, else the signing kid, else the only key."""
        chosen = kid or self.signing_kid
        if chosen is None:
            if len(self.keys) > 1:
                raise ValueError(
                    f"several JWT keys ({self.kids()}): choose the one that signs with --kid "
                    "or TICKPIPE_API_JWT_SIGNING_KID"
                )
            (chosen,) = self.keys
        key = self.keys.get(chosen)
        if key is None:
            raise ValueError(f"no JWT key with id {chosen!r} (configured: {self.kids()})")
        return chosen, key


class TokenVerifier:
    def __init__(self, keys: KeyRing | SecretStr, issuer: str, audience: str) -> None:
        # A bare key is one key under the default kid (the ring checks its length).
        self._keys = keys if isinstance(keys, KeyRing) else KeyRing.single(keys)
        self._issuer = issuer
        self._audience = audience

    def verify(self, token: str) -> Principal:
        try:
            kid = jwt.get_unverified_header(token).get("kid", DEFAULT_KID)
        except jwt.PyJWTError as exc:
            raise InvalidToken(type(exc).__name__) from exc
        # Only the key the header names is tried: an unknown or retired kid fails here.
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("unknown kid")
        try:
            claims = jwt.decode(
                token,
                key.get_secret_value(),
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
    keys: KeyRing | SecretStr,
    *,
    subject: str,
    role: Role,
    issuer: str,
    audience: str,
    now_s: int,
    ttl_s: int = 8 * 3600,
    kid: str | None = None,
) -> str:
    """A signed token for local use and tests (`tickpipe api token`).

    Signed with `kid`, else the ring's signing key; a key the verifier would refuse (too
    short, say) is refused here too, so no token is handed out that the API rejects.
    """
    ring = keys if isinstance(keys, KeyRing) else KeyRing.single(keys)
    kid, key = ring.signer(kid)
    claims = {
        "sub": subject,
        "role": role.value,
        "iss": issuer,
        "aud": audience,
        "iat": now_s,
        "exp": now_s + min(ttl_s, MAX_LIFETIME_S),
    }
    return jwt.encode(claims, key.get_secret_value(), algorithm=ALGORITHM, headers={"kid": kid})
