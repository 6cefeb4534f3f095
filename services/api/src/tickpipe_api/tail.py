"""`tickpipe signals tail`: backfill `signals.v1` from a point in time, then follow it live.

Its own consumer assigns every partition explicitly (no group, no commits): a subscriber
that reads history must not move anyone's offsets. Order holds per `exchange:symbol`
(one partition per key); across symbols records interleave as they come.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

# An adapter at the edge: explicit assignment and offsets_for_times need the raw client.
from confluent_kafka import Consumer, KafkaError, TopicPartition  # noqa: TID251

from tickpipe.messages import Signal
from tickpipe.topics import SIGNALS, TopicNames

LATEST = -1  # librdkafka's OFFSET_END


def parse_time(text: str) -> int:
    """ISO-8601 (naive means UTC) or epoch milliseconds -> epoch milliseconds."""
    if text.isdigit():
        return int(text)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def start_offsets(consumer: Consumer, topic: str, from_ms: int | None) -> list[TopicPartition]:
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = metadata.topics[topic].partitions
    if not partitions:
        raise SystemExit(f"topic {topic} not found")
    if from_ms is None:
        return [TopicPartition(topic, p, LATEST) for p in partitions]
    wanted = [TopicPartition(topic, p, from_ms) for p in partitions]
    found = consumer.offsets_for_times(wanted, timeout=10)
    failed = [f"{tp.partition}: {tp.error}" for tp in found if tp.error is not None]
    if failed:
        # An offset of -1 with an error would silently skip the backfill: refuse instead.
        raise RuntimeError(f"offsets_for_times failed for {topic}: {'; '.join(failed)}")
    # Past the newest record, offsets_for_times answers -1 (no error): the end, as wanted.
    return list(found)


def signals(
    bootstrap: str,
    names: TopicNames,
    from_ms: int | None,
    stop: threading.Event,
    symbol: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Iterator[Signal]:
    """Signals from `from_ms` (or from now), in per-symbol order, until `stop` is set."""
    topic = names.physical(SIGNALS)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "tickpipe-signals-tail",  # required by librdkafka; nothing is committed
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 50,
            **(overrides or {}),
        }
    )
    try:
        consumer.assign(start_offsets(consumer, topic, from_ms))
        while not stop.is_set():
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(str(err))
            signal = Signal.model_validate_json(msg.value() or b"")
            if symbol is None or signal.key == symbol:
                yield signal
    finally:
        consumer.close()


def render(signal: Signal, as_json: bool) -> str:
    if as_json:
        return orjson.dumps(signal.model_dump(mode="json")).decode()
    when = datetime.fromtimestamp(signal.ts_event / 1e9, tz=UTC).isoformat()
    arrow = {1: "long ", 0: "flat ", -1: "short"}[signal.direction]
    return (
        f"{when}  {signal.key:<22} {arrow} p={signal.probability:.4f} "
        f"price={signal.price:g} {signal.strategy_id}/{signal.model_version}"
    )


def tail(source: Iterator[Signal], as_json: bool, out: TextIO = sys.stdout) -> int:
    n = 0
    for signal in source:
        out.write(render(signal, as_json) + "\n")
        out.flush()
        n += 1
    return n
