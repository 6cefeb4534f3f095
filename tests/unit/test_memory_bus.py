"""The in-memory bus keeps the Kafka semantics the services rely on."""

from __future__ import annotations

from collections import defaultdict

import pytest

from tickpipe.bus.base import BusError, OutRecord, Reader, Record
from tickpipe.bus.memory import MemoryBus, MemoryLink, partition_for
from tickpipe.clock import SimClock
from tickpipe.topics import BY_NAME, QUOTES, TRADES

KEYS = [b"binance:BTC/USDT", b"binance:ETH/USDT", b"kraken:BTC/USD", b"coinbase:SOL/USD"]


def _produce(bus: MemoryBus, topic: str, n: int, keys: list[bytes] = KEYS) -> list[bytes]:
    values = []
    producer = bus.producer("test")
    for i in range(n):
        value = f"{topic}:{i}".encode()
        producer.send(OutRecord(topic, keys[i % len(keys)], value))
        values.append(value)
    return values


def _drain(link: MemoryLink, batch: int = 7, commit: bool = True) -> list[Record]:
    out: list[Record] = []
    while records := link.poll(batch):
        assert len(records) <= batch
        out.extend(records)
        if commit:
            link.complete(())
    return out


def test_partition_for_when_key_repeats_returns_same_partition() -> None:
    for key in KEYS:
        assert len({partition_for(key, 6, fallback) for fallback in range(10)}) == 1


def test_memory_bus_when_keyed_records_consumed_keeps_per_key_order() -> None:
    bus = MemoryBus()
    produced = _produce(bus, TRADES, 200)
    link = bus.link(group="g", topics=[TRADES], client_id="a")

    consumed = _drain(link)

    by_key_in: dict[bytes, list[bytes]] = defaultdict(list)
    for i, value in enumerate(produced):
        by_key_in[KEYS[i % len(KEYS)]].append(value)
    by_key_out: dict[bytes | None, list[bytes]] = defaultdict(list)
    partitions: dict[bytes | None, set[int]] = defaultdict(set)
    for r in consumed:
        by_key_out[r.key].append(r.value)
        partitions[r.key].add(r.partition)
    assert by_key_out == by_key_in
    assert all(len(p) == 1 for p in partitions.values())


def test_memory_bus_when_topic_is_known_uses_its_partition_count() -> None:
    bus = MemoryBus()
    _produce(bus, TRADES, 300, keys=[f"k{i}".encode() for i in range(50)])

    used = {r.partition for r in bus.records(TRADES)}

    assert used == set(range(BY_NAME[TRADES].partitions))


def test_memory_bus_when_group_commits_sees_each_record_once() -> None:
    bus = MemoryBus()
    produced = _produce(bus, TRADES, 100)
    link = bus.link(group="g", topics=[TRADES], client_id="a")

    first = _drain(link)
    more = _produce(bus, TRADES, 10)
    second = _drain(link)

    assert sorted(r.value for r in first) == sorted(produced)
    assert sorted(r.value for r in second) == sorted(more)
    assert link.poll(10) == []


def test_memory_bus_when_member_rejoins_resumes_from_committed_offsets() -> None:
    bus = MemoryBus()
    produced = _produce(bus, TRADES, 40)
    first = bus.link(group="g", topics=[TRADES], client_id="a")
    assert len(_drain(first)) == len(produced)
    first.close()
    more = _produce(bus, TRADES, 5)

    again = bus.link(group="g", topics=[TRADES], client_id="a")

    assert sorted(r.value for r in _drain(again)) == sorted(more)


def test_memory_bus_when_two_groups_subscribe_each_sees_all() -> None:
    bus = MemoryBus()
    produced = _produce(bus, TRADES, 60)
    a = bus.link(group="feature", topics=[TRADES], client_id="a")
    b = bus.link(group="recorder", topics=[TRADES], client_id="b")

    seen_a = [r.value for r in _drain(a)]
    seen_b = [r.value for r in _drain(b)]

    assert sorted(seen_a) == sorted(produced)
    assert sorted(seen_b) == sorted(produced)


def test_memory_bus_when_two_members_share_group_split_partitions_without_overlap() -> None:
    bus = MemoryBus()
    produced = _produce(bus, TRADES, 300, keys=[f"k{i}".encode() for i in range(40)])
    a = bus.link(group="g", topics=[TRADES], client_id="a")
    b = bus.link(group="g", topics=[TRADES], client_id="b")

    got_a = _drain(a)
    got_b = _drain(b)

    parts_a = {r.partition for r in got_a}
    parts_b = {r.partition for r in got_b}
    assert parts_a and parts_b
    assert parts_a.isdisjoint(parts_b)
    values_a = {r.value for r in got_a}
    values_b = {r.value for r in got_b}
    assert values_a.isdisjoint(values_b)
    assert sorted(values_a | values_b) == sorted(produced)
    assert len(got_a) + len(got_b) == len(produced)


def test_memory_bus_when_member_leaves_uncommitted_records_are_redelivered() -> None:
    bus = MemoryBus()
    produced = _produce(bus, TRADES, 120, keys=[f"k{i}".encode() for i in range(30)])
    a = bus.link(group="g", topics=[TRADES], client_id="a")
    b = bus.link(group="g", topics=[TRADES], client_id="b")
    got_b = _drain(b)
    polled_by_a = _drain(a, commit=False)  # processed but never completed
    assert polled_by_a

    a.close()
    got_b_after = _drain(b)

    assert {r.value for r in polled_by_a} <= {r.value for r in got_b_after}
    assert sorted(r.value for r in got_b + got_b_after) == sorted(produced)


def test_memory_bus_when_member_commits_before_leaving_nothing_is_redelivered() -> None:
    bus = MemoryBus()
    _produce(bus, TRADES, 120, keys=[f"k{i}".encode() for i in range(30)])
    a = bus.link(group="g", topics=[TRADES], client_id="a")
    b = bus.link(group="g", topics=[TRADES], client_id="b")
    _drain(a)
    _drain(b)

    a.close()

    assert b.poll(500) == []


def test_memory_link_when_completing_publishes_outputs() -> None:
    bus = MemoryBus()
    _produce(bus, TRADES, 3)
    link = bus.link(group="g", topics=[TRADES], client_id="a")
    link.poll(10)

    link.complete([OutRecord("out.v1", b"k", b"derived")])

    assert [r.value for r in bus.records("out.v1")] == [b"derived"]
    assert link.poll(10) == []


def test_memory_link_when_subscribed_to_two_topics_polls_in_global_append_order() -> None:
    bus = MemoryBus()
    producer = bus.producer("test")
    expected = []
    for i in range(90):
        topic = TRADES if i % 3 else QUOTES
        value = f"{topic}:{i}".encode()
        producer.send(OutRecord(topic, KEYS[i % len(KEYS)], value))
        expected.append(value)
    link = bus.link(group="g", topics=[TRADES, QUOTES], client_id="a")

    consumed = [r.value for r in _drain(link, batch=11)]

    assert consumed == expected


def test_memory_bus_when_listing_records_returns_append_order_across_partitions() -> None:
    bus = MemoryBus()
    produced = _produce(bus, TRADES, 50)

    assert [r.value for r in bus.records(TRADES)] == produced


def test_memory_link_when_behind_reports_lag_per_topic_until_consumed() -> None:
    bus = MemoryBus()
    _produce(bus, TRADES, 10)
    _produce(bus, QUOTES, 4)
    link = bus.link(group="lag", topics=[TRADES, QUOTES], client_id="m")
    assert link.lag() == {TRADES: 10, QUOTES: 4}
    got = link.poll(6)
    assert sum(link.lag().values()) == 14 - len(got)
    _drain(link)
    assert link.lag() == {TRADES: 0, QUOTES: 0}


# -- group-less readers ----------------------------------------------------------------------
MS = 1_000_000  # nanoseconds per millisecond


def _produce_at(bus: MemoryBus, clock: SimClock, topic: str, at_ms: int, n: int) -> None:
    clock.advance_to(at_ms * MS)
    _produce(bus, topic, n)


def _read_all(reader: Reader, batch: int = 7) -> list[Record]:
    out: list[Record] = []
    while records := reader.poll(batch, 0.0):
        assert len(records) <= batch
        out.extend(records)
    return out


def test_memory_bus_when_clock_given_stamps_records_with_its_time() -> None:
    clock = SimClock(1_500 * MS + 999)
    bus = MemoryBus(clock=clock)

    _produce(bus, TRADES, 2)

    assert {r.timestamp_ms for r in bus.records(TRADES)} == {1_500}
    assert {r.timestamp_ms for r in MemoryBus().records(TRADES)} <= {0}


def test_memory_reader_when_from_time_given_starts_every_partition_at_or_after_it() -> None:
    clock = SimClock()
    bus = MemoryBus(clock=clock)
    _produce_at(bus, clock, TRADES, 1_000, 40)
    _produce_at(bus, clock, TRADES, 2_000, 40)

    reader = bus.reader([TRADES], from_ms=2_000, client_id="r")
    got = _read_all(reader)

    later = bus.records(TRADES)[40:]
    assert [r.value for r in got] == [r.value for r in later]  # global append order
    assert {r.partition for r in got} == {r.partition for r in later}
    assert len({r.partition for r in got}) > 1
    assert all(r.timestamp_ms == 2_000 for r in got)


def test_memory_reader_when_from_time_between_stamps_starts_at_the_next_record() -> None:
    clock = SimClock()
    bus = MemoryBus(clock=clock)
    _produce_at(bus, clock, TRADES, 1_000, 8)
    _produce_at(bus, clock, TRADES, 3_000, 8)

    assert len(_read_all(bus.reader([TRADES], from_ms=1_001, client_id="r"))) == 8
    assert len(_read_all(bus.reader([TRADES], from_ms=0, client_id="r"))) == 16
    assert _read_all(bus.reader([TRADES], from_ms=3_001, client_id="r")) == []


def test_memory_reader_when_no_time_given_starts_at_the_end_then_follows() -> None:
    bus = MemoryBus()
    _produce(bus, TRADES, 30)
    reader = bus.reader([TRADES], from_ms=None, client_id="r")
    assert reader.poll(100, 0.0) == []

    live = _produce(bus, TRADES, 5)

    assert [r.value for r in _read_all(reader)] == live


def test_memory_reader_when_reading_two_topics_interleaves_them_in_append_order() -> None:
    bus = MemoryBus()
    reader = bus.reader([TRADES, QUOTES], from_ms=None, client_id="r")
    producer = bus.producer("test")
    expected = []
    for i in range(20):
        topic = QUOTES if i % 3 else TRADES
        expected.append((topic, f"{i}".encode()))
        producer.send(OutRecord(topic, KEYS[i % len(KEYS)], f"{i}".encode()))

    assert [(r.topic, r.value) for r in _read_all(reader, batch=6)] == expected


def test_memory_reader_when_reading_history_moves_no_group_offsets() -> None:
    bus = MemoryBus()
    _produce(bus, TRADES, 50)
    group = bus.link(group="g", topics=[TRADES], client_id="a")
    group.poll(20)
    group.complete(())
    group.close()

    # Named like the group, as a Kafka reader's (never joined) group id is.
    reader = bus.reader([TRADES], from_ms=0, client_id="g")
    assert len(_read_all(reader)) == 50
    reader.close()
    again = bus.link(group="g", topics=[TRADES], client_id="a")

    assert len(_drain(again)) == 30  # from the group's commit, untouched by the reader


def test_memory_reader_when_empty_waits_for_the_timeout_then_returns_nothing() -> None:
    reader = MemoryBus().reader([TRADES], from_ms=None, client_id="r")

    assert reader.poll(10, 0.01) == []


def test_memory_reader_when_closed_refuses_to_poll() -> None:
    reader = MemoryBus().reader([TRADES], from_ms=None, client_id="r")
    reader.close()
    reader.close()  # idempotent

    with pytest.raises(BusError, match="after close"):
        reader.poll(10, 0.0)
