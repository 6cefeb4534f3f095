"""Ingest wiring: settings pick the source; replay merges files; the generator paces; the
data-quality adapter logs and counts; sources end on stop."""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from tests.fixtures.paths import BAD_INPUTS, shared_data
from tickpipe.bus.memory import MemoryBus
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import LiveClock, SimClock
from tickpipe.ids import EventIds
from tickpipe.marketdata import SyntheticConfig
from tickpipe.messages import QuoteTick, TradeTick
from tickpipe.service import ServiceContext
from tickpipe.settings import PlatformSettings
from tickpipe.topics import DLQ, QUOTES, TRADES
from tickpipe_ingest.app import IngestSettings, build
from tickpipe_ingest.domain.quality import Gap, Stale
from tickpipe_ingest.domain.validation import Validator
from tickpipe_ingest.generator import GeneratorSource
from tickpipe_ingest.normalize import Normalizer
from tickpipe_ingest.quality import QualityReporter
from tickpipe_ingest.replay import FileReplaySource

S = 1_000_000_000


@pytest.fixture
def ctx() -> ServiceContext:
    clock = SimClock(1_795_000_000 * S)
    return ServiceContext(
        PlatformSettings(), MemoryBus(), MemoryCache(clock), clock, EventIds(clock, seed=1)
    )


@pytest.fixture(autouse=True)
def _restore_signals() -> object:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield None
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _sample_value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- settings and source selection -----------------------------------------------------------


def test_ingest_settings_when_env_lists_comma_separated_parses_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TICKPIPE_INGEST_FILE", "a.parquet, b.parquet")
    monkeypatch.setenv("TICKPIPE_INGEST_SYMBOLS", "BTC/USDT,ETH/USDT")
    monkeypatch.setenv(
        "TICKPIPE_INGEST_CCXT_CONFIG", json.dumps({"urls": {"api": {"public": "http://x"}}})
    )
    monkeypatch.setenv("TICKPIPE_INGEST_SOURCE", "exchange")

    s = IngestSettings()

    assert s.file == (Path("a.parquet"), Path("b.parquet"))
    assert s.symbols == ("BTC/USDT", "ETH/USDT")
    assert s.ccxt_config == {"urls": {"api": {"public": "http://x"}}}
    assert s.source == "exchange"


def test_ingest_settings_when_ccxt_config_holds_credentials_refuses_them() -> None:
    with pytest.raises(
        ValueError, match=r"needs no credentials; remove \['apiKey', 'secret'\]"
    ) as err:
        IngestSettings(ccxt_config={"apiKey": "k3y", "secret": "s3cr3t", "options": {}})

    assert "s3cr3t" not in str(err.value) and "k3y" not in str(err.value)


def test_ingest_settings_when_source_unknown_refuses_it() -> None:
    with pytest.raises(ValueError, match="source"):
        IngestSettings(source="carrier-pigeon")  # type: ignore[arg-type]


def test_build_when_source_file_replays_the_given_formats() -> None:
    # A live clock: under a SimClock a replay's clock follows the data, future times included.
    clock = LiveClock()
    ctx = ServiceContext(
        PlatformSettings(), MemoryBus(), MemoryCache(clock), clock, EventIds(clock)
    )
    settings = IngestSettings(file=(BAD_INPUTS / "BTCUSDT-trades.csv",), exchange="binance")

    source = build(ctx, settings)

    assert isinstance(source, FileReplaySource)
    topics = Counter(e.topic for e in source)
    assert topics == {TRADES: 2, DLQ: 14}


def test_build_when_file_missing_or_unreadable_exits_with_the_reason(
    ctx: ServiceContext, tmp_path: Path
) -> None:
    unknown = tmp_path / "x.csv"
    unknown.write_text("a,b\n1,2\n")

    with pytest.raises(SystemExit, match=r"input file not found: nope\.csv"):
        build(ctx, IngestSettings(file=(Path("nope.csv"),)))
    with pytest.raises(SystemExit, match=r"ingest: .*x\.csv: cannot tell trades or quotes"):
        build(ctx, IngestSettings(file=(unknown,), exchange="x", symbol="A/B"))


def test_build_when_source_generator_yields_seeded_events(ctx: ServiceContext) -> None:
    settings = IngestSettings(source="generator", symbol_count=3, limit=500, seed=9)

    source = build(ctx, settings)

    assert isinstance(source, GeneratorSource)
    events = [e.event for e in source]
    assert len(events) == 500
    assert {e.exchange for e in events if isinstance(e, TradeTick | QuoteTick)} == {"synthetic"}
    assert {e.symbol for e in events if isinstance(e, TradeTick | QuoteTick)} == {
        "SYN000/USDT",
        "SYN001/USDT",
        "SYN002/USDT",
    }


def test_build_when_source_exchange_builds_without_connecting(ctx: ServiceContext) -> None:
    settings = IngestSettings(source="exchange", exchange="binance", symbols=("BTC/USDT",))

    source = build(ctx, settings)

    from tickpipe_ingest.exchange import ExchangeSource  # ccxt is slow to import: only here

    assert isinstance(source, ExchangeSource)
    assert source.config.symbols == ("BTC/USDT",)
    assert source.config.source == "exchange:binance"
    assert source.feed is None  # nothing started until iterated


def test_build_when_exchange_source_lacks_exchange_or_symbols_exits(ctx: ServiceContext) -> None:
    with pytest.raises(SystemExit, match="needs TICKPIPE_INGEST_EXCHANGE and _SYMBOLS"):
        build(ctx, IngestSettings(source="exchange", exchange="binance"))


# -- file replay -----------------------------------------------------------------------------


def test_file_replay_when_trades_and_quotes_files_given_merges_them_by_exchange_time() -> None:
    trades = shared_data("nautilus_trader/tests/test_data/binance/btcusdt-trades.parquet")
    quotes = shared_data("nautilus_trader/tests/test_data/binance/btcusdt-quotes.parquet")
    clock = SimClock()
    normalize = Normalizer(clock, EventIds(clock, seed=1), "file:btcusdt", Validator())

    emits = list(FileReplaySource([trades, quotes], normalize, clock, exchange="binance"))

    assert Counter(e.topic for e in emits) == {TRADES: 2_001, QUOTES: 451}
    stamps = [e.event.ts_event for e in emits]
    assert stamps == sorted(stamps)
    assert clock.now_ns() == stamps[-1]  # a SimClock follows the data


def test_file_replay_when_speed_set_sleeps_the_exchange_time_gaps() -> None:
    path = shared_data("nautilus_trader/tests/test_data/tardis/bitmex_trades_XBTUSD.csv")
    clock = LiveClock()
    slept: list[float] = []
    normalize = Normalizer(clock, EventIds(clock), "file:bitmex", Validator())

    emits = list(FileReplaySource(path, normalize, clock, speed=10.0, sleep=slept.append))

    assert len(emits) == 10
    # 131 ms of exchange time at ×10: the last wait is due ~13.1 ms after the start.
    assert slept
    assert max(slept) <= 0.0131 + 1e-3


def test_file_replay_when_stop_set_ends_early() -> None:
    stop = threading.Event()
    clock = SimClock()
    normalize = Normalizer(clock, EventIds(clock, seed=1), "file:sample", Validator())
    source = FileReplaySource(BAD_INPUTS / "binance_capture.txt", normalize, clock, stop=stop)

    seen = 0
    for _ in source:
        seen += 1
        if seen == 3:
            stop.set()

    assert seen == 3


# -- generator -------------------------------------------------------------------------------


def test_generator_when_paced_sleeps_to_hold_the_rate() -> None:
    clock = LiveClock()
    slept: list[float] = []
    normalize = Normalizer(clock, EventIds(clock), "generator:synthetic", Validator(), live=True)
    config = SyntheticConfig(rate=100.0, seed=1)

    emits = list(
        GeneratorSource(config, normalize, clock, paced=True, limit=200, sleep=slept.append)
    )

    assert len(emits) == 200
    assert Counter(e.topic for e in emits)[DLQ] == 0
    # 200 events at 100/s: about 2 s of waits were asked for (sleep is a no-op here).
    assert sum(slept) > 1.0


def test_generator_when_unpaced_stamps_with_the_clock_and_validates_all() -> None:
    clock = LiveClock()
    normalize = Normalizer(clock, EventIds(clock), "generator:synthetic", Validator(), live=True)
    config = SyntheticConfig(rate=1_000_000.0, seed=2)  # far ahead of the wall clock

    emits = list(GeneratorSource(config, normalize, clock, paced=False, limit=2_000))

    assert Counter(e.topic for e in emits)[DLQ] == 0  # nothing "from the future"
    stamps = [e.event.ts_event for e in emits]
    assert stamps == sorted(set(stamps))


def test_generator_when_sim_clock_is_deterministic() -> None:
    def run() -> list[tuple[str, float, int]]:
        clock = SimClock(1_795_000_000 * S)
        normalize = Normalizer(clock, EventIds(clock, seed=1), "generator:synthetic", Validator())
        source = GeneratorSource(SyntheticConfig(seed=4), normalize, clock, limit=300)
        return [
            (e.event.event_id, getattr(e.event, "price", 0.0), e.event.ts_event) for e in source
        ]

    assert run() == run()


# -- normalizer metrics and the data-quality adapter -----------------------------------------


def test_normalizer_when_live_records_lag_and_messages_by_symbol() -> None:
    clock = SimClock(1_795_000_000 * S)
    source = "generator:lagtest"
    normalize = Normalizer(clock, EventIds(clock, seed=1), source, Validator(), live=True)
    config = SyntheticConfig(exchange="lagtest", symbols=("LAG/USDT",), seed=1)
    before = _sample_value("tickpipe_ingest_source_lag_seconds_count", source=source, type="trade")

    list(GeneratorSource(config, normalize, clock, limit=1_000))

    counts = normalize.counts
    assert (
        _sample_value(
            "tickpipe_ingest_messages_total", source=source, symbol="LAG/USDT", type="trade"
        )
        == counts["trades"]
    )
    assert (
        _sample_value(
            "tickpipe_ingest_messages_total", source=source, symbol="LAG/USDT", type="quote"
        )
        == counts["quotes"]
    )
    assert (
        _sample_value("tickpipe_ingest_source_lag_seconds_count", source=source, type="trade")
        - before
        == counts["trades"]
    )


def test_quality_reporter_when_gap_reported_logs_json_fields_counts_and_forwards(
    caplog: pytest.LogCaptureFixture,
) -> None:
    forwarded: list[object] = []
    reporter = QualityReporter("exchange:testgap", on_event=forwarded.append)
    gap = Gap("binance", "GAP/USDT", "trades", "trade_id", 102, 105, 7)

    with caplog.at_level(logging.WARNING, logger="tickpipe_ingest.quality"):
        reporter.report(gap)
        reporter.report(Stale("binance", "GAP/USDT", "quotes", 31 * S, 9))

    assert forwarded == [gap, Stale("binance", "GAP/USDT", "quotes", 31 * S, 9)]
    assert reporter.counts == {"gaps": 1, "missing": 3, "stale": 1}
    record = caplog.records[0]
    assert (
        record.__dict__["quality"],
        record.__dict__["missing"],
        record.__dict__["expected"],
    ) == ("gap", 3, 102)
    assert caplog.records[1].__dict__["silent_ns"] == 31 * S
    labels = {"source": "exchange:testgap", "symbol": "GAP/USDT", "field": "trade_id"}
    assert _sample_value("tickpipe_ingest_gaps_total", **labels) == 1
    assert _sample_value("tickpipe_ingest_gap_missing_total", **labels) == 3
    assert (
        _sample_value(
            "tickpipe_ingest_stale_total",
            source="exchange:testgap",
            symbol="GAP/USDT",
            stream="quotes",
        )
        == 1
    )


def test_build_when_the_service_is_stopped_then_a_running_source_ends(ctx: ServiceContext) -> None:
    source = build(ctx, IngestSettings(source="generator", symbol_count=2, seed=3))
    events = iter(source)
    first = [next(events) for _ in range(10)]

    ctx.stop.set()  # what SIGTERM does in a process (tickpipe.app.run_service)
    rest = list(events)

    assert len(first) == 10
    assert len(rest) <= 1  # ends between records: at most the one under way
