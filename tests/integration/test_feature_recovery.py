"""kill -9 of the feature service mid-stream, against real Kafka and Redis: after the restart
(state from the Redis snapshot, then a replay of what came after it, its outputs suppressed)
features.v1 holds exactly the vectors of an uninterrupted run — none twice, none lost, same
values."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.integration.recovery import (
    collect,
    kill_with_replay_pending,
    replayed,
    service_env,
    wait_consumed,
    wait_snapshot,
)
from tickpipe.bus.admin import create_topics
from tickpipe.bus.kafka import KafkaBus
from tickpipe.bus.memory import MemoryBus
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import LiveClock
from tickpipe.ids import EventIds
from tickpipe.marketdata import QuoteData, TradeData, read_binance_capture
from tickpipe.messages import FeatureVector, QuoteTick, TradeTick
from tickpipe.processes import ServiceProcesses
from tickpipe.runner import encode_emit
from tickpipe.service import Emit, Rejected, ServiceContext
from tickpipe.settings import PlatformSettings
from tickpipe.topics import FEATURES, QUOTES, TRADES, TopicNames
from tickpipe_feature.app import SERVICE as FEATURE
from tickpipe_feature.app import build as build_feature

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

CAPTURE = (
    Path(__file__).resolve().parents[2] / "data" / "sample" / "binance-spot-btcusdt-20240808.gz"
)
QUOTES_TOTAL = 10
# ~217 s of trades: ~217 one-second bars, the first ~35 warming the feature set up.
TRADES_TOTAL = 4000
CHUNK = 40  # trades per flush while streaming

# What a vector is, run-independent: its bar, close and values (not event_id/ts_init/causation).
Vector = tuple[int, float, dict[str, float]]


def _inputs() -> tuple[list[QuoteTick], list[TradeTick]]:
    """The capture's first quotes and trades as the ingest service would publish them."""
    clock = LiveClock()
    ids = EventIds(clock, seed=11)
    quotes: list[QuoteTick] = []
    trades: list[TradeTick] = []
    for item in read_binance_capture(CAPTURE):
        now = clock.now_ns()
        if isinstance(item, QuoteData) and len(quotes) < QUOTES_TOTAL:
            quotes.append(
                QuoteTick(
                    event_id=ids.new(),
                    ts_event=item.ts_event,
                    ts_init=now,
                    exchange=item.exchange,
                    symbol=item.symbol,
                    bid=item.bid,
                    bid_size=item.bid_size,
                    ask=item.ask,
                    ask_size=item.ask_size,
                )
            )
        elif isinstance(item, TradeData):
            trades.append(
                TradeTick(
                    event_id=ids.new(),
                    ts_event=item.ts_event,
                    ts_init=now,
                    exchange=item.exchange,
                    symbol=item.symbol,
                    trade_id=item.trade_id,
                    price=item.price,
                    size=item.size,
                    side="buy" if item.side == "buy" else "sell",
                )
            )
            if len(trades) == TRADES_TOTAL:
                break
    assert len(quotes) == QUOTES_TOTAL and len(trades) == TRADES_TOTAL
    return quotes, trades


def _expected(quotes: list[QuoteTick], trades: list[TradeTick]) -> list[Vector]:
    """An uninterrupted run, in-process: the same quotes first, then the same trades."""
    clock = LiveClock()
    handler = build_feature(
        ServiceContext(
            PlatformSettings(),
            MemoryBus(),
            MemoryCache(),
            clock,
            EventIds(clock),
        ),
        FEATURE.settings_from_env(),  # as the process
    )
    for q in quotes:
        handler.handle(q, QUOTES, clock.now_ns())
    out: list[Vector] = []
    for t in trades:
        try:
            emits = handler.handle(t, TRADES, clock.now_ns())
        except Rejected:
            continue  # a late trade: dead-lettered by the real runner, no vector either way
        for e in emits:
            if e.topic == FEATURES:
                assert isinstance(e.event, FeatureVector)
                out.append((e.event.bar_start, e.event.close, dict(e.event.values)))
    return out


def _vector(o: dict[str, Any]) -> Vector:
    return (o["bar_start"], o["close"], o["values"])


def _stream(producer: Any, trades: list[TradeTick], pause_s: float) -> None:
    """Publish gradually, a chunk at a time, so the service works while more arrives."""
    for i in range(0, len(trades), CHUNK):
        for t in trades[i : i + CHUNK]:
            producer.send(encode_emit(Emit(TRADES, t), ()))
        producer.flush()
        time.sleep(pause_s)


def test_feature_when_killed_mid_stream_then_vectors_are_exactly_those_of_an_uninterrupted_run(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    namespace = f"fk{uuid.uuid4().hex[:8]}"
    names = TopicNames(namespace)
    create_topics(kafka_bootstrap, names)
    quotes, trades = _inputs()
    expected = _expected(quotes, trades)
    assert len(expected) > 50  # the scenario gets well past warm-up
    assert len({v[0] for v in expected}) == len(expected)  # one vector per bar

    producer = KafkaBus(kafka_bootstrap, names).producer("test")
    for q in quotes:
        producer.send(encode_emit(Emit(QUOTES, q), ()))
    producer.flush()
    env = service_env(kafka_bootstrap, redis_url, namespace)
    procs = ServiceProcesses(env, tmp_path / "logs", base_port=None)
    cache = redis.Redis.from_url(redis_url)
    try:
        procs.start("feature")
        procs.wait_ready(["feature"])
        wait_consumed(procs, "feature", QUOTES, len(quotes))  # quotes land before any trade
        half = TRADES_TOTAL // 2
        _stream(producer, trades[:half], pause_s=0.02)
        wait_snapshot(procs, cache, namespace, "feature")
        # Keep the stream moving while it dies, killed where records came after its snapshot.
        moving = threading.Thread(target=_stream, args=(producer, trades[half : half + 800], 0.02))
        moving.start()
        try:
            wait_consumed(procs, "feature", TRADES, half + CHUNK)
            pending = kill_with_replay_pending(
                procs, "feature", cache, kafka_bootstrap, names, namespace
            )
        finally:
            moving.join(60)
        for t in trades[half + 800 :]:
            producer.send(encode_emit(Emit(TRADES, t), ()))
        producer.flush()
        procs.start("feature")
        got = collect(kafka_bootstrap, names, FEATURES, b"features", _vector, len(expected))
        restarted_log = procs.log("feature")  # the restarted process's log
        replays = replayed(procs, "feature")
    finally:
        procs.stop()
        producer.close()
        cache.close()

    bars = [v[0] for v in got]
    assert len(bars) == len(set(bars)), "a bar's vector was produced twice"
    assert len(got) == len(expected), f"{len(got)} vectors, expected {len(expected)}"
    assert got == expected
    # The restarted instance rebuilt its state from the snapshot plus a replay of the records
    # after it, whose vectors (already on features.v1) it did not publish again.
    assert '"msg":"state restored"' in restarted_log
    assert replays >= pending > 0, f"{replays} records replayed, {pending} committed after"
