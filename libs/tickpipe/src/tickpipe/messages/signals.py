"""Model output: tickpipe's public product on `signals.v1`."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from tickpipe.messages.market import Instrument


class Signal(Instrument):
    event_type: ClassVar[str] = "signal"
    type: Literal["signal"] = "signal"
    strategy_id: str = Field(min_length=1)
    model_version: str
    direction: Literal[-1, 0, 1] = Field(description="-1 short, 0 flat, 1 long.")
    probability: float = Field(ge=0.0, le=1.0, description="P(up) from the model.")
    score: float = Field(ge=-1.0, le=1.0, description="2*probability-1: signed strength.")
    feature_ts: int = Field(ge=0, description="ts_event of the feature vector scored.")
    price: float = Field(gt=0, description="Close price of the bar the features came from.")
    volatility: float | None = Field(
        default=None, description="Realized volatility per bar from the features, if known."
    )
    market_seq: int | None = Field(
        default=None,
        ge=0,
        description="The feature vector's `market_seq`: the point in the market "
        "stream this was decided at (replays and the paper exchange align on it).",
    )
    bid: float | None = Field(
        default=None, gt=0, description="Best bid of the latest quote at `market_seq`."
    )
    ask: float | None = Field(
        default=None, gt=0, description="Best ask of the latest quote at `market_seq`."
    )
