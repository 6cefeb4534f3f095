"""The live adapter's private stream, for real: ccxt.pro `watch_orders`/`watch_my_trades`
over a WebSocket against the local fake exchange's user-data stream (Binance's WebSocket API
`userDataStream.subscribe.signature`, executionReport events). A fill seen by both the
stream and a poll is applied once; cancel-on-disconnect cancels resting orders only when on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr

from tests.fixtures.execution.fake_binance import FakeBinance
from tests.unit import factories as f
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import ExecutionReport, OrderStatus, OrderType
from tickpipe.ratelimit import TokenBucket
from tickpipe.topics import ORDERS, TRADES
from tickpipe_execution.handlers import ExecutionHandler
from tickpipe_execution.live.ccxt_venue import CcxtVenue, RetryPolicy
from tickpipe_execution.live.clients import make_client, make_stream_client
from tickpipe_execution.live.credentials import Credentials
from tickpipe_execution.live.stream import DisconnectPolicy, UserStream

pytestmark = pytest.mark.integration

D = Decimal
S = OrderStatus
CREDS = Credentials(api_key=SecretStr("test-key"), api_secret=SecretStr("test-secret"))
FILL_READS = ("GET /api/v3/order", "GET /api/v3/myTrades")


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    server = FakeBinance().start()
    yield server
    server.stop()


@pytest.fixture
def venues() -> Iterator[list[CcxtVenue]]:
    made: list[CcxtVenue] = []
    yield made
    for v in made:
        v.close()


def _venue(
    fake: FakeBinance,
    made: list[CcxtVenue],
    policy: DisconnectPolicy | None = None,
    trades: bool = True,
) -> CcxtVenue:
    client = make_client("binance", CREDS, timeout_ms=2000, urls=fake.urls())
    pro = make_stream_client(
        "binance", CREDS, timeout_ms=2000, urls=fake.urls(), ws_url=fake.ws_url
    )
    assert pro is not None  # binance has watchOrders: the stream is used, not polling
    pro.has = {**pro.has, "watchMyTrades": trades}  # as an exchange without a trade stream
    venue = CcxtVenue(
        client, TokenBucket(1000, 50), RetryPolicy(base_s=0.01), symbols=("BTC/USDT",)
    )
    venue.stream = UserStream(pro, lambda: set(venue.traded), policy, retry_s=0.2).start()
    made.append(venue)
    _wait(lambda: venue.stream is not None and venue.stream.connected, "stream subscribed")
    return venue


def _attempts(client: Any) -> list[float]:
    """When the stream (re)subscribes: every call of the ccxt.pro client's `authenticate`."""
    times: list[float] = []
    authenticate = client.authenticate

    async def counted(*args: Any, **kwargs: Any) -> Any:
        times.append(time.monotonic())
        return await authenticate(*args, **kwargs)

    client.authenticate = counted
    return times


def _wait(predicate: Callable[[], bool], what: str, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        time.sleep(0.02)


class Feed:
    """Drives a handler with market trades (they pace the consume loop) and keeps its reports."""

    def __init__(self, handler: ExecutionHandler) -> None:
        self.handler = handler
        self.ts = f.T0
        self.reports: list[ExecutionReport] = []

    def send(self, event: object, topic: str) -> list[ExecutionReport]:
        out = self.handler.handle(event, topic, self.ts)  # type: ignore[arg-type]
        got = [e.event for e in out if isinstance(e.event, ExecutionReport)]
        self.reports += got
        return got

    def poll(self) -> list[ExecutionReport]:
        got = [e.event for e in self.handler.reconcile(self.ts)]
        self.reports += [r for r in got if isinstance(r, ExecutionReport)]
        return [r for r in got if isinstance(r, ExecutionReport)]

    def tick(self) -> list[ExecutionReport]:
        self.ts += 1_000_000  # 1 ms of market time: well inside the stream's poll interval
        return self.send(f.trade(ts_event=self.ts, ts_init=self.ts), TRADES)

    def until(self, predicate: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 10
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for: {what}"
            self.tick()
            time.sleep(0.02)


def _limit(coid: str, price: str = "50000") -> object:
    return f.order(
        client_order_id=coid, event_id=f"o-{coid}", order_type=OrderType.LIMIT, limit_price=D(price)
    )


def _reads(fake: FakeBinance) -> int:
    return sum(1 for e, _ in fake.requests if e in FILL_READS)


def test_live_stream_when_resting_order_fills_reports_fill_from_stream_without_polling(
    fake: FakeBinance, venues: list[CcxtVenue]
) -> None:
    venue = _venue(fake, venues)
    feed = Feed(ExecutionHandler(EventIds(SimClock(f.T0), seed=7), venue))
    feed.send(_limit("tp-s1"), ORDERS)
    feed.until(lambda: venue.stream is not None and not venue.stream.resync_pending, "resync")
    reads = _reads(fake)

    fake.fill("tp-s1", "0.2", "49990")
    feed.until(lambda: any(r.trade_id for r in feed.reports), "the streamed fill")
    fake.fill("tp-s1", "0.3", "49980")
    feed.until(lambda: feed.reports[-1].status is S.FILLED, "the last streamed fill")

    fills = [(r.status, r.last_qty, r.trade_id) for r in feed.reports if r.trade_id]
    assert fills == [
        (S.PARTIALLY_FILLED, D("0.2"), fake.trades[0]["id"]),
        (S.FILLED, D("0.3"), fake.trades[1]["id"]),
    ]
    assert _reads(fake) == reads, "the fills were polled, not streamed"
    assert fake.api_keys == {"test-key"}  # the subscription was signed with our key


def test_live_stream_when_exchange_streams_orders_but_not_trades_fetches_fills_once(
    fake: FakeBinance, venues: list[CcxtVenue]
) -> None:
    venue = _venue(fake, venues, trades=False)
    feed = Feed(ExecutionHandler(EventIds(SimClock(f.T0), seed=11), venue))
    feed.send(_limit("tp-s5"), ORDERS)

    fake.fill("tp-s5", "0.2", "49990")
    fake.fill("tp-s5", "0.3", "49980")
    feed.until(lambda: feed.reports[-1].status is S.FILLED, "the fills")

    # Each order update fetches the order's trades; the second fetch repeats the first fill.
    assert [(r.last_qty, r.trade_id) for r in feed.reports if r.trade_id] == [
        (D("0.2"), fake.trades[0]["id"]),
        (D("0.3"), fake.trades[1]["id"]),
    ]
    assert any(e == "GET /api/v3/myTrades" for e, _ in fake.requests)


def test_make_stream_client_when_exchange_has_no_order_stream_returns_none() -> None:
    assert make_stream_client("coincheck", CREDS) is None  # its orders are polled


def test_live_stream_when_stream_and_poll_see_the_same_fill_counts_it_once(
    fake: FakeBinance, venues: list[CcxtVenue]
) -> None:
    venue = _venue(fake, venues)
    handler = ExecutionHandler(EventIds(SimClock(f.T0), seed=8), venue)
    feed = Feed(handler)
    feed.send(_limit("tp-s2"), ORDERS)
    feed.send(_limit("tp-s3", "49000"), ORDERS)
    stream = venue.stream
    assert stream is not None

    # A poll finds the fill first; the stream's copy of it arrives afterwards.
    fake.fill("tp-s2", "0.1", "49990")
    polled = [r.trade_id for r in feed.poll() if r.trade_id]
    feed.until(lambda: stream._queue.empty() and len(fake.stream_events) >= 3, "stream copy")
    # And the other way round: the stream first, then a poll that sees it too.
    fake.fill("tp-s3", "0.5", "48990")
    feed.until(lambda: any(r.client_order_id == "tp-s3" and r.trade_id for r in feed.reports), "s3")
    repolled = feed.poll()

    trade_ids = [r.trade_id for r in feed.reports if r.trade_id]
    assert polled == [fake.trades[0]["id"]]
    # The streamed copy of the polled fill, and the polled copy of the streamed one: dropped.
    assert trade_ids == [fake.trades[0]["id"], fake.trades[1]["id"]]
    assert repolled == []
    assert handler.orders["tp-s2"].trade_ids == [fake.trades[0]["id"]]
    assert handler.orders["tp-s2"].cum_qty == D("0.1")
    assert handler.orders["tp-s3"].status is S.FILLED


def test_live_stream_when_order_cancelled_on_the_website_stream_reports_it(
    fake: FakeBinance, venues: list[CcxtVenue]
) -> None:
    venue = _venue(fake, venues)
    feed = Feed(ExecutionHandler(EventIds(SimClock(f.T0), seed=9), venue))
    feed.send(_limit("tp-s4"), ORDERS)

    fake.fill("tp-s4", "0.2", "49990")
    fake.cancel_at_exchange("tp-s4")
    feed.until(lambda: feed.reports[-1].status is S.CANCELLED, "the cancel")

    assert [(r.status, r.cum_qty) for r in feed.reports] == [
        (S.ACKNOWLEDGED, D(0)),
        (S.PARTIALLY_FILLED, D("0.2")),
        (S.CANCELLED, D("0.2")),
    ]


@pytest.mark.parametrize("cancel_on_disconnect", [True, False])
def test_live_stream_when_stream_lost_past_grace_cancels_open_orders_only_if_opted_in(
    fake: FakeBinance, venues: list[CcxtVenue], cancel_on_disconnect: bool
) -> None:
    policy = DisconnectPolicy(cancel_on_disconnect=cancel_on_disconnect, grace_s=0.5)
    venue = _venue(fake, venues, policy)
    handler = ExecutionHandler(EventIds(SimClock(f.T0), seed=10), venue)
    feed = Feed(handler)
    for i in range(3):
        feed.send(_limit(f"tp-d{i}", str(50_000 - i)), ORDERS)
    feed.until(lambda: venue.stream is not None and not venue.stream.resync_pending, "resync")
    assert len(fake.open_orders()) == 3

    stream = venue.stream
    assert stream is not None
    attempts = _attempts(stream.client)
    fake.drop_streams(refuse=True)  # the exchange connection is lost and stays lost
    _wait(lambda: not stream.connected, "stream lost")
    down_since = stream.down_since
    assert down_since is not None

    def cancel_alls() -> list[str]:
        return [p for e, p in fake.requests if e == "DELETE /api/v3/openOrders"]

    if cancel_on_disconnect:
        _wait(lambda: cancel_alls() != [], "the cancel-all, once past the grace period")
    # Three grace periods into the outage, and the stream thread still trying to resubscribe
    # (its watchdog runs on the same event loop): time enough to cancel, or to cancel twice.
    three_graces = down_since + 3 * policy.grace_s
    _wait(lambda: any(t >= three_graces for t in attempts), "three grace periods of outage")

    cancel_all_calls = cancel_alls()
    if not cancel_on_disconnect:
        assert cancel_all_calls == []
        assert len(fake.open_orders()) == 3
        return
    assert fake.open_orders() == []
    assert len(cancel_all_calls) == 1 and '"symbol": "BTCUSDT"' in cancel_all_calls[0]
    # The OMS hears of the cancels by polling (fast again while the stream is down).
    feed.ts += 10 * 10**9
    feed.until(lambda: not handler.open_orders(), "the OMS to see the cancels")
    assert sorted(r.client_order_id for r in feed.reports if r.status is S.CANCELLED) == [
        "tp-d0",
        "tp-d1",
        "tp-d2",
    ]
