"""The live adapter through ccxt, for real over HTTP, against a local fake of Binance's spot
REST API (recorded payload shapes) with injected faults: 429s, 5xx, and a timeout after the
exchange accepted the order. No order is ever placed twice."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from pydantic import SecretStr

from tests.fixtures.execution.fake_binance import FakeBinance
from tests.unit import factories as f
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import ControlAction, ExecutionReport, Liquidity, OrderStatus, OrderType
from tickpipe.ratelimit import TokenBucket
from tickpipe.topics import CONTROL, ORDERS, TRADES
from tickpipe_execution.domain.events import Acked, Filled, Refused
from tickpipe_execution.handlers import ExecutionHandler
from tickpipe_execution.live.ccxt_venue import CcxtVenue, RetryPolicy
from tickpipe_execution.live.clients import make_client
from tickpipe_execution.live.credentials import Credentials

pytestmark = pytest.mark.integration

D = Decimal
KEY = "binance:BTC/USDT"
POST = "POST /api/v3/order"
GET = "GET /api/v3/order"
S = OrderStatus


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    server = FakeBinance(hang_s=1.5).start()
    yield server
    server.stop()


def _venue(fake: FakeBinance, bucket: TokenBucket | None = None) -> CcxtVenue:
    creds = Credentials(api_key=SecretStr("test-key"), api_secret=SecretStr("test-secret"))
    client = make_client("binance", creds, timeout_ms=500, urls=fake.urls())
    return CcxtVenue(client, bucket or TokenBucket(1000, 50), RetryPolicy(base_s=0.01))


def _posts(fake: FakeBinance) -> int:
    return sum(1 for endpoint, _ in fake.requests if endpoint == POST)


def test_ccxt_venue_when_market_order_placed_acks_and_fills_with_exchange_trade_id(
    fake: FakeBinance,
) -> None:
    events = _venue(fake).submit("tp-m1", KEY, "buy", OrderType.MARKET, D("0.001"))

    ack, fill = events
    assert isinstance(ack, Acked) and isinstance(fill, Filled)
    assert fake.placed == ["tp-m1"]
    assert (fill.qty, fill.price, fill.liquidity) == (D("0.001"), D("60000.0"), Liquidity.TAKER)
    assert fill.trade_id == fake.trades[0]["id"]
    assert (fill.fee, fill.fee_currency) == (D("0.06"), "USDT")
    # The client order id travelled as Binance's newClientOrderId.
    assert '"newClientOrderId": "tp-m1"' in fake.requests[-1][1]


def test_ccxt_venue_when_exchange_answers_429_then_retries_and_places_once(
    fake: FakeBinance,
) -> None:
    fake.fault(POST, "429", "429")

    events = _venue(fake).submit("tp-r1", KEY, "buy", OrderType.LIMIT, D("0.001"), D("50000"))

    assert [type(e) for e in events] == [Acked]
    assert fake.placed == ["tp-r1"]
    assert _posts(fake) == 3


def test_ccxt_venue_when_5xx_looks_up_by_client_id_before_sending_again(
    fake: FakeBinance,
) -> None:
    fake.fault(POST, "500")

    events = _venue(fake).submit("tp-e1", KEY, "buy", OrderType.LIMIT, D("0.001"), D("50000"))

    assert [type(e) for e in events] == [Acked]
    assert fake.placed == ["tp-e1"]
    endpoints = [e for e, _ in fake.requests if e != "GET /api/v3/exchangeInfo"]
    assert endpoints == [POST, GET, POST]  # not found by client id -> only then resent


def test_ccxt_venue_when_timeout_after_exchange_accepted_resolves_by_lookup_not_resubmit(
    fake: FakeBinance,
) -> None:
    fake.fault(POST, "accept_then_hang")

    events = _venue(fake).submit("tp-t1", KEY, "buy", OrderType.MARKET, D("0.002"))

    assert [type(e) for e in events] == [Acked, Filled]
    assert fake.placed == ["tp-t1"]
    assert _posts(fake) == 1
    assert any(e == GET and '"origClientOrderId": "tp-t1"' in p for e, p in fake.requests)


def test_ccxt_venue_when_lookup_also_rate_limited_retries_the_lookup_not_the_order(
    fake: FakeBinance,
) -> None:
    fake.fault(POST, "accept_then_hang")
    fake.fault(GET, "429", "500")

    events = _venue(fake).submit("tp-t2", KEY, "sell", OrderType.LIMIT, D("0.001"), D("70000"))

    assert [type(e) for e in events] == [Acked]
    assert (fake.placed, _posts(fake)) == (["tp-t2"], 1)


def test_ccxt_venue_when_order_rejected_does_not_retry(fake: FakeBinance) -> None:
    venue = _venue(fake)
    venue.submit("tp-d1", KEY, "buy", OrderType.LIMIT, D("0.001"), D("50000"))

    # The same client id again while open: Binance answers -2010 "Duplicate order sent.".
    again = venue.submit("tp-d1", KEY, "buy", OrderType.LIMIT, D("0.001"), D("50000"))
    fake.fault(POST, "insufficient_balance")
    refused = venue.submit("tp-x", KEY, "buy", OrderType.LIMIT, D("9"), D("50000"))

    assert [type(e) for e in again] == [Acked]  # resolved to the existing order
    assert fake.placed == ["tp-d1"]
    assert refused == [Refused("tp-x", "exchange_InsufficientFunds")]
    assert _posts(fake) == 3  # d1, d1 again, x once: a rejection is never retried


def test_ccxt_venue_when_requests_exceed_the_bucket_waits_for_tokens(fake: FakeBinance) -> None:
    waits: list[float] = []
    bucket = TokenBucket(rate=20, capacity=1)
    venue = _venue(fake, bucket)
    venue._sleep = waits.append

    for i in range(4):
        venue.submit(f"tp-b{i}", KEY, "buy", OrderType.LIMIT, D("0.001"), D("50000"))

    assert bucket.waited_s > 0.1
    assert len(fake.placed) == 4


def _reports(handler: ExecutionHandler, event: object, topic: str) -> list[ExecutionReport]:
    out = handler.handle(event, topic, f.T0)  # type: ignore[arg-type]
    return [e.event for e in out if isinstance(e.event, ExecutionReport)]


def test_execution_handler_when_live_order_redelivered_and_cancel_all_places_once_cancels(
    fake: FakeBinance,
) -> None:
    handler = ExecutionHandler(EventIds(SimClock(f.T0), seed=1), _venue(fake))
    order = f.order(client_order_id="tp-h1", order_type=OrderType.LIMIT, limit_price=D("50000"))

    placed = _reports(handler, order, ORDERS)
    again = _reports(handler, order, ORDERS)
    fake.fill("tp-h1", "0.2", "49999")
    cancelled = _reports(handler, f.control(ControlAction.CANCEL_ALL), CONTROL)

    assert [r.status for r in placed] == [S.ACKNOWLEDGED]
    assert again == []
    assert fake.placed == ["tp-h1"]
    # The partial fill that raced the cancel is applied (once) before the cancel lands.
    assert [(r.status, r.last_qty) for r in cancelled] == [
        (S.PENDING_CANCEL, D(0)),
        (S.PARTIALLY_FILLED, D("0.2")),
        (S.CANCELLED, D(0)),
    ]
    assert fake.orders["tp-h1"]["status"] == "CANCELED"
    assert cancelled[-1].cum_qty == D("0.2")


def test_execution_handler_when_restarted_live_applies_missed_fills_once_before_new_orders(
    fake: FakeBinance,
) -> None:
    before = ExecutionHandler(EventIds(SimClock(f.T0), seed=1), _venue(fake))
    resting = f.order(client_order_id="tp-k1", order_type=OrderType.LIMIT, limit_price=D("50000"))
    _reports(before, resting, ORDERS)
    snapshot = before.snapshot()  # then the process dies; the market keeps trading
    fake.fill("tp-k1", "0.2", "49990")
    fake.fill("tp-k1", "0.1", "49980")
    fake.orders["tp-k1"]["status"] = "CANCELED"  # and an operator cancels it on the website
    after = ExecutionHandler(EventIds(SimClock(f.T0), seed=2), _venue(fake))
    after.restore(snapshot)

    first = _reports(after, f.order(client_order_id="tp-k2", event_id="01K2"), ORDERS)
    replayed = _reports(after, resting, ORDERS)  # a replay of the old order after restart

    assert [(r.client_order_id, r.status, r.last_qty) for r in first] == [
        ("tp-k1", S.PARTIALLY_FILLED, D("0.2")),
        ("tp-k1", S.PARTIALLY_FILLED, D("0.1")),
        ("tp-k1", S.CANCELLED, D(0)),
        ("tp-k2", S.ACKNOWLEDGED, D(0)),
        ("tp-k2", S.FILLED, D("0.5")),
    ]
    assert replayed == []
    assert fake.placed == ["tp-k1", "tp-k2"]
    assert after.orders["tp-k1"].trade_ids == [t["id"] for t in fake.trades[:2]]
    assert after.reconcile(f.T0) == []


def test_execution_handler_when_live_order_rests_polls_its_fills_on_market_time(
    fake: FakeBinance,
) -> None:
    handler = ExecutionHandler(EventIds(SimClock(f.T0), seed=3), _venue(fake))
    resting = f.order(client_order_id="tp-p1", order_type=OrderType.LIMIT, limit_price=D("50000"))
    _reports(handler, resting, ORDERS)
    fake.fill("tp-p1", "0.5", "49990")

    early = _reports(handler, f.trade(ts_event=f.T0 + 1), TRADES)
    due = _reports(handler, f.trade(ts_event=f.T0 + 3 * 10**9), TRADES)
    later = _reports(handler, f.trade(ts_event=f.T0 + 9 * 10**9), TRADES)

    assert early == []  # within the poll interval: no request
    assert [(r.status, r.last_qty, r.trade_id) for r in due] == [
        (S.FILLED, D("0.5"), fake.trades[0]["id"])
    ]
    assert later == []  # nothing open: no polling


def test_execution_handler_when_order_from_before_start_already_filled_adopts_not_replaces(
    fake: FakeBinance,
) -> None:
    # A previous process placed the order and died before its transaction committed: the
    # order comes again, to a process with no memory of it. Binance would accept the
    # finished order's client id a second time, so the handler must ask first.
    _venue(fake).submit("tp-z1", KEY, "buy", OrderType.MARKET, D("0.5"))
    handler = ExecutionHandler(EventIds(SimClock(f.T0), seed=4), _venue(fake))
    handler.handle(f.quote(ts_event=f.T0 + 10), "md.quotes.v1", f.T0 + 10)  # started

    reports = _reports(handler, f.order(client_order_id="tp-z1", event_id="01Z1"), ORDERS)

    assert [(r.status, r.trade_id) for r in reports] == [
        (S.ACKNOWLEDGED, None),
        (S.FILLED, fake.trades[0]["id"]),
    ]
    assert fake.placed == ["tp-z1"]
