"""API settings from `TICKPIPE_API_*` environment variables, validated once at start-up."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tickpipe_api.auth import DEFAULT_KID, KeyRing

# Every service's default /metrics port (README, "Configuration").
DEFAULT_HEALTH_TARGETS = {
    "ingest": "http://127.0.0.1:9101",
    "feature": "http://127.0.0.1:9102",
    "inference": "http://127.0.0.1:9103",
    "risk": "http://127.0.0.1:9104",
    "execution": "http://127.0.0.1:9105",
}

_KEY_SOURCES = ("TICKPIPE_API_JWT_KEY", "TICKPIPE_API_JWT_KEY_FILE", "TICKPIPE_API_JWT_KEYS_FILE")


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TICKPIPE_API_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    jwt_key: SecretStr | None = Field(
        default=None, description=f"HS256 key (>= 32 bytes), kid {DEFAULT_KID!r}."
    )
    jwt_key_file: Path | None = Field(default=None, description="File holding the key instead.")
    jwt_keys_file: Path | None = Field(
        default=None,
        description="Several keys by kid (rotation): a .json or .toml file of {kid: key}, or a "
        "directory with one file per key, named by its kid (a mounted Kubernetes secret).",
    )
    jwt_signing_kid: str | None = Field(
        default=None, description="The kid `tickpipe api token` signs with, among several keys."
    )
    jwt_issuer: str = "tickpipe"
    jwt_audience: str = "tickpipe-api"
    account: str = "paper"
    read_rate_per_s: float = Field(default=20.0, gt=0)
    read_burst: int = Field(default=60, ge=1)
    control_rate_per_s: float = Field(default=0.5, gt=0)
    control_burst: int = Field(default=5, ge=1)
    fills_buffer: int = Field(default=500, ge=1)
    health_targets: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_HEALTH_TARGETS))

    @field_validator("jwt_key", "jwt_key_file", "jwt_keys_file", "jwt_signing_kid", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # Compose passes `${TICKPIPE_API_JWT_KEY:-}` through as "": that is no key, not a key.
        return None if value == "" else value

    @model_validator(mode="after")
    def _one_key_source(self) -> ApiSettings:
        given = (self.jwt_key, self.jwt_key_file, self.jwt_keys_file)
        if sum(v is not None for v in given) > 1:
            raise ValueError(f"set only one of {', '.join(_KEY_SOURCES)}")
        if self.jwt_signing_kid is not None and self.jwt_keys_file is None:
            raise ValueError(
                "TICKPIPE_API_JWT_SIGNING_KID chooses among TICKPIPE_API_JWT_KEYS_FILE's keys; "
                f"a single key's kid is {DEFAULT_KID!r}"
            )
        return self

    def key_ring(self) -> KeyRing:
        """The JWT keys by kid, read from the environment or their files; never logged.

        Raises ValueError (one line, naming the setting, never a key) when a key is missing,
        unreadable or one the API would refuse.
        """
        if self.jwt_keys_file is not None:
            keys = _read_keys(self.jwt_keys_file)
            try:
                return KeyRing(keys, self.jwt_signing_kid)
            except ValueError as exc:
                raise ValueError(f"TICKPIPE_API_JWT_KEYS_FILE: {exc}") from None
        if self.jwt_key_file is not None:
            try:
                key = SecretStr(self.jwt_key_file.read_text().strip())
            except OSError as exc:
                raise ValueError(
                    f"TICKPIPE_API_JWT_KEY_FILE: cannot read {self.jwt_key_file}: {exc.strerror}"
                ) from None
            source = "TICKPIPE_API_JWT_KEY_FILE"
        elif self.jwt_key is not None:
            key, source = self.jwt_key, "TICKPIPE_API_JWT_KEY"
        else:
            raise ValueError(
                f"no JWT key: set {', '.join(_KEY_SOURCES[:-1])} or {_KEY_SOURCES[-1]}"
            )
        try:
            return KeyRing.single(key)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None


def _read_keys(path: Path) -> dict[str, SecretStr]:
    """{kid: key} from a directory of key files or a .json/.toml file; errors name no key."""
    where = f"TICKPIPE_API_JWT_KEYS_FILE: {path}"
    try:
        if path.is_dir():
            # A mounted Kubernetes secret also holds `..data` and timestamped dot-directories.
            return {
                entry.name: SecretStr(entry.read_text().strip())
                for entry in sorted(path.iterdir())
                if not entry.name.startswith(".") and entry.is_file()
            }
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"{where}: cannot read: {exc.strerror}") from None
    data: object
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not JSON ({exc.msg}, line {exc.lineno})") from None
    elif path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{where}: not TOML ({exc})") from None
    else:
        raise ValueError(f"{where}: expected a directory, a .json or a .toml file")
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{where}: expected an object of kid = key strings")
    return {str(kid): SecretStr(key.strip()) for kid, key in data.items()}


def describe(exc: ValidationError) -> str:
    """One line naming each bad setting; values are not echoed (some are secret)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
    )
