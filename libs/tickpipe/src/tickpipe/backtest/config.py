"""What a backtest runs: data files, a time window, a model, and the services' settings.

Services read their settings from `TICKPIPE_<SERVICE>_<NAME>` variables (pydantic-settings).
A backtest sets the same variables while the pipeline is built, so a `[risk]` table in a
config file means exactly what the risk service's environment means in production: one
way to configure a service. Unknown sections or names are errors, never ignored.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings

from tickpipe.service import ServiceSpec

SECTIONS = ("ingest", "feature", "inference", "risk", "execution")
Settings = dict[str, dict[str, Any]]


class ConfigError(ValueError):
    """A backtest configuration that names something that does not exist."""


@dataclass(frozen=True)
class BacktestConfig:
    data: tuple[Path, ...]
    start: datetime | None = None
    end: datetime | None = None
    model: str | None = None  # `VERSION`, `NAME/VERSION` in the registry, or a model folder
    settings: Settings = field(default_factory=dict)
    seed: int = 0
    engine: str = "ticks"  # "ticks": every record through all five; "bars": see bars_engine
    loops: int = 1  # replay the data this many times, later loops shifted in time

    def with_settings(self, overrides: Mapping[str, Any]) -> BacktestConfig:
        """A copy with `section.name` -> value overrides (a sweep point)."""
        merged = {k: dict(v) for k, v in self.settings.items()}
        for dotted, value in overrides.items():
            section, name = split_key(dotted)
            merged.setdefault(section, {})[name] = value
        return replace(self, settings=merged)

    def env(self) -> dict[str, str]:
        env = {
            "TICKPIPE_INGEST_SOURCE": "file",
            "TICKPIPE_INGEST_FILE": ",".join(str(p) for p in self.data),
        }
        if self.start is not None:
            env["TICKPIPE_INGEST_START"] = self.start.isoformat()
        if self.end is not None:
            env["TICKPIPE_INGEST_END"] = self.end.isoformat()
        if self.loops != 1:
            env["TICKPIPE_INGEST_LOOPS"] = str(self.loops)
        for section, values in sorted(self.settings.items()):
            for name, value in sorted(values.items()):
                env[f"TICKPIPE_{section.upper()}_{name.upper()}"] = _env_value(value)
        if self.model is not None:
            env["TICKPIPE_INFERENCE_MODEL_DIR"] = str(model_dir(self.model, self.settings))
        return env


ENGINES = ("ticks", "bars")


def split_key(dotted: str) -> tuple[str, str]:
    section, _, name = dotted.partition(".")
    if not name or section not in SECTIONS:
        raise ConfigError(f"{dotted!r}: expected `<service>.<setting>`, service one of {SECTIONS}")
    return section, name


def _env_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)  # numbers, booleans, lists and tables as pydantic-settings reads


def model_dir(model: str, settings: Settings) -> Path:
    if Path(model).is_dir():
        return Path(model)
    inference = settings.get("inference", {})
    registry = Path(inference.get("registry", "models"))
    name, _, version = model.rpartition("/")
    path = registry / (name or str(inference.get("strategy_id", "baseline"))) / version
    if not path.is_dir():
        raise ConfigError(f"model {model!r}: no folder {path} in the registry")
    return path


def load_file(path: Path) -> tuple[Settings, dict[str, list[Any]]]:
    """A TOML file: one table per service, and an optional `[sweep]` table of grids."""
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    sweep = raw.pop("sweep", {})
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}; known: {[*SECTIONS, 'sweep']}")
    for dotted, values in sweep.items():
        split_key(dotted)
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: sweep {dotted!r} must be a non-empty list")
    return {k: dict(v) for k, v in raw.items()}, {k: list(v) for k, v in sweep.items()}


def settings_class(spec: ServiceSpec) -> type[BaseSettings] | None:
    """The service's pydantic settings class, found beside its `build` function."""
    module = sys.modules.get(spec.build.__module__)
    prefix = f"TICKPIPE_{spec.name.upper()}_"
    for value in vars(module or object()).values():
        if (
            isinstance(value, type)
            and issubclass(value, BaseSettings)
            and value.model_config.get("env_prefix") == prefix
        ):
            return value
    return None


def validate(settings: Settings, specs: Mapping[str, ServiceSpec]) -> None:
    for section, values in settings.items():
        spec = specs.get(section)
        cls = settings_class(spec) if spec is not None else None
        if cls is None:
            raise ConfigError(f"[{section}]: this service has no settings")
        unknown = sorted(set(values) - set(cls.model_fields))
        if unknown:
            known = ", ".join(sorted(cls.model_fields))
            raise ConfigError(f"[{section}]: unknown setting(s) {unknown}; known: {known}")


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """Set `env` for the duration (the services read settings while being built)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
