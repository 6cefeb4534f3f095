"""The API's live-feed consumer survives a failing link: not ready while it is down, then
it opens a new link and consumes again."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.api.factories import report
from tickpipe.bus.base import BusError, Link
from tickpipe.bus.memory import MemoryBus
from tickpipe.messages import OrderStatus
from tickpipe.runner import encode_emit
from tickpipe.service import Emit
from tickpipe.topics import EXECUTIONS
from tickpipe_api.consumer import TOPICS, FeedConsumer
from tickpipe_api.live import LiveFeed


class _Broken:
    """A link whose broker went away."""

    def poll(self, max_records: int, timeout_s: float, linger_s: float = 0.0) -> list[object]:
        raise BusError("fatal consumer error: all brokers down")

    def ready(self) -> bool:
        return False

    def close(self) -> None:
        return None


def _until(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_feed_consumer_when_its_link_fails_is_not_ready_then_reopens_and_consumes() -> None:
    bus = MemoryBus()
    opened: list[str] = []
    healthy = {"now": False}

    def open_link() -> Link:
        opened.append("broken" if not healthy["now"] else "memory")
        if not healthy["now"]:
            return _Broken()  # type: ignore[return-value]
        return bus.link(group="api", topics=TOPICS, client_id="api")

    feed = LiveFeed(10)
    consumer = FeedConsumer(open_link, feed, backoff_s=0.01, max_backoff_s=0.05).start()
    try:
        assert _until(lambda: consumer.failures >= 2)
        assert not consumer.ready()
        healthy["now"] = True
        assert _until(consumer.ready)
        fill = report("tp-feed", OrderStatus.FILLED, last_qty="0.01")
        bus.producer("x").send(encode_emit(Emit(EXECUTIONS, fill), ()))
        assert _until(lambda: [f.client_order_id for f in feed.fills()] == ["tp-feed"])
    finally:
        consumer.stop()
    assert opened[:2] == ["broken", "broken"] and opened[-1] == "memory"
