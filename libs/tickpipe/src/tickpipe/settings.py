"""Platform settings from `TICKPIPE_*` environment variables (pydantic-settings).

Each service adds its own settings class with its own prefix (e.g. `TICKPIPE_RISK_`).
"""

from __future__ import annotations

import socket
from typing import Literal

from pydantic import Field
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

    def group(self, service: str) -> str:
        return f"{self.topic_namespace}.{service}" if self.topic_namespace else service
