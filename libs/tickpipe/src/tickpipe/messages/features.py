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
    market_seq: int | None = Field(
        default=None,
        ge=0,
        description="`ingest_seq` of the trade that closed the bar: the point in the market "
        "stream this was decided at (replays and the paper exchange align on it).",
    )
    bid: float | None = Field(
        default=None, gt=0, description="Best bid of the latest quote at `market_seq`."
    )
    ask: float | None = Field(
        default=None, gt=0, description="Best ask of the latest quote at `market_seq`."
    )
