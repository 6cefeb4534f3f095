"""Inference composition: settings -> model -> handler. Refuses to start on a bad model."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tickpipe.service import ServiceContext, ServiceSpec
from tickpipe.topics import CONTROL, DLQ, FEATURES, SIGNALS
from tickpipe_inference.domain.model import ModelError, Variant
from tickpipe_inference.handlers import InferenceHandler
from tickpipe_inference.model_registry import ModelRegistry
from tickpipe_quant.features import FEATURE_NAMES, FEATURE_SET


class InferenceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TICKPIPE_INFERENCE_", frozen=True, extra="ignore", protected_namespaces=()
    )

    model_dir: Path = Path("models/baseline/v1")
    registry: Path = Path("models")
    variant: Variant = "fp32"  # int8: the dynamically quantized model.int8.onnx
    strategy_id: str = "baseline"
    long_threshold: float = Field(default=0.55, ge=0, le=1)
    short_threshold: float = Field(default=0.45, ge=0, le=1)


def build(ctx: ServiceContext, s: InferenceSettings) -> InferenceHandler:
    registry = ModelRegistry(s.registry, FEATURE_SET, FEATURE_NAMES, s.variant)
    try:
        model = registry.load_dir(s.model_dir)
    except ModelError as exc:
        raise SystemExit(f"inference: refusing to start: {exc}") from exc
    return InferenceHandler(
        model,
        ctx.ids,
        ctx.cache,
        s.strategy_id,
        s.long_threshold,
        s.short_threshold,
        registry=registry,
    )


SERVICE = ServiceSpec(
    name="inference",
    order=30,
    inputs=(FEATURES, CONTROL),
    # Every replica reads every command (a model reload must reach all of them).
    broadcast=(CONTROL,),
    outputs=(SIGNALS, DLQ),
    settings=InferenceSettings,
    build=build,
    default_http_port=9103,
)
