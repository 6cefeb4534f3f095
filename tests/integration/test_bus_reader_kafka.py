"""The Kafka bus's group-less reader against a real broker: where it starts, that it follows
live records, and that it refuses a topic it cannot find instead of reading nothing."""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Iterator

import pytest

from tickpipe.bus.admin import create_topics, delete_topics
from tickpipe.bus.base import BusError, OutRecord, Reader, Record
from tickpipe.bus.kafka import KafkaBus
from tickpipe.topics import SIGNALS, TopicNames

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

KEYS = [f"binance:S{i}/USDT".encode() for i in range(12)]  # spread over the partitions


@pytest.fixture
def names(kafka_bootstrap: str) -> Iterator[TopicNames]:
    names = TopicNames(f"reader-{uuid.uuid4().hex[:10]}")
    create_topics(kafka_bootstrap, names)
    yield names
    delete_topics(kafka_bootstrap, names)


def _publish(bus: KafkaBus, tag: str) -> list[bytes]:
    producer = bus.producer("test")
    values = [f"{tag}:{i}".encode() for i in range(len(KEYS))]
    for key, value in zip(KEYS, values, strict=True):
        producer.send(OutRecord(SIGNALS, key, value))
    producer.flush()
    producer.close()
    return values


def _read(reader: Reader, want: int, timeout_s: float = 20.0) -> list[Record]:
    out: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < want and time.monotonic() < deadline:
        out += reader.poll(100, 0.2)
    out += reader.poll(100, 0.5)  # nothing more than wanted
    return out


def test_kafka_reader_when_from_time_given_starts_after_it_then_follows_live(
    kafka_bootstrap: str, names: TopicNames
) -> None:
    bus = KafkaBus(kafka_bootstrap, names)
    _publish(bus, "before")
    time.sleep(0.05)
    from_ms = int(time.time() * 1000)
    time.sleep(0.05)
    after = _publish(bus, "after")

    reader = bus.reader([SIGNALS], from_ms=from_ms, client_id="reader-test")
    try:
        backfill = _read(reader, len(after))
        live = _publish(bus, "live")
        followed = _read(reader, len(live))
    finally:
        reader.close()
        del reader
        gc.collect()  # frees the librdkafka handle now, not after the broker has stopped

    assert sorted(r.value for r in backfill) == sorted(after)
    assert len({r.partition for r in backfill}) > 1  # every partition was assigned
    assert {r.topic for r in backfill} == {SIGNALS}  # logical names, as the links give
    assert sorted(r.value for r in followed) == sorted(live)


def test_kafka_reader_when_no_time_given_starts_at_the_end(
    kafka_bootstrap: str, names: TopicNames
) -> None:
    bus = KafkaBus(kafka_bootstrap, names)
    _publish(bus, "old")

    reader = bus.reader([SIGNALS], from_ms=None, client_id="reader-test")
    try:
        _read(reader, 0, timeout_s=1.0)  # lets the assignment resolve "the end" first
        live = _publish(bus, "live")
        got = _read(reader, len(live))
    finally:
        reader.close()
        del reader
        gc.collect()

    assert sorted(r.value for r in got) == sorted(live)


def test_kafka_reader_when_topic_missing_then_bus_error(kafka_bootstrap: str) -> None:
    bus = KafkaBus(kafka_bootstrap, TopicNames(f"missing-{uuid.uuid4().hex[:10]}"))

    with pytest.raises(BusError, match="not found"):
        bus.reader([SIGNALS], from_ms=0, client_id="reader-test")
