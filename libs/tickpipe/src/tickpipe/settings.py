"""Platform settings from `TICKPIPE_*` environment variables (pydantic-settings).

Each service adds its own settings class with its own prefix (e.g. `TICKPIPE_RISK_`).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class PlatformSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TICKPIPE_", frozen=True, extra="ignore")

    bus: Literal["kafka", "memory"] = "memory"
    kafka_bootstrap: str = "127.0.0.1:9092"
    redis_url: str | None = Field(
        default=None, description="Redis URL; unset means the in-memory cache."
    )
    topic_namespace: str = Field(default="", description="Prefix for topic names and groups.")
    instance_id: str = Field(default_factory=socket.gethostname)
    http_host: str = "127.0.0.1"
    http_port: int | None = Field(
        default=None, description="Port for /metrics, /healthz, /readyz; unset: none."
    )
    log_level: str = "INFO"
    batch_size: int = Field(default=500, ge=1, description="Max records per consumed batch.")
    poll_timeout_ms: int = Field(
        default=100, ge=0, description="Longest wait for a record; returns as soon as one arrives."
    )

    batch_linger_ms: int = Field(
        default=0, ge=0, description="After the first record, wait this long to fill a batch."
    )
    kafka_delivery_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Longest wait for produced records to be acknowledged while the broker is "
        "away (librdkafka retries meanwhile); then the service stops uncommitted and restarts.",
    )
    kafka_transaction_timeout_s: float = Field(
        default=60.0, gt=0, description="Longest wait to commit a transaction (and its timeout)."
    )
    kafka_init_timeout_s: float = Field(
        default=120.0, gt=0, description="Longest wait to fence a previous instance at start."
    )

    # Transport security (README "Security"); checked and turned into client options in one
    # place each: tickpipe.bus.security (Kafka) and tickpipe.cache.redis (Redis).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="How Kafka clients connect: TLS (SSL), SASL, both."
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = Field(
        default=None, description="Prefer TICKPIPE_KAFKA_SASL_PASSWORD_FILE."
    )
    kafka_sasl_password_file: Path | None = None
    kafka_ssl_ca_file: Path | None = Field(
        default=None, description="PEM CA bundle the brokers' certificates are checked with."
    )
    kafka_ssl_cert_file: Path | None = Field(
        default=None, description="PEM client certificate (mTLS), with the key file."
    )
    kafka_ssl_key_file: Path | None = None
    kafka_config: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Extra librdkafka settings (a JSON object) for every client; no secrets.",
    )
    redis_password_file: Path | None = Field(
        default=None, description="The ACL user's password (the user is in TICKPIPE_REDIS_URL)."
    )
    redis_ca_file: Path | None = None
    redis_cert_file: Path | None = None
    redis_key_file: Path | None = None

    @field_validator(
        "kafka_sasl_username",
        "kafka_sasl_password",
        "kafka_sasl_password_file",
        "kafka_ssl_ca_file",
        "kafka_ssl_cert_file",
        "kafka_ssl_key_file",
        "redis_password_file",
        "redis_ca_file",
        "redis_cert_file",
        "redis_key_file",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # Compose and Kubernetes pass an unset `${VAR:-}` through as "": no file, not ".".
        return None if value == "" else value

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    def group(self, service: str) -> str:
        return f"{self.topic_namespace}.{service}" if self.topic_namespace else service
