"""The DataQuality adapter: a structured log line and a metric per event, then a hook.

`on_event` is where a publisher plugs in once a data-quality event model exists (the risk
issue): it receives every event after it is logged and counted.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from tickpipe_ingest import metrics
from tickpipe_ingest.domain.quality import DataQualityEvent, Gap, Stale

log = logging.getLogger("tickpipe_ingest.quality")


class QualityReporter:
    def __init__(
        self, source: str, on_event: Callable[[DataQualityEvent], None] | None = None
    ) -> None:
        self.source = source
        self.on_event = on_event
        self.counts = {"gaps": 0, "missing": 0, "stale": 0}

    def report(self, event: DataQualityEvent) -> None:
        fields = dataclasses.asdict(event)
        if isinstance(event, Gap):
            self.counts["gaps"] += 1
            self.counts["missing"] += event.missing
            metrics.GAPS.labels(self.source, event.symbol, event.field).inc()
            metrics.GAP_MISSING.labels(self.source, event.symbol, event.field).inc(event.missing)
            log.warning(
                "data quality: gap",
                extra={"quality": "gap", "source": self.source, "missing": event.missing, **fields},
            )
        elif isinstance(event, Stale):
            self.counts["stale"] += 1
            metrics.STALE.labels(self.source, event.symbol, event.stream).inc()
            log.warning(
                "data quality: stale",
                extra={"quality": "stale", "source": self.source, **fields},
            )
        if self.on_event is not None:
            self.on_event(event)
