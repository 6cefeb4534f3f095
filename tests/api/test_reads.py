"""Read routes show the cache (positions, PnL, signals, features, kill switch) and the live
feed (fills, open orders, rejections), bounded."""

from __future__ import annotations

import time

import orjson
import pytest

from tests.api.conftest import Api, bearer, token
from tests.api.factories import rejection, report, signal
from tests.api.testclient import TestClient
from tickpipe.messages import OrderStatus
from tickpipe_api.auth import Role
from tickpipe_api.health import parse_metrics
from tickpipe_api.live import LiveFeed

VIEWER = bearer(Role.VIEWER)


def test_state_when_cache_holds_books_returns_them(api: Api, client: TestClient) -> None:
    api.cache.set("positions:paper:binance:BTC/USDT", orjson.dumps({"qty": "0.02"}))
    api.cache.set("positions:other:binance:BTC/USDT", orjson.dumps({"qty": "9"}))
    api.cache.set("pnl:paper", orjson.dumps({"net": "-1.5"}))
    api.cache.set("signals:binance:BTC/USDT", orjson.dumps({"probability": 0.7}))
    api.cache.set("features:binance:BTC/USDT", orjson.dumps({"values": [1.0]}))
    api.cache.set("risk:paper:kill_switch", b"1")
    api.cache.set("risk:paper:controls", orjson.dumps({"paused": ["binance:ETH/USDT"]}))
    assert client.get("/positions", headers=VIEWER).json() == [
        {"symbol": "binance:BTC/USDT", "data": {"qty": "0.02"}}
    ]
    assert client.get("/pnl", headers=VIEWER).json() == {"net": "-1.5"}
    assert client.get("/signals", headers=VIEWER).json() == {
        "binance:BTC/USDT": {"probability": 0.7}
    }
    assert (
        client.get("/features", params={"symbol": "binance:ETH/USDT"}, headers=VIEWER).json() == {}
    )
    risk = client.get("/risk", headers=VIEWER).json()
    assert risk["kill_switch"] is True
    assert risk["controls"] == {"paused": ["binance:ETH/USDT"]}


def test_risk_when_only_legacy_kill_switch_key_set_reports_it(api: Api, client: TestClient) -> None:
    api.cache.set("risk:kill_switch", b"1")
    assert client.get("/risk", headers=VIEWER).json()["kill_switch"] is True


def test_orders_when_reports_arrive_open_until_terminal(api: Api, client: TestClient) -> None:
    api.feed.on_event(report("a", OrderStatus.ACKNOWLEDGED))
    api.feed.on_event(report("b", OrderStatus.ACKNOWLEDGED))
    api.feed.on_event(report("a", OrderStatus.FILLED, last_qty="0.01"))
    orders = client.get("/orders", headers=VIEWER).json()
    fills = client.get("/fills", headers=VIEWER).json()
    assert [o["client_order_id"] for o in orders] == ["b"]
    assert [(f["client_order_id"], f["last_qty"]) for f in fills] == [("a", "0.01")]


def test_risk_when_rejections_arrive_counts_by_reason(api: Api, client: TestClient) -> None:
    for reason in ["kill_switch", "kill_switch", "stale_reference"]:
        api.feed.on_event(rejection(reason))
    risk = client.get("/risk", headers=VIEWER).json()
    assert risk["rejections_by_reason"] == {"kill_switch": 2, "stale_reference": 1}
    assert len(risk["recent_rejections"]) == 3


def test_feed_when_over_capacity_keeps_newest_only() -> None:
    feed = LiveFeed(size=3)
    for i in range(5):
        feed.on_event(report(f"o{i}", OrderStatus.FILLED, last_qty="0.01"))
        feed.on_event(report(f"n{i}", OrderStatus.ACKNOWLEDGED))
    assert [f.client_order_id for f in feed.fills()] == ["o4", "o3", "o2"]
    assert [o.client_order_id for o in feed.open_orders()] == ["n4", "n3", "n2"]


def test_health_when_metrics_scraped_reports_lag_and_latency(api: Api, client: TestClient) -> None:
    body = client.get("/health", headers=VIEWER).json()
    assert body["services"][0]["lag"] == {"signals.v1": 3}
    text = "\n".join(
        [
            "# HELP tickpipe_consumer_lag Records behind.",
            'tickpipe_consumer_lag{service="risk",topic="signals.v1"} 4.0',
            'tickpipe_consumer_lag{service="risk",topic="md.quotes.v1"} 1.0',
            'tickpipe_end_to_end_latency_seconds_sum{service="risk",topic="signals.v1"} 0.5',
            'tickpipe_end_to_end_latency_seconds_count{service="risk",topic="signals.v1"} 100.0',
        ]
    )
    assert parse_metrics(text) == ({"signals.v1": 4.0, "md.quotes.v1": 1.0}, 0.005)


def test_signals_stream_when_signals_arrive_sends_them_in_order(
    api: Api, client: TestClient
) -> None:
    for p in (0.6, 0.4, 0.7):
        api.feed.on_event(signal(probability=p))
    api.feed.on_event(signal(symbol="ETH/USDT", probability=0.9))
    r = client.get(
        "/signals/stream",
        params={"max_events": 3, "symbol": "binance:BTC/USDT"},
        headers={**VIEWER, "Last-Event-ID": "0"},
    )
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [e for e in r.text.split("\n\n") if e.startswith("id:")]
    probabilities = [orjson.loads(e.split("data: ", 1)[1])["probability"] for e in events]
    assert probabilities == [0.6, 0.4, 0.7]
    ids = [int(e.split("\n")[0].removeprefix("id: ")) for e in events]
    assert ids == sorted(ids)


def test_dashboard_stream_when_token_in_query_sends_state_frame(
    api: Api, client: TestClient
) -> None:
    api.cache.set("pnl:paper", orjson.dumps({"net": "2.0"}))
    token = VIEWER["Authorization"].split()[1]
    r = client.get("/dashboard/stream", params={"max_events": 1, "access_token": token})
    assert r.status_code == 200
    frame = orjson.loads(r.text.split("data: ", 1)[1])
    assert frame["pnl"] == {"net": "2.0"}


def test_dashboard_page_when_served_loads_nothing_from_other_origins(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/", "/static/dashboard.js", "/static/dashboard.css"):
        text = client.get(asset).text
        assert "http://" not in text and "https://" not in text and "//cdn" not in text


@pytest.mark.timeout(15)
def test_dashboard_stream_when_token_expires_ends_stream(api: Api, client: TestClient) -> None:
    short = token("brief", Role.VIEWER, ttl_s=4)  # long enough to emit once on a loaded machine
    started = time.monotonic()
    r = client.get("/dashboard/stream", params={"access_token": short})
    assert r.status_code == 200
    assert "event: state" in r.text
    assert time.monotonic() - started < 30  # it ends (a stream that never ended would hang)
