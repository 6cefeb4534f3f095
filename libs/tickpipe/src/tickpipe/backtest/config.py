"""What a backtest runs: data files, a time window, a model, and the services' settings.

A `[risk]` table in a config file (or `--set risk.capital=5e4`) names the risk service's
settings, the same ones `TICKPIPE_RISK_*` sets for a process: one way to configure a
service. A backtest builds each service's settings from its defaults and this overlay
alone, never from the environment, so it means the same on every machine. Unknown
sections or names are errors, never ignored.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings

from tickpipe.service import ServiceSpec, SettingsError

Settings = dict[str, dict[str, Any]]  # service -> setting -> value


class ConfigError(ValueError):
    """A backtest configuration that names something that does not exist."""


def sections() -> tuple[str, ...]:
    """The installed services, whose names are the config's sections."""
    from tickpipe.app import service_names  # the composition root finds the services

    return tuple(service_names())


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

    def overlay(self) -> Settings:
        """Every service's overlay: the configured settings, plus what the config's own
        fields mean for ingest (the data, window, loops) and inference (the model)."""
        out = {k: dict(v) for k, v in self.settings.items()}
        ingest: dict[str, Any] = {"source": "file", "file": tuple(self.data)}
        if self.start is not None:
            ingest["start"] = self.start
        if self.end is not None:
            ingest["end"] = self.end
        if self.loops != 1:
            ingest["loops"] = self.loops
        out["ingest"] = {**ingest, **out.get("ingest", {})}  # an [ingest] table wins
        if self.model is not None:
            out.setdefault("inference", {})["model_dir"] = model_dir(self.model, self.settings)
        return out

    def service_settings(self, specs: Mapping[str, ServiceSpec[Any]]) -> dict[str, BaseSettings]:
        """Each installed service's settings: defaults and the overlay, validated."""
        overlay = self.overlay()
        unknown = sorted(set(overlay) - set(specs))
        if unknown:
            raise ConfigError(f"unknown service(s) {unknown}; known: {sorted(specs)}")
        try:
            return {name: spec.settings_from(overlay.get(name)) for name, spec in specs.items()}
        except SettingsError as exc:
            raise ConfigError(str(exc)) from None


ENGINES = ("ticks", "bars")


def split_key(dotted: str) -> tuple[str, str]:
    section, _, name = dotted.partition(".")
    known = sections()
    if not name or section not in known:
        raise ConfigError(f"{dotted!r}: expected `<service>.<setting>`, service one of {known}")
    return section, name


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
    known = sections()
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}; known: {[*known, 'sweep']}")
    for dotted, values in sweep.items():
        split_key(dotted)
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: sweep {dotted!r} must be a non-empty list")
    return {k: dict(v) for k, v in raw.items()}, {k: list(v) for k, v in sweep.items()}
