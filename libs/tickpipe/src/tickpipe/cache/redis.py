"""Redis cache adapter over redis-py. Keys live under a namespace prefix.

Transport security (`RedisSecurity`): a `rediss://user@host:port/db` URL for TLS and an ACL
user, the user's password in a file (read again for every new connection, so a rotated
password is picked up without a restart), a CA bundle and an optional client certificate.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.credentials import CredentialProvider

from tickpipe.bus.security import SecurityConfigError, check_file, read_secret
from tickpipe.settings import PlatformSettings

log = logging.getLogger(__name__)

URL_VAR = "TICKPIPE_REDIS_URL"
PASSWORD_FILE_VAR = "TICKPIPE_REDIS_PASSWORD_FILE"
CA_VAR = "TICKPIPE_REDIS_CA_FILE"
CERT_VAR = "TICKPIPE_REDIS_CERT_FILE"
KEY_VAR = "TICKPIPE_REDIS_KEY_FILE"


class _PasswordFile(CredentialProvider):
    """The ACL user and the password in its file, read when a connection is made."""

    def __init__(self, username: str | None, path: Path) -> None:
        self._username = username
        self._path = path

    def get_credentials(self) -> tuple[str] | tuple[str, str]:
        password = read_secret(self._path, PASSWORD_FILE_VAR)
        return (self._username, password) if self._username else (password,)


@dataclass(frozen=True)
class RedisSecurity:
    """How the cache authenticates and encrypts, from the settings; `connection` checks
    them (one line naming the setting, never a value) and gives redis-py's arguments."""

    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @classmethod
    def of(cls, settings: PlatformSettings) -> RedisSecurity:
        return cls(
            password_file=settings.redis_password_file,
            ca_file=settings.redis_ca_file,
            cert_file=settings.redis_cert_file,
            key_file=settings.redis_key_file,
        )

    def connection(self, url: str) -> tuple[str, dict[str, Any]]:
        """The URL without its user (redis-py takes it from the credential provider) and
        the keyword arguments for `redis.Redis.from_url`."""
        parts = urlsplit(url)
        if parts.password:
            raise SecurityConfigError(
                f"{URL_VAR} holds a password: put it in a file named by {PASSWORD_FILE_VAR}"
            )
        tls = parts.scheme == "rediss"
        kwargs: dict[str, Any] = {}
        username = parts.username or None
        if self.password_file is not None:
            check_file(self.password_file, PASSWORD_FILE_VAR, "secret")
            kwargs["credential_provider"] = _PasswordFile(username, self.password_file)
        elif username:
            raise SecurityConfigError(
                f"{URL_VAR} names an ACL user: set {PASSWORD_FILE_VAR} to its password's file"
            )
        files = {CA_VAR: self.ca_file, CERT_VAR: self.cert_file, KEY_VAR: self.key_file}
        given = [var for var, path in files.items() if path is not None]
        if given and not tls:
            raise SecurityConfigError(
                f"{', '.join(given)} set, but {URL_VAR} is not a rediss:// (TLS) URL"
            )
        if (self.cert_file is None) != (self.key_file is None):
            raise SecurityConfigError(f"a client certificate needs both {CERT_VAR} and {KEY_VAR}")
        if tls:
            kwargs["ssl_cert_reqs"] = "required"
            kwargs["ssl_check_hostname"] = True
            if self.ca_file is not None:
                kwargs["ssl_ca_certs"] = str(check_file(self.ca_file, CA_VAR, "certificate"))
            if self.cert_file is not None and self.key_file is not None:
                kwargs["ssl_certfile"] = str(check_file(self.cert_file, CERT_VAR, "certificate"))
                kwargs["ssl_keyfile"] = str(check_file(self.key_file, KEY_VAR, "private key"))
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"  # an IPv6 literal
        if parts.port is not None:
            netloc += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc)), kwargs


class RedisAccessError(RuntimeError):
    """Redis refuses this client (credentials, TLS, permissions): retrying cannot help."""


def check_redis(cache: RedisCache) -> None:
    """One PING at start. A refusal that retrying cannot fix (authentication, permissions,
    TLS) raises RedisAccessError, its message one line; an unreachable Redis is logged in
    one line and the caller goes on (the cache is best effort, see ResilientCache)."""
    try:
        cache.ping()
    except (redis.AuthenticationError, redis.ResponseError) as exc:
        # NOPERM, WRONGPASS and the like come back as (subclasses of) ResponseError.
        raise RedisAccessError(f"redis {cache.where}: refused: {exc}") from None
    except redis.ConnectionError as exc:
        text = str(exc)
        if "ssl" in text.lower() or "certificate" in text.lower():
            raise RedisAccessError(f"redis {cache.where}: TLS failed: {text}") from None
        hint = ""
        if not cache.tls and ("reset" in text.lower() or "closed" in text.lower()):
            hint = f" (a TLS port? {URL_VAR} should then be rediss://)"
        log.error(
            "redis not reachable at start; the cache keeps retrying",
            extra={"error": f"redis {cache.where}: {text}{hint}"},
        )
    except redis.RedisError as exc:
        log.error(
            "redis not reachable at start; the cache keeps retrying",
            extra={"error": f"redis {cache.where}: {exc}"},
        )


class RedisCache:
    def __init__(
        self, url: str, namespace: str = "tickpipe", security: RedisSecurity | None = None
    ) -> None:
        # redis-py connects lazily: no I/O here.
        # Short timeouts: an unreachable Redis must not stall a consume loop for long
        # (services wrap this in `ResilientCache`, which keeps writes while it is away).
        url, options = (security or RedisSecurity()).connection(url)
        self._client = redis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2, **options
        )
        self._prefix = f"{namespace}:"
        parts = urlsplit(url)
        self.tls = parts.scheme == "rediss"
        self.where = f"{parts.hostname}:{parts.port or 6379}" + (" (TLS)" if self.tls else "")

    def ping(self) -> bool:
        return bool(self._client.ping())

    def available(self) -> bool:
        try:
            return self.ping()
        except redis.RedisError:
            return False

    def get(self, key: str) -> bytes | None:
        value = self._client.get(self._prefix + key)
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        px = None if ttl_s is None else max(1, int(ttl_s * 1000))
        self._client.set(self._prefix + key, value, px=px)

    def set_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None:
        px = None if ttl_s is None else max(1, int(ttl_s * 1000))
        pipe = self._client.pipeline(transaction=False)
        for k, v in items.items():
            pipe.set(self._prefix + k, v, px=px)
        pipe.execute()

    def delete(self, key: str) -> None:
        self._client.delete(self._prefix + key)

    def keys(self, prefix: str) -> list[str]:
        n = len(self._prefix)
        found = self._client.scan_iter(match=f"{self._prefix}{prefix}*", count=500)
        return sorted(k.decode()[n:] for k in found)

    def close(self) -> None:
        self._client.close()
