"""The exchange source against a local exchange: ccxt's real client code, recorded payloads.

`LocalExchange` (tests/fixtures/exchanges/server.py) serves Binance and Kraken endpoints on
127.0.0.1; ccxt is pointed at it through its `urls`. Nothing here reaches the internet, and
nothing in ccxt is mocked: its REST signing and parsing and its websocket client all run.
"""

from __future__ import annotations

import gc
import threading
import time
import uuid
from collections import Counter
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from tests.fixtures.exchanges.server import Faults, LocalExchange, binance_frames
from tests.fixtures.paths import shared_data
from tickpipe.bus.admin import create_topics
from tickpipe.bus.kafka import KafkaBus
from tickpipe.clock import LiveClock
from tickpipe.ids import EventIds
from tickpipe.messages import QuoteTick, TradeTick
from tickpipe.ratelimit import RateLimiters
from tickpipe.runner import SourceRunner
from tickpipe.service import Emit
from tickpipe.telemetry.tracing import make_tracer
from tickpipe.topics import DLQ, QUOTES, TRADES, TopicNames
from tickpipe_ingest.ccxt_client import make_exchange
from tickpipe_ingest.domain.quality import CollectingQuality, Gap, Stale
from tickpipe_ingest.domain.validation import Validator
from tickpipe_ingest.exchange import ExchangeConfig, ExchangeSource, FeedError
from tickpipe_ingest.normalize import Normalizer
from tickpipe_ingest.quality import QualityReporter

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

FRAMES = binance_frames()
TRADE_FRAMES = [d for s, d in FRAMES if s.endswith("@trade")]
QUOTE_FRAMES = [d for s, d in FRAMES if s.endswith("@bookTicker")]


def _tops(frames: list[dict[str, Any]]) -> list[tuple[float, float, float, float]]:
    """The distinct consecutive tops of book: what the source publishes."""
    tops: list[tuple[float, float, float, float]] = []
    for d in frames:
        top = (float(d["b"]), float(d["B"]), float(d["a"]), float(d["A"]))
        if not tops or tops[-1] != top:
            tops.append(top)
    return tops


class Feed:
    """An ExchangeSource with its own rate limiters, quality sink and counters."""

    def __init__(self, server: LocalExchange, exchange: str = "binance", **config: Any) -> None:
        ccxt_config = server.binance_config() if exchange == "binance" else server.kraken_config()
        ccxt_config.update(config.pop("ccxt_extra", {}))
        self.config = ExchangeConfig(
            exchange, ("BTC/USDT",), backoff_initial_s=0.05, ccxt_config=ccxt_config, **config
        )
        self.quality = CollectingQuality()
        # The service's adapter (logs, metrics), forwarding to a collector the test reads.
        reporter = QualityReporter(self.config.source, on_event=self.quality.report)
        self.reporter = reporter
        clock = LiveClock()
        self.normalize = Normalizer(
            clock, EventIds(clock), self.config.source, Validator(quality=reporter), live=True
        )
        limiters = self.limiters = RateLimiters()  # each test sets its own limits

        def factory(c: ExchangeConfig) -> tuple[Any, str]:
            return make_exchange(c.exchange, c.transport, c.ccxt_config, limiters=limiters)

        self.stop = threading.Event()
        self.clock = clock
        self.factory = factory

    def source(self, limit: int | None) -> ExchangeSource:
        return ExchangeSource(
            self.config,
            self.normalize,
            self.clock,
            self.reporter,
            factory=self.factory,
            limit=limit,
            stop=self.stop,
        )

    def run(self, limit: int) -> list[Emit]:
        return list(self.source(limit))


def _trades(emits: list[Emit]) -> list[TradeTick]:
    return [e.event for e in emits if isinstance(e.event, TradeTick)]


def _quotes(emits: list[Emit]) -> list[QuoteTick]:
    return [e.event for e in emits if isinstance(e.event, QuoteTick)]


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- websockets ----------------------------------------------------------------------------


def test_exchange_source_when_binance_websocket_streams_publishes_recorded_trades_and_quotes() -> (
    None
):
    with LocalExchange() as server:
        feed = Feed(server, quotes="bids_asks")
        emits: list[Emit] = []
        for emit in feed.source(limit=None):
            emits.append(emit)
            if len(_trades(emits)) == len(TRADE_FRAMES):
                break

    trades, quotes = _trades(emits), _quotes(emits)
    assert [(t.trade_id, t.price, t.size) for t in trades] == [
        (str(d["t"]), float(d["p"]), float(d["q"])) for d in TRADE_FRAMES
    ]
    assert [t.side for t in trades] == ["sell" if d["m"] else "buy" for d in TRADE_FRAMES]
    assert [t.ts_event for t in trades] == [d["T"] * 1_000_000 for d in TRADE_FRAMES]
    assert {(t.exchange, t.symbol) for t in trades} == {("binance", "BTC/USDT")}
    # ccxt keeps only the latest top between two reads (conflation): the quotes published
    # are the capture's tops in order, possibly with some skipped, never out of order.
    tops = iter(_tops(QUOTE_FRAMES))
    published = [(q.bid, q.bid_size, q.ask, q.ask_size) for q in quotes]
    assert published[:1] == _tops(QUOTE_FRAMES)[:1]
    assert all(top in tops for top in published)
    assert feed.normalize.counts["dead_letters"] == 0
    assert server.connections == {"btcusdt@trade": 1, "btcusdt@bookTicker": 1}


def test_exchange_source_when_server_drops_websocket_reconnects_and_publishes_no_duplicates() -> (
    None
):
    faults = Faults(drop_after=20, drops=2, overlap=5)
    labels = {"source": "exchange:binance", "symbol": "BTC/USDT"}
    reconnects = _metric("tickpipe_ingest_reconnects_total", stream="trades", **labels)
    skipped = _metric("tickpipe_ingest_overlap_skipped_total", **labels)
    with LocalExchange(faults=faults) as server:
        feed = Feed(server, quotes="none")

        emits = feed.run(limit=len(TRADE_FRAMES))
        connections = server.connections["btcusdt@trade"]

    ids = [t.trade_id for t in _trades(emits)]
    assert ids == [str(d["t"]) for d in TRADE_FRAMES]  # all of them, once, in order
    assert connections == 3
    assert _metric("tickpipe_ingest_reconnects_total", stream="trades", **labels) - reconnects == 2
    assert _metric("tickpipe_ingest_overlap_skipped_total", **labels) - skipped == 10
    assert [e for e in feed.quality.events if isinstance(e, Gap)] == []


def test_exchange_source_when_frames_missing_reports_trade_id_gap() -> None:
    lost = {TRADE_FRAMES[10]["t"], TRADE_FRAMES[11]["t"], TRADE_FRAMES[12]["t"]}
    with LocalExchange(faults=Faults(skip_trade_ids=lost)) as server:
        feed = Feed(server, quotes="none")

        emits = feed.run(limit=len(TRADE_FRAMES) - 3)

    assert len(_trades(emits)) == len(TRADE_FRAMES) - 3
    (gap,) = feed.quality.events
    assert isinstance(gap, Gap)
    assert (gap.expected, gap.received, gap.missing) == (
        TRADE_FRAMES[10]["t"],
        TRADE_FRAMES[13]["t"],
        3,
    )


def test_exchange_source_when_feed_goes_silent_reports_stale_and_reconnects() -> None:
    labels = {"source": "exchange:binance", "symbol": "BTC/USDT", "stream": "trades"}
    stale_before = _metric("tickpipe_ingest_stale_total", **labels)
    with LocalExchange(faults=Faults(silence_after=15)) as server:
        feed = Feed(server, quotes="none", stale_after_s=0.3)

        emits = feed.run(limit=len(TRADE_FRAMES))
        connections = server.connections["btcusdt@trade"]

    assert [t.trade_id for t in _trades(emits)] == [str(d["t"]) for d in TRADE_FRAMES]
    stale = [e for e in feed.quality.events if isinstance(e, Stale)]
    assert len(stale) >= 1
    assert (stale[0].symbol, stale[0].stream) == ("BTC/USDT", "trades")
    assert stale[0].silent_ns >= 300_000_000
    assert connections >= 2
    assert _metric("tickpipe_ingest_stale_total", **labels) - stale_before == len(stale)


def test_exchange_source_when_symbol_unknown_fails_with_the_reason() -> None:
    with LocalExchange() as server:
        feed = Feed(server)
        feed.config = ExchangeConfig("binance", ("DOGE/EUR",), ccxt_config=server.binance_config())

        with pytest.raises(FeedError, match=r"has no markets \['DOGE/EUR'\]"):
            feed.run(limit=1)


# -- REST polling ----------------------------------------------------------------------------


def test_exchange_source_when_polling_binance_rest_publishes_each_trade_once() -> None:
    with LocalExchange(reveal_per_request=7) as server:
        feed = Feed(server, transport="rest", quotes="order_book", poll_interval_s=0.01)

        emits = feed.run(limit=len(TRADE_FRAMES) + 1)
        polls = server.requests["/api/v3/aggTrades"]

    trades, quotes = _trades(emits), _quotes(emits)
    assert [t.trade_id for t in trades] == [str(d["t"]) for d in TRADE_FRAMES]
    assert polls >= len(TRADE_FRAMES) // 7
    # ccxt's recorded depth: 42574.3 x 0.0107 / 42574.31 x 0.0087; published once (unchanged).
    assert [(q.bid, q.bid_size, q.ask, q.ask_size) for q in quotes] == [
        (42574.3, 0.0107, 42574.31, 0.0087)
    ]


def test_exchange_source_when_polling_kraken_rest_reads_its_trades_payload() -> None:
    payload = orjson.loads(
        shared_data(
            "nautilus_trader/crates/adapters/kraken/test_data/http_trades.json"
        ).read_bytes()
    )
    rows = payload["result"]["XBTUSDT"]
    with LocalExchange(kraken_trades=payload, reveal_per_request=250) as server:
        feed = Feed(
            server,
            "kraken",
            transport="rest",
            quotes="ticker",
            poll_interval_s=0.01,
            ccxt_extra={"rateLimit": 5},
        )

        emits = feed.run(limit=len(rows) + 1)

    trades = _trades(emits)
    assert [t.trade_id for t in trades] == [str(r[6]) for r in rows]  # 10218208..10219207
    assert [(t.price, t.size) for t in trades[:2]] == [(105433.6, 0.00027625), (105410.1, 0.00005)]
    assert Counter(t.side for t in trades) == Counter(
        "buy" if r[3] == "b" else "sell" for r in rows
    )
    assert [(q.bid, q.ask) for q in _quotes(emits)] == [(73380.6, 73380.7)]
    assert feed.quality.events == type(feed.quality.events)()  # contiguous ids: no gaps


def test_exchange_source_when_polling_waits_for_the_rate_limiter() -> None:
    with LocalExchange(reveal_per_request=2) as server:
        # rateLimit 250 ms: 4 tokens/s. ccxt weighs exchangeInfo 4 and aggTrades 0.4, so
        # after the markets every trades poll waits 100 ms, whatever the poll interval.
        feed = Feed(
            server,
            transport="rest",
            quotes="none",
            poll_interval_s=0.001,
            ccxt_extra={"rateLimit": 250},
        )

        feed.run(limit=16)
        stamps = server.request_times["/api/v3/aggTrades"]

    bucket = feed.limiters.for_exchange("binance", 250)
    assert len(stamps) >= 8
    # Arrival times jitter with the load; their average spacing cannot beat the limit.
    assert (stamps[-1] - stamps[0]) / (len(stamps) - 1) >= 0.09
    assert bucket.waited_s >= 0.1 * (len(stamps) - 1)


# -- into Kafka ------------------------------------------------------------------------------


def _count_topics(
    bootstrap: str, names: TopicNames, want: int, timeout_s: float = 20.0
) -> Counter[str]:
    link = KafkaBus(bootstrap, names).link(
        group=f"{uuid.uuid4().hex}.count", topics=[TRADES, QUOTES, DLQ], client_id="count"
    )
    counts: Counter[str] = Counter()
    ids: list[str] = []
    deadline = time.monotonic() + timeout_s
    try:
        while sum(counts.values()) < want and time.monotonic() < deadline:
            for r in link.poll(1000, 0.5):
                counts[r.topic] += 1
                if r.topic == TRADES:
                    ids.append(orjson.loads(r.value)["trade_id"])
        for r in link.poll(1000, 1.0):  # anything beyond what was expected
            counts[r.topic] += 1
    finally:
        link.close()
        del link
        gc.collect()  # frees librdkafka handles now, not after the broker has stopped
    counts["distinct_trade_ids"] = len(set(ids))
    return counts


def test_exchange_source_when_published_to_kafka_after_drops_has_no_duplicates_on_the_broker(
    kafka_bootstrap: str,
) -> None:
    names = TopicNames(f"ingestx{uuid.uuid4().hex[:8]}")
    create_topics(kafka_bootstrap, names)
    bus = KafkaBus(kafka_bootstrap, names)
    with LocalExchange(faults=Faults(drop_after=25, drops=2, overlap=8)) as server:
        feed = Feed(server, quotes="none")
        producer = bus.producer("ingest-test")
        try:
            runner = SourceRunner(
                service="ingest",
                source=feed.source(len(TRADE_FRAMES)),
                producer=producer,
                tracer=make_tracer("ingest"),
            )
            published = runner.run()
        finally:
            producer.close()

    counts = _count_topics(kafka_bootstrap, names, want=published)
    assert published == len(TRADE_FRAMES)
    assert counts[TRADES] == len(TRADE_FRAMES)
    assert counts["distinct_trade_ids"] == len(TRADE_FRAMES)
    assert counts[DLQ] == 0
