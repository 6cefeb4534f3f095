"""Feature vectors computed per closed bar."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from tickpipe.messages.market import Instrument


class FeatureVector(Instrument):
    """The features of one closed bar. `ts_event` is the bar's close time (exclusive end)."""

    event_type: ClassVar[str] = "features"
    type: Literal["features"] = "features"
    feature_set: str = Field(description="Feature-set version, e.g. `bars1s.v1`.")
    bar_start: int = Field(ge=0, description="Bar open time, ns UTC (inclusive).")
    close: float
    values: dict[str, float] = Field(description="Feature name -> value, in feature-set order.")
