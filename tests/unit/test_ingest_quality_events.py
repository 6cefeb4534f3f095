"""Ingest publishes its data-quality reports on `md.quality.v1`: a `degraded` DataQuality event
in order with the market data, then `healthy` once the stream carries data again; risk halts
the instrument in between."""

from __future__ import annotations

import dataclasses
import gzip
import queue
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.unit import factories as f
from tests.unit.test_risk_commands import _decide, _handler
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.marketdata import QuoteData, SyntheticConfig, TradeData, read_market_data
from tickpipe.messages import DataQuality, FeedStatus, QualityIssue, QuoteTick, TradeTick
from tickpipe.service import Emit
from tickpipe.topics import DLQ, QUALITY, QUOTES, TRADES
from tickpipe_ingest import exchange as exchange_module
from tickpipe_ingest.domain.quality import Stale
from tickpipe_ingest.domain.validation import Validator
from tickpipe_ingest.exchange import ExchangeConfig, ExchangeSource
from tickpipe_ingest.generator import GeneratorSource
from tickpipe_ingest.normalize import Normalizer
from tickpipe_ingest.quality import QualityReporter
from tickpipe_ingest.replay import FileReplaySource

S = 1_000_000_000
SLICE_LINES = 400


def _normalizer(clock: SimClock, source: str = "file:test") -> Normalizer:
    reporter = QualityReporter(source)
    return Normalizer(clock, EventIds(clock, seed=3), source, Validator(quality=reporter))


def _replay(path: Path) -> tuple[list[Emit], Normalizer]:
    clock = SimClock(0)
    normalizer = _normalizer(clock)
    return list(FileReplaySource(path, normalizer, clock)), normalizer


def _capture_slice(tmp_path: Path, drop_trade: bool) -> tuple[Path, int | None]:
    """The first lines of the real capture, optionally less one trade line in the middle;
    returns the file and the dropped trade id."""
    with gzip.open(f.SAMPLE, "rb") as fh:
        lines = [fh.readline() for _ in range(SLICE_LINES)]
    trade_lines = [i for i, line in enumerate(lines) if b"@trade" in line]
    assert len(trade_lines) >= 10
    dropped_id = None
    if drop_trade:
        index = trade_lines[len(trade_lines) // 2]
        path = tmp_path / "cut.gz"
        with gzip.open(path, "wb") as fh:
            fh.writelines(lines[index : index + 1])
        (dropped,) = [i for i in read_market_data(path) if isinstance(i, TradeData)]
        dropped_id = int(dropped.trade_id)
        del lines[index]
    path = tmp_path / ("binance-gap.gz" if drop_trade else "binance-slice.gz")
    with gzip.open(path, "wb") as fh:
        fh.writelines(lines)
    return path, dropped_id


def _quality(emits: list[Emit]) -> list[DataQuality]:
    return [e.event for e in emits if isinstance(e.event, DataQuality)]


# -- file replay: a gap in the real capture --------------------------------------------------


def test_file_replay_when_capture_untouched_publishes_no_quality_events(tmp_path: Path) -> None:
    path, _ = _capture_slice(tmp_path, drop_trade=False)

    emits, normalizer = _replay(path)

    assert _quality(emits) == []
    assert {e.topic for e in emits} == {TRADES, QUOTES}
    assert len(emits) == len(list(read_market_data(path)))  # one event per record
    assert normalizer.counts["dead_letters"] == 0


def test_file_replay_when_trade_line_missing_publishes_degraded_gap_then_healthy_in_order(
    tmp_path: Path,
) -> None:
    path, dropped = _capture_slice(tmp_path, drop_trade=True)
    assert dropped is not None

    emits, normalizer = _replay(path)

    assert len(emits) == len(list(read_market_data(path))) + 2  # plus degraded and healthy
    at = next(i for i, e in enumerate(emits) if e.topic == QUALITY)
    before, (degraded, after, healthy) = emits[:at], emits[at : at + 3]
    trades_before = [e.event.trade_id for e in before if isinstance(e.event, TradeTick)]
    assert trades_before and int(trades_before[-1]) == dropped - 1
    assert all(e.topic in (TRADES, QUOTES) for e in before)
    # The trade that reveals the gap, between the degraded and the healthy event.
    assert isinstance(after.event, TradeTick) and after.event.trade_id == str(dropped + 1)
    assert (degraded.topic, healthy.topic) == (QUALITY, QUALITY)
    assert isinstance(degraded.event, DataQuality) and isinstance(healthy.event, DataQuality)
    d, h = degraded.event, healthy.event
    assert (d.status, d.issue, d.stream) == (FeedStatus.DEGRADED, QualityIssue.GAP, "trades")
    assert (d.expected, d.received) == (dropped, dropped + 1)
    assert (d.exchange, d.symbol, d.source) == ("binance", "BTC/USDT", "file:test")
    assert degraded.record_key() == "binance:BTC/USDT"
    assert d.detail == f"trade_id {dropped}..{dropped} missing (1)"
    assert (h.status, h.issue, h.stream, h.symbol) == (
        FeedStatus.HEALTHY,
        None,
        "trades",
        "BTC/USDT",
    )
    assert h.causation_id == d.event_id
    assert h.event_id != d.event_id and h.event_id > d.event_id  # from the source's EventIds
    # ts from the source's clock, which a SimClock replay sets to the data's time.
    assert d.ts_init == d.ts_event == after.event.ts_init
    assert _quality(emits) == [d, h]
    assert all(e.topic != QUALITY for e in emits[at + 3 :])
    assert normalizer.quality is not None
    assert normalizer.quality.counts == {"gaps": 1, "missing": 1, "stale": 0}


def test_file_replay_when_gap_events_fed_to_risk_halts_then_resumes_the_symbol(
    tmp_path: Path,
) -> None:
    path, _ = _capture_slice(tmp_path, drop_trade=True)
    emits, _ = _replay(path)
    degraded, healthy = _quality(emits)
    risk = _handler()

    assert risk.handle(degraded, QUALITY, f.T0) == ()
    assert _decide(risk, 1).reasons == ["data_quality_halt"]
    assert _decide(risk, 2, symbol="ETH/USDT").approved  # only the degraded instrument
    assert _decide(risk, 3).reasons == ["data_quality_halt"]

    assert risk.handle(healthy, QUALITY, f.T0) == ()
    assert _decide(risk, 4).approved


# -- stale: the reporter mechanism and the exchange source -----------------------------------

T = f.T0


def _trade(trade_id: str, symbol: str = "BTC/USDT") -> TradeData:
    return TradeData("binance", symbol, trade_id, 60_000.0, 0.1, "buy", T)


def test_normalizer_when_stream_stale_publishes_degraded_then_healthy_on_its_next_record() -> None:
    clock = SimClock(T)
    normalizer = _normalizer(clock, "exchange:binance")
    assert normalizer.quality is not None
    assert [e.topic for e in normalizer.emits(_trade("100"))] == [TRADES]
    assert normalizer.quality_emits() == []

    normalizer.quality.report(Stale("binance", "BTC/USDT", "trades", 31 * S, T))
    (degraded,) = normalizer.quality_emits()
    assert normalizer.quality_emits() == []  # published once
    other = normalizer.emits(_trade("7", symbol="ETH/USDT"))  # other streams do not heal it
    clock.advance_to(T + S)
    healed = normalizer.emits(_trade("101"))
    again = normalizer.emits(_trade("102"))

    assert isinstance(degraded.event, DataQuality)
    d = degraded.event
    assert (d.status, d.issue, d.stream, d.silent_ns) == (
        FeedStatus.DEGRADED,
        QualityIssue.STALE,
        "trades",
        31 * S,
    )
    assert (d.expected, d.received, d.ts_event) == (None, None, T)
    assert [e.topic for e in other] == [TRADES]
    assert [e.topic for e in healed] == [TRADES, QUALITY]
    h = healed[1].event
    assert isinstance(h, DataQuality)
    assert (h.status, h.issue, h.stream, h.causation_id) == (
        FeedStatus.HEALTHY,
        None,
        "trades",
        d.event_id,
    )
    assert h.ts_event == T + S
    assert [e.topic for e in again] == [TRADES]


def test_normalizer_when_record_dead_lettered_does_not_heal_the_stream() -> None:
    normalizer = _normalizer(SimClock(T))
    assert normalizer.quality is not None
    normalizer.emits(_trade("100"))
    normalizer.quality.report(Stale("binance", "BTC/USDT", "trades", 31 * S, T))

    duplicate = normalizer.emits(_trade("100"))
    fresh = normalizer.emits(_trade("101"))

    assert [e.topic for e in duplicate] == [QUALITY, DLQ]
    assert [e.topic for e in fresh] == [TRADES, QUALITY]


def test_normalizer_when_quote_sequence_skips_publishes_gap_on_the_quotes_stream() -> None:
    normalizer = _normalizer(SimClock(T))
    quote = QuoteData("binance", "BTC/USDT", 60_000.0, 1.0, 60_000.01, 1.0, T, sequence=10)

    assert [e.topic for e in normalizer.emits(quote)] == [QUOTES]
    emits = normalizer.emits(dataclasses.replace(quote, sequence=13))

    assert [e.topic for e in emits] == [QUALITY, QUOTES, QUALITY]
    d, h = emits[0].event, emits[2].event
    assert isinstance(d, DataQuality) and isinstance(h, DataQuality)
    assert (d.stream, d.issue, d.expected, d.received) == ("quotes", QualityIssue.GAP, 11, 13)
    assert (h.stream, h.status) == ("quotes", FeedStatus.HEALTHY)
    assert isinstance(emits[1].event, QuoteTick)


def test_normalizer_without_reporter_publishes_records_only() -> None:
    clock = SimClock(T)
    normalizer = Normalizer(clock, EventIds(clock), "x", Validator())  # CollectingQuality

    assert [e.topic for e in normalizer.emits(_trade("1"))] == [TRADES]
    assert [e.topic for e in normalizer.emits(_trade("5"))] == [TRADES]
    assert normalizer.quality_emits() == []


class _SilentFeed:
    """Stands in for the ccxt feed thread: one trade, then silence until the test has the
    watchdog report it stale, then one more trade once the test says so."""

    def __init__(
        self,
        config: ExchangeConfig,
        factory: Any,
        handoff: queue.Queue[object],
        clock: Any,
        quality: Any,
    ) -> None:
        self._handoff = handoff
        self._quality = quality
        self.stale = threading.Event()
        self.resume = threading.Event()
        self.resumed = False  # by the test, not by the timeout
        self._stopped = threading.Event()

    def run(self) -> None:
        self._handoff.put(_trade("100"))
        if self.stale.wait(5):
            self._quality.report(Stale("binance", "BTC/USDT", "trades", 30 * S, T))
        # Had the degraded event not been published while silent, the test would wait for it
        # in vain: the next trade comes anyway after a while, for a failure instead of a hang.
        self.resumed = self.resume.wait(5)
        self._handoff.put(_trade("101"))
        self._stopped.wait(5)

    def stop(self) -> None:
        self._stopped.set()


def test_exchange_source_when_feed_stale_publishes_degraded_while_silent_then_healthy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(exchange_module, "Feed", _SilentFeed)
    clock = SimClock(T)
    config = ExchangeConfig("binance", ("BTC/USDT",))
    normalizer = _normalizer(clock, config.source)
    assert normalizer.quality is not None
    source = ExchangeSource(config, normalizer, clock, normalizer.quality, limit=2)

    records = iter(source)
    emits = [next(records)]  # trade 100; the feed then stays silent
    feed = source.feed
    assert isinstance(feed, _SilentFeed)
    feed.stale.set()  # the watchdog reports the silence...
    emits.append(next(records))  # ...and its event is published while no trade comes
    feed.resume.set()
    emits += list(records)

    assert feed.resumed, "the degraded event was published only once trades came again"
    assert [e.topic for e in emits] == [TRADES, QUALITY, TRADES, QUALITY]
    d, h = emits[1].event, emits[3].event
    assert isinstance(d, DataQuality) and isinstance(h, DataQuality)
    assert (d.status, d.issue, d.silent_ns, d.source) == (
        FeedStatus.DEGRADED,
        QualityIssue.STALE,
        30 * S,
        "exchange:binance",
    )
    assert (h.status, h.causation_id) == (FeedStatus.HEALTHY, d.event_id)
    risk = _handler()
    risk.handle(d, QUALITY, f.T0)
    assert _decide(risk, 1).reasons == ["data_quality_halt"]
    risk.handle(h, QUALITY, f.T0)
    assert _decide(risk, 2).approved


# -- the generator -------------------------------------------------------------------------


def test_generator_when_ids_contiguous_publishes_no_quality_events() -> None:
    clock = SimClock(T)
    normalizer = _normalizer(clock, "generator:synthetic")
    config = SyntheticConfig(exchange="synthetic", symbol_count=3, seed=1)

    emits = list(GeneratorSource(config, normalizer, clock, limit=2_000))

    assert len(emits) == 2_000
    assert _quality(emits) == []
