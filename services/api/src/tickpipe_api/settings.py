"""API settings from `TICKPIPE_API_*` environment variables, validated once at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Every service's default /metrics port (README, "Configuration").
DEFAULT_HEALTH_TARGETS = {
    "ingest": "http://127.0.0.1:9101",
    "feature": "http://127.0.0.1:9102",
    "inference": "http://127.0.0.1:9103",
    "risk": "http://127.0.0.1:9104",
    "execution": "http://127.0.0.1:9105",
}


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TICKPIPE_API_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    jwt_key: SecretStr | None = Field(default=None, description="HS256 key (>= 32 bytes).")
    jwt_key_file: Path | None = Field(default=None, description="File holding the key instead.")
    jwt_issuer: str = "tickpipe"
    jwt_audience: str = "tickpipe-api"
    account: str = "paper"
    read_rate_per_s: float = Field(default=20.0, gt=0)
    read_burst: int = Field(default=60, ge=1)
    control_rate_per_s: float = Field(default=0.5, gt=0)
    control_burst: int = Field(default=5, ge=1)
    fills_buffer: int = Field(default=500, ge=1)
    health_targets: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_HEALTH_TARGETS))

    @model_validator(mode="after")
    def _one_key_source(self) -> ApiSettings:
        if self.jwt_key is not None and self.jwt_key_file is not None:
            raise ValueError("set TICKPIPE_API_JWT_KEY or TICKPIPE_API_JWT_KEY_FILE, not both")
        return self

    def signing_key(self) -> SecretStr:
        """The JWT key from the environment or its secret file; never logged."""
        if self.jwt_key_file is not None:
            return SecretStr(self.jwt_key_file.read_text().strip())
        if self.jwt_key is not None:
            return self.jwt_key
        raise ValueError("no JWT key: set TICKPIPE_API_JWT_KEY or TICKPIPE_API_JWT_KEY_FILE")
