"""Ingest benchmark: messages/s from a source into Kafka (replay and generator), median of 3.

Each run builds the ingest source exactly as `tickpipe run ingest` does (settings -> source ->
SourceRunner -> producer) in this process, publishes everything at maximum speed and flushes;
the time covers reading and parsing, validation, event building, encoding and the broker's
acknowledgement of every record. The "no broker" rows replace the producer by one that drops
records, to show what the Python side costs on its own. The first Kafka run of each scenario
checks the broker's offsets against the published count.

Starts a local Kafka (tickpipe.infra) unless TICKPIPE_KAFKA_BOOTSTRAP is set.

    .venv/bin/python bench/ingest.py [--runs 3] [--loops 2] [--generator 100000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from rich.console import Console
from rich.table import Table

from tickpipe.bus.admin import create_topics
from tickpipe.bus.base import OutRecord, Producer
from tickpipe.bus.kafka import KafkaBus
from tickpipe.bus.memory import MemoryBus
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import LiveClock
from tickpipe.ids import EventIds
from tickpipe.runner import SourceRunner
from tickpipe.service import ServiceContext
from tickpipe.settings import PlatformSettings
from tickpipe.telemetry.tracing import make_tracer
from tickpipe.topics import DLQ, QUOTES, TRADES, TopicNames
from tickpipe_ingest.app import IngestSettings, build

SAMPLE = Path("data/sample/binance-spot-btcusdt-20240808.gz")


class NullProducer:
    """Drops records: the Python side of ingest without a broker."""

    def send(self, record: OutRecord) -> None:
        pass

    def flush(self, timeout_s: float = 30.0) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class Scenario:
    name: str
    settings: IngestSettings
    rates: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    records: int = 0
    dead_letters: int = 0
    verified: str = "—"


def _run_once(scenario: Scenario, producer: Producer) -> int:
    clock = LiveClock()
    # The bus in the context is unused by a source: the producer passed in is the one timed.
    ctx = ServiceContext(
        PlatformSettings(), MemoryBus(), MemoryCache(clock), clock, EventIds(clock)
    )
    started = time.perf_counter()
    source = build(ctx, scenario.settings)
    runner = SourceRunner(
        service="ingest", source=source, producer=producer, tracer=make_tracer("ingest")
    )
    published = runner.run()
    elapsed = time.perf_counter() - started
    scenario.seconds.append(elapsed)
    scenario.rates.append(published / elapsed)
    scenario.records = published
    counts = getattr(getattr(source, "_normalize", None), "counts", {})
    scenario.dead_letters = counts.get("dead_letters", 0)
    return published


def _on_broker(bootstrap: str, names: TopicNames) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}"})
    total = 0
    try:
        for topic in (TRADES, QUOTES, DLQ):
            physical = names.physical(topic)
            meta = consumer.list_topics(physical, timeout=10).topics[physical]
            for p in meta.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(physical, p), timeout=10)
                total += high - low
    finally:
        consumer.close()
    return total


def run(scenario: Scenario, runs: int, bootstrap: str | None) -> Scenario:
    for i in range(runs):
        if bootstrap is None:
            _run_once(scenario, NullProducer())
            continue
        names = TopicNames(f"benchingest{uuid.uuid4().hex[:8]}")
        create_topics(bootstrap, names)
        bus = KafkaBus(bootstrap, names)
        producer = bus.producer("ingest-bench")
        try:
            published = _run_once(scenario, producer)
        finally:
            producer.close()
        if i == 0:
            on_broker = _on_broker(bootstrap, names)
            scenario.verified = "yes" if on_broker == published else f"NO ({on_broker})"
    return scenario


def _with_broker(fn: Callable[[str | None], None]) -> None:
    bootstrap = os.environ.get("TICKPIPE_KAFKA_BOOTSTRAP")
    state = None
    if not bootstrap:
        from tickpipe.infra.manager import down, up

        state = Path(tempfile.mkdtemp(prefix="tickpipe-bench-ingest-"))
        bootstrap = up(state, kafka_port=0, controller_port=0, redis_port=0).kafka_bootstrap
    try:
        fn(bootstrap)
    finally:
        if state is not None:
            down(state, purge=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--loops", type=int, default=2, help="replays of the sample capture per run")
    ap.add_argument("--generator", type=int, default=100_000, help="generated records per run")
    ap.add_argument("--symbols", type=int, default=50, help="generator symbols")
    args = ap.parse_args()

    def replay() -> IngestSettings:
        return IngestSettings(file=(SAMPLE,), loops=args.loops)

    def generator() -> IngestSettings:
        return IngestSettings(
            source="generator", limit=args.generator, symbol_count=args.symbols, seed=1
        )

    done: list[tuple[str, Scenario]] = []

    def with_kafka(bootstrap: str | None) -> None:
        done.append(
            ("Kafka", run(Scenario("replay (Binance capture)", replay()), args.runs, bootstrap))
        )
        done.append(("Kafka", run(Scenario("generator", generator()), args.runs, bootstrap)))

    _with_broker(with_kafka)
    done.append(("no broker", run(Scenario("replay (Binance capture)", replay()), args.runs, None)))
    done.append(("no broker", run(Scenario("generator", generator()), args.runs, None)))

    table = Table(
        title=f"tickpipe ingest throughput — median of {args.runs} runs, {os.cpu_count()} cores"
    )
    for col in (
        "source",
        "into",
        "records",
        "dead letters",
        "median s",
        "msgs/s (median)",
        "min–max msgs/s",
        "on broker",
    ):
        table.add_column(col, justify="left" if col in ("source", "into") else "right")
    for into, s in done:
        table.add_row(
            s.name,
            into,
            f"{s.records:,}",
            f"{s.dead_letters:,}",
            f"{statistics.median(s.seconds):.2f}",
            f"{statistics.median(s.rates):,.0f}",
            f"{min(s.rates):,.0f}–{max(s.rates):,.0f}",
            s.verified,
        )
    Console(width=160).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
