"""The background consumer that feeds `LiveFeed` from executions, signals and risk decisions.

It reads committed records only (transactional producers: aborted outputs never show) and
starts at the end of the topics: the dashboard shows what happens while it runs, and a
restart does not replay the forever-retained ledger into memory.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from tickpipe.bus.base import Link, Record
from tickpipe.messages import DecodeError, decode_record
from tickpipe.runner import EVENT_TYPE
from tickpipe.topics import EXECUTIONS, RISK_DECISIONS, SIGNALS
from tickpipe_api.live import LiveFeed

log = logging.getLogger(__name__)

TOPICS = (EXECUTIONS, SIGNALS, RISK_DECISIONS)
CONSUMER_OVERRIDES = {"auto.offset.reset": "latest", "isolation.level": "read_committed"}


class FeedConsumer:
    """Consumes in a thread; a failure (the broker away, a fatal client error) marks it not
    ready (`/readyz`), and it opens a new link after a backoff until it consumes again."""

    def __init__(
        self,
        open_link: Callable[[], Link],
        feed: LiveFeed,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
    ) -> None:
        self._open = open_link
        self._link: Link | None = None
        self._feed = feed
        self._stop = threading.Event()
        self._backoff = (backoff_s, max_backoff_s)
        self.failed = False
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="feed-consumer", daemon=True)

    def start(self) -> FeedConsumer:
        self._thread.start()
        return self

    def ready(self) -> bool:
        link = self._link
        return link is not None and link.ready() and not self.failed

    def lag(self) -> dict[str, int]:
        link = self._link
        return {} if link is None else link.lag()

    def _run(self) -> None:
        delay = self._backoff[0]
        while not self._stop.is_set():
            try:
                self._link = link = self._open()
                while not self._stop.is_set():
                    for record in link.poll(500, 0.2):
                        self._apply(record)
                    link.complete(())
                    if self.failed and link.ready():
                        self.failed, delay = False, self._backoff[0]
                        log.info("feed consumer consuming again")
            except Exception:
                # The dashboard goes stale, not the API: /readyz reports the feed not ready.
                self.failed = True
                self.failures += 1
                log.exception("feed consumer failed; reopening", extra={"retry_s": delay})
                self._close_link()
                self._stop.wait(delay)
                delay = min(delay * 2, self._backoff[1])

    def _close_link(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            try:
                link.close()
            except Exception as exc:
                log.warning("feed link close failed", extra={"error": repr(exc)})

    def _apply(self, record: Record) -> None:
        try:
            event = decode_record(record.value, record.header(EVENT_TYPE), record.topic)
        except DecodeError as exc:
            # Any bytes: the services dead-letter it; the dashboard just skips it.
            log.warning("undecodable record", extra={"topic": record.topic, "reason": exc.reason})
            return
        self._feed.on_event(event)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._close_link()
