"""Feature composition: settings -> handler."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tickpipe.service import ServiceContext, ServiceSpec, SnapshotFormat
from tickpipe.topics import DLQ, FEATURES, QUOTES, TRADES
from tickpipe_feature.handlers import FeatureHandler, upgrade_v1


class FeatureSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TICKPIPE_FEATURE_", frozen=True, extra="ignore")

    bar_seconds: float = Field(default=1.0, gt=0)
    # How far behind the newest trade a trade may be and still join its bar; every bar is
    # emitted this much later. 0 suits one ordered feed per symbol (Binance's trade stream).
    allowed_lateness_s: float = Field(default=0.0, ge=0)
    cache_ttl_s: float = Field(default=300.0, gt=0)


def build(ctx: ServiceContext, s: FeatureSettings) -> FeatureHandler:
    return FeatureHandler(
        ctx.ids,
        ctx.cache,
        round(s.bar_seconds * 1e9),
        s.cache_ttl_s,
        allowed_lateness_ns=round(s.allowed_lateness_s * 1e9),
    )


SERVICE = ServiceSpec(
    name="feature",
    order=20,
    # Book features use the last quote before a bar's closing trade in ingest's arrival
    # order, which the handler restores by `ingest_seq`: every quote is read.
    inputs=(TRADES, QUOTES),
    outputs=(FEATURES, DLQ),
    settings=FeatureSettings,
    build=build,
    default_http_port=9102,
    # 2: each instrument's recently counted trades, against repeats (handler format 3).
    snapshots=SnapshotFormat(version=2, migrations={1: upgrade_v1}),
)
