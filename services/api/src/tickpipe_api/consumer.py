"""The background consumer that feeds `LiveFeed` from executions, signals and risk decisions.

It reads committed records only (transactional producers: aborted outputs never show) and
starts at the end of the topics: the dashboard shows what happens while it runs, and a
restart does not replay the forever-retained ledger into memory.
"""

from __future__ import annotations

import logging
import threading

from tickpipe.bus.base import Link, Record
from tickpipe.messages import DecodeError, decode
from tickpipe.runner import EVENT_TYPE
from tickpipe.topics import EXECUTIONS, RISK_DECISIONS, SIGNALS
from tickpipe_api.live import LiveFeed

log = logging.getLogger(__name__)

TOPICS = (EXECUTIONS, SIGNALS, RISK_DECISIONS)
CONSUMER_OVERRIDES = {"auto.offset.reset": "latest", "isolation.level": "read_committed"}


class FeedConsumer:
    def __init__(self, link: Link, feed: LiveFeed) -> None:
        self._link = link
        self._feed = feed
        self._stop = threading.Event()
        self.failed = False
        self._thread = threading.Thread(target=self._run, name="feed-consumer", daemon=True)

    def start(self) -> FeedConsumer:
        self._thread.start()
        return self

    def ready(self) -> bool:
        return self._link.ready() and not self.failed

    def lag(self) -> dict[str, int]:
        return self._link.lag()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for record in self._link.poll(500, 0.2):
                    self._apply(record)
                self._link.complete(())
        except Exception:
            # The dashboard goes stale, not the API: /health reports the feed as not ready.
            self.failed = True
            log.exception("feed consumer stopped")

    def _apply(self, record: Record) -> None:
        event_type = record.header(EVENT_TYPE)
        try:
            event = decode(record.value, None if event_type is None else event_type.decode())
        except DecodeError as exc:
            log.warning("undecodable record", extra={"topic": record.topic, "reason": exc.reason})
            return
        self._feed.on_event(event)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._link.close()
