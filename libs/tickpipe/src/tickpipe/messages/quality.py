"""Data-quality events on `md.quality.v1`: the health of one feed of one instrument.

A gap or a stale feed rejects no record, so it is not a dead letter; it is a state change of
the feed. `degraded` names the issue and holds until a `healthy` event for the same
instrument and stream: risk halts new orders for the instrument in between.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from tickpipe.messages.market import Instrument


class FeedStatus(StrEnum):
    DEGRADED = "degraded"
    HEALTHY = "healthy"


class QualityIssue(StrEnum):
    GAP = "gap"  # ids or sequence numbers skipped
    STALE = "stale"  # no data for longer than the feed's limit
    OTHER = "other"


class DataQuality(Instrument):
    event_type: ClassVar[str] = "data_quality"
    type: Literal["data_quality"] = "data_quality"
    source: str = Field(min_length=1, description="Who observed it, e.g. ingest's feed name.")
    stream: str = Field(min_length=1, description="The feed: `trades`, `quotes`, ...")
    status: FeedStatus
    issue: QualityIssue | None = Field(
        default=None, description="What is wrong; set when degraded, empty when healthy."
    )
    expected: int | None = Field(default=None, ge=0, description="Gap: first id not received.")
    received: int | None = Field(default=None, ge=0, description="Gap: the id that came instead.")
    silent_ns: int | None = Field(default=None, ge=0, description="Stale: how long it was silent.")
    detail: str | None = None

    @model_validator(mode="after")
    def _issue_matches_status(self) -> Self:
        if (self.status is FeedStatus.DEGRADED) != (self.issue is not None):
            raise ValueError("a degraded feed names its issue; a healthy one has none")
        return self
