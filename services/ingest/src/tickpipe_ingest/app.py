"""Ingest composition: settings -> file replay source."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tickpipe.service import ServiceContext, ServiceSpec
from tickpipe_ingest.domain.validation import Validator
from tickpipe_ingest.normalize import Normalizer
from tickpipe_ingest.replay import FileReplaySource

DEFAULT_SAMPLE = Path("data/sample/binance-spot-btcusdt-20240808.gz")


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TICKPIPE_INGEST_", frozen=True, extra="ignore")

    file: Path = DEFAULT_SAMPLE
    speed: float = Field(default=0.0, ge=0, description="× real time; 0 = maximum speed.")
    rate: float | None = Field(default=None, gt=0, description="Records per second.")
    loops: int = Field(default=1, ge=1)
    limit: int | None = Field(default=None, ge=1)


def build(ctx: ServiceContext, settings: IngestSettings | None = None) -> FileReplaySource:
    settings = settings or IngestSettings()
    if not settings.file.exists():
        raise SystemExit(f"ingest: input file not found: {settings.file}")
    normalize = Normalizer(ctx.clock, ctx.ids, f"file:{settings.file.name}", Validator())
    return FileReplaySource(
        settings.file,
        normalize,
        ctx.clock,
        speed=settings.speed,
        rate=settings.rate,
        loops=settings.loops,
        limit=settings.limit,
    )


SERVICE = ServiceSpec(name="ingest", inputs=(), build=build, default_http_port=9101)
