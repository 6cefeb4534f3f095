"""The DataQuality adapter: a structured log line and a metric per event, a hook, and the
feed-health state that ingest publishes on `md.quality.v1`.

Every report also marks its stream (exchange, symbol, trades|quotes) degraded and queues it
for publishing; the normalizer drains the queue around each record (`take`), so the
`degraded` event goes out in order with the market data, and the stream's next published
record ends the episode with a `healthy` event. A gap is reported while validating the record
that continues the sequence, so that very record heals it; a stale stream heals with its
first record after the report. Reports may come from another thread (the exchange feed's
staleness watchdog): the queue is guarded by a lock.

`on_event` receives every event after it is logged and counted.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

from tickpipe_ingest import metrics
from tickpipe_ingest.domain.quality import DataQualityEvent, Gap, Stale

log = logging.getLogger("tickpipe_ingest.quality")

StreamKey = tuple[str, str, str]  # exchange, symbol, stream


def stream_key(event: DataQualityEvent) -> StreamKey:
    return (event.exchange, event.symbol, event.stream)


class QualityReporter:
    def __init__(
        self, source: str, on_event: Callable[[DataQualityEvent], None] | None = None
    ) -> None:
        self.source = source
        self.on_event = on_event
        self.counts = {"gaps": 0, "missing": 0, "stale": 0}
        self._lock = threading.Lock()
        self._pending: list[DataQualityEvent] = []  # reported, not yet published
        self._degraded: set[StreamKey] = set()  # published degraded, awaiting a record
        # Nothing pending and nothing degraded: `take` has nothing to give. Read without the
        # lock on every record (a report racing with it is taken with the next record).
        self.quiet = True

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
        with self._lock:
            self._pending.append(event)
            self._degraded.add(stream_key(event))
            self.quiet = False
        if self.on_event is not None:
            self.on_event(event)

    def take(self, published: StreamKey | None = None) -> tuple[list[DataQualityEvent], bool]:
        """The reports not yet published (to publish as `degraded`, before the record), and
        whether `published`, the stream of the record being published, is healthy again
        (its `healthy` event follows the record). One lock: a report arriving meanwhile is
        either in this batch (degraded before the record, healthy after it) or the next."""
        if not self._pending and not self._degraded:  # the common case, without the lock
            return [], False
        with self._lock:
            pending, self._pending = self._pending, []
            healed = published is not None and published in self._degraded
            if published is not None and healed:
                self._degraded.discard(published)
            self.quiet = not self._pending and not self._degraded
        return pending, healed
