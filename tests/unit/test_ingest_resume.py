"""Ingest resumes after what its topics hold (`TICKPIPE_INGEST_RESUME`): a restarted file
replay publishes each record once, numbered on; an exchange stream skips the trades already
published. Over the in-memory bus, whose `tail` reads the ends of the partitions."""

from __future__ import annotations

import queue
import threading
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
from opentelemetry.trace import NoOpTracer

from tests.fixtures.paths import BAD_INPUTS
from tests.unit import factories as f
from tickpipe.bus.base import Record
from tickpipe.bus.memory import MemoryBus
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.marketdata import TradeData
from tickpipe.messages import DataQuality, QualityIssue, TradeTick
from tickpipe.runner import SourceRunner, encode_emit
from tickpipe.service import Emit, ServiceContext, Starts
from tickpipe.settings import PlatformSettings
from tickpipe.topics import DLQ, QUALITY, QUOTES, TRADES
from tickpipe_ingest import exchange as exchange_module
from tickpipe_ingest.app import IngestSettings, build
from tickpipe_ingest.domain.validation import Validator
from tickpipe_ingest.exchange import ExchangeConfig, ExchangeSource
from tickpipe_ingest.normalize import Normalizer
from tickpipe_ingest.quality import QualityReporter
from tickpipe_ingest.replay import FileReplaySource
from tickpipe_ingest.resume import ResumePoint, SkipSeenTrades

TOPICS = (TRADES, QUOTES, DLQ, QUALITY)
SOURCE = "file:test"
LIMIT = 6_000  # of the sample: ~1,500 trades and ~4,500 quotes


def _ctx(bus: MemoryBus, kafka: bool = False) -> ServiceContext:
    clock = SimClock()
    settings = PlatformSettings(bus="kafka" if kafka else "memory", instance_id="test")
    return ServiceContext(settings, bus, MemoryCache(clock), clock, EventIds(clock, seed=5))


def _replay(files: list[Path], limit: int | None, resume: bool, seed: int) -> FileReplaySource:
    clock = SimClock()
    quality = QualityReporter(SOURCE)
    normalize = Normalizer(
        clock, EventIds(clock, seed=seed), SOURCE, Validator(quality=quality), quality=quality
    )
    return FileReplaySource(files, normalize, clock, limit=limit, resume=resume)


def _publish(bus: MemoryBus, emits: Any) -> None:
    SourceRunner(
        service="ingest", source=emits, producer=bus.producer("ingest"), tracer=NoOpTracer()
    ).run()


def _content(bus: MemoryBus) -> dict[str, list[dict[str, Any]]]:
    """What each topic holds, minus what every run draws anew (event ids)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for topic in TOPICS:
        rows = [orjson.loads(r.value) for r in bus.records(topic)]
        for row in rows:
            row.pop("event_id")
            row.pop("causation_id", None)
        out[topic] = rows
    return out


def _resumed(files: list[Path], first_limit: int, limit: int | None, bus: MemoryBus) -> None:
    _publish(bus, _replay(files, first_limit, resume=False, seed=1))  # then it died
    source = _replay(files, limit, resume=True, seed=2)  # a new process: new ids
    assert isinstance(source, Starts)
    assert source.on_start(_ctx(bus)) == ()
    _publish(bus, source)


def _seqs(bus: MemoryBus) -> Counter[int]:
    return Counter(
        orjson.loads(r.value)["ingest_seq"] for t in (TRADES, QUOTES) for r in bus.records(t)
    )


def test_file_replay_when_restarted_with_resume_publishes_what_one_run_would() -> None:
    uninterrupted = MemoryBus()
    _publish(uninterrupted, _replay([f.SAMPLE], LIMIT, resume=False, seed=1))
    resumed = MemoryBus()

    _resumed([f.SAMPLE], 2_345, LIMIT, resumed)

    assert _content(resumed) == _content(uninterrupted)
    seqs = _seqs(resumed)
    assert sorted(seqs) == list(range(len(seqs))) and set(seqs.values()) == {1}
    trade_ids = [orjson.loads(r.value)["trade_id"] for r in resumed.records(TRADES)]
    assert len(trade_ids) == len(set(trade_ids)) > 1_000


def test_file_replay_when_records_were_lost_in_flight_publishes_them_then_the_rest() -> None:
    uninterrupted = MemoryBus()
    _publish(uninterrupted, _replay([f.SAMPLE], LIMIT, resume=False, seed=1))
    # The first run died with its last trades unacknowledged: the quotes partition got
    # further than the trades one.
    first = list(_replay([f.SAMPLE], 3_000, resume=False, seed=1))
    trades = [i for i, e in enumerate(first) if e.topic == TRADES]
    lost = set(trades[-5:])
    bus = MemoryBus()
    _publish(bus, [e for i, e in enumerate(first) if i not in lost])
    source = _replay([f.SAMPLE], LIMIT, resume=True, seed=2)
    source.on_start(_ctx(bus))

    _publish(bus, source)

    # Every record once; the lost trades after the quotes that followed them, in their
    # own numbers (feature restores the order from those).
    assert Counter(map(orjson.dumps, _content(bus)[TRADES])) == Counter(
        map(orjson.dumps, _content(uninterrupted)[TRADES])
    )
    assert _content(bus)[QUOTES] == _content(uninterrupted)[QUOTES]
    seqs = _seqs(bus)
    assert sorted(seqs) == list(range(len(seqs))) and set(seqs.values()) == {1}


def _bad_and_good() -> list[Path]:
    return [BAD_INPUTS / "binance_capture.txt", f.SAMPLE]


@pytest.mark.parametrize("first_limit", [3, 9, 14, 40])
def test_file_replay_when_dead_letters_were_published_sends_each_once(first_limit: int) -> None:
    files = _bad_and_good()
    expected = _content(_bus_of(files, 200))
    assert len(expected[DLQ]) >= 10  # the corpus' bad lines lead the merged files

    bus = MemoryBus()
    _resumed(files, first_limit, 200, bus)

    assert _content(bus) == expected


def _bus_of(files: list[Path], limit: int) -> MemoryBus:
    bus = MemoryBus()
    _publish(bus, _replay(files, limit, resume=False, seed=1))
    return bus


def test_file_replay_when_all_was_published_publishes_nothing_more() -> None:
    bus = _bus_of([f.SAMPLE], 1_000)
    before = {t: len(bus.records(t)) for t in TOPICS}

    source = _replay([f.SAMPLE], 1_000, resume=True, seed=2)
    source.on_start(_ctx(bus))
    emitted = list(source)

    assert emitted == []
    assert source.skip is not None and source.skip.skipped == 1_000
    assert {t: len(bus.records(t)) for t in TOPICS} == before


def test_file_replay_when_topics_hold_nothing_starts_at_the_beginning() -> None:
    source = _replay([f.SAMPLE], 100, resume=True, seed=2)
    source.on_start(_ctx(MemoryBus()))

    emits = list(source)

    assert len(emits) == 100
    assert source.skip is None


def test_file_replay_when_topics_hold_other_instruments_only_ignores_them() -> None:
    bus = MemoryBus()
    other = f.trade(symbol="ETH/USDT", trade_id="9", ingest_seq=500)
    bus.producer("x").send(encode_emit(Emit(TRADES, other), ()))
    source = _replay([f.SAMPLE], 100, resume=True, seed=2)
    source.on_start(_ctx(bus))

    assert len(list(source)) == 100


def test_file_replay_when_the_file_changed_warns_and_numbers_on() -> None:
    bus = _bus_of([f.SAMPLE], 500)
    # The record at the last number is another one now (a different file, same instrument).
    last = bus.records(TRADES)[-1]
    body = orjson.loads(last.value)
    body["trade_id"] = "not-in-the-file"
    point = ResumePoint.of(
        [r for t in (TRADES, QUOTES) for r in bus.records(t) if r is not last]
        + [Record(TRADES, last.partition, last.offset, last.key, orjson.dumps(body))]
    )
    source = _replay([f.SAMPLE], 1_000, resume=False, seed=2)
    source.resume_from(point)

    emits = list(source)

    assert source.skip is not None and source.skip.mismatched == [f"{TRADES} {f.KEY}"]
    numbers = [e.event.ingest_seq for e in emits if e.topic in (TRADES, QUOTES)]
    assert numbers and min(numbers) > body["ingest_seq"]  # nothing published twice


# -- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kafka", "setting", "on"),
    [(True, None, True), (False, None, False), (True, False, False), (False, True, True)],
)
def test_ingest_settings_when_resume_unset_resumes_over_kafka_only(
    kafka: bool, setting: bool | None, on: bool
) -> None:
    settings = IngestSettings(file=(f.SAMPLE,), limit=10, resume=setting)
    bus = _bus_of([f.SAMPLE], 10)

    source = build(_ctx(bus, kafka=kafka), settings)
    assert isinstance(source, FileReplaySource) and isinstance(source, Starts)
    source.on_start(_ctx(bus, kafka=kafka))

    assert len(list(source)) == (0 if on else 10)


def test_ingest_settings_when_resume_set_in_the_environment_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TICKPIPE_INGEST_RESUME", "false")
    assert IngestSettings().resume is False
    monkeypatch.delenv("TICKPIPE_INGEST_RESUME")
    assert IngestSettings().resume is None


# -- exchange streams --------------------------------------------------------------------------


def _point(*trades: TradeTick) -> ResumePoint:
    bus = MemoryBus()
    producer = bus.producer("ingest")
    for t in trades:
        producer.send(encode_emit(Emit(TRADES, t), ()))
    return ResumePoint.read(bus, "test")


def _exchange_trade(trade_id: str, ts: int = f.T0) -> TradeData:
    return TradeData("binance", "BTC/USDT", trade_id, 60_000.0, 0.1, "buy", ts)


def test_skip_seen_trades_when_ids_are_numbers_skips_at_or_below_the_last() -> None:
    skip = SkipSeenTrades(_point(f.trade(trade_id="100", ingest_seq=41)), "exchange:binance")

    kept = [t for t in ("98", "99", "100", "101", "102") if not skip.skip(_exchange_trade(t))]

    assert kept == ["101", "102"]
    assert skip.skipped == 3
    assert not skip.skip(TradeData("binance", "ETH/USDT", "5", 1.0, 1.0, "buy", f.T0))


def test_skip_seen_trades_when_ids_are_not_numbers_skips_by_exchange_time() -> None:
    skip = SkipSeenTrades(_point(f.trade(trade_id="b-7", ts_event=f.T0)), "exchange:kraken")

    assert skip.skip(_exchange_trade("a-1", f.T0 - 1))
    assert skip.skip(_exchange_trade("b-7", f.T0))
    assert not skip.skip(_exchange_trade("c-2", f.T0))  # same time, another trade
    assert not skip.skip(_exchange_trade("d-9", f.T0 + 1))


class _RestartedFeed:
    """Stands in for the ccxt feed thread: a REST poll after a restart returns the recent
    trades again, then new ones."""

    trades: ClassVar[list[TradeData]] = []

    def __init__(self, config: Any, factory: Any, handoff: queue.Queue[object], *_: Any) -> None:
        self._handoff = handoff
        self._stopped = threading.Event()

    def run(self) -> None:
        for t in self.trades:
            self._handoff.put(t)
        self._stopped.wait(5)

    def stop(self) -> None:
        self._stopped.set()


def _resumed_exchange_source(limit: int) -> ExchangeSource:
    """A live Binance BTC/USDT source that resumes from the trades topic's tail."""
    clock = SimClock(f.T0 + 10**9)
    quality = QualityReporter("exchange:binance")
    normalize = Normalizer(
        clock,
        EventIds(clock, seed=3),
        "exchange:binance",
        Validator(quality=quality),
        live=True,
        quality=quality,
    )
    config = ExchangeConfig("binance", ("BTC/USDT",))
    return ExchangeSource(config, normalize, clock, quality, limit=limit, resume=True)


def test_exchange_source_when_resumed_publishes_only_new_trades_numbered_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _RestartedFeed.trades = [_exchange_trade(str(n), f.T0 + n) for n in range(95, 106)]
    monkeypatch.setattr(exchange_module, "Feed", _RestartedFeed)
    bus = MemoryBus()
    bus.producer("ingest").send(
        encode_emit(Emit(TRADES, f.trade(trade_id="100", ingest_seq=41)), ())
    )
    bus.producer("ingest").send(encode_emit(Emit(QUOTES, f.quote(ingest_seq=42)), ()))
    ctx = _ctx(bus, kafka=True)
    source = _resumed_exchange_source(limit=5)
    source.on_start(ctx)

    emits = list(source)

    trades = [e.event for e in emits if isinstance(e.event, TradeTick)]
    assert [t.trade_id for t in trades] == ["101", "102", "103", "104", "105"]
    assert [t.ingest_seq for t in trades] == [43, 44, 45, 46, 47]
    assert source.skip is not None and source.skip.skipped == 6
    assert not [e for e in emits if e.topic == QUALITY]  # 101 follows 100: no gap


def test_exchange_source_when_trades_were_missed_while_down_reports_the_gap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _RestartedFeed.trades = [_exchange_trade(str(n), f.T0 + n) for n in (120, 121)]
    monkeypatch.setattr(exchange_module, "Feed", _RestartedFeed)
    bus = MemoryBus()
    bus.producer("ingest").send(
        encode_emit(Emit(TRADES, f.trade(trade_id="100", ingest_seq=41)), ())
    )
    source = _resumed_exchange_source(limit=2)
    source.on_start(_ctx(bus, kafka=True))

    emits = list(source)

    gaps = [e.event for e in emits if isinstance(e.event, DataQuality)]
    assert gaps and (gaps[0].issue, gaps[0].expected, gaps[0].received) == (
        QualityIssue.GAP,
        101,
        120,
    )


def test_memory_bus_tail_when_asked_returns_the_last_records_per_partition() -> None:
    bus = MemoryBus()
    producer = bus.producer("x")
    keys = [f"binance:S{n}/USDT" for n in range(12)]
    for i in range(60):
        key = keys[i % len(keys)]
        producer.send(
            encode_emit(Emit(TRADES, f.trade(symbol=key.split(":")[1], trade_id=str(i))), ())
        )

    tail = bus.tail([TRADES, QUOTES], count=2, client_id="t")

    by_partition: dict[int, list[Record]] = {}
    for r in tail:
        by_partition.setdefault(r.partition, []).append(r)
    all_by_partition: dict[int, list[Record]] = {}
    for r in bus.records(TRADES):
        all_by_partition.setdefault(r.partition, []).append(r)
    assert by_partition == {p: rs[-2:] for p, rs in all_by_partition.items()}
    assert len(by_partition) > 1
    assert bus.tail([QUOTES], count=5, client_id="t") == []
