"""Delivery against the real broker: a batch whose outputs were not delivered never has its
input offsets committed (plain and transactional links), close after a failure commits
nothing, history reads to the end, and SIGTERM ends a service whatever the broker does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tickpipe.bus.admin import create_topics, delete_topics
from tickpipe.bus.base import BusError, OutRecord
from tickpipe.bus.history import read_history
from tickpipe.bus.kafka import KafkaBus, KafkaLink
from tickpipe.topics import CONTROL, FEATURES, SIGNALS, TopicNames

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

KEY = b"binance:BTC/USDT"
TOO_LARGE = b"x" * (2 * 1024 * 1024)  # over the broker's and the producer's 1 MiB limit


@pytest.fixture
def names(kafka_bootstrap: str) -> Iterator[TopicNames]:
    names = TopicNames(f"delivery-{uuid.uuid4().hex[:10]}")
    create_topics(kafka_bootstrap, names)
    yield names
    delete_topics(kafka_bootstrap, names)


def _publish(bus: KafkaBus, topic: str, n: int) -> None:
    producer = bus.producer("test")
    for i in range(n):
        producer.send(OutRecord(topic, KEY, f"in-{i}".encode()))
    producer.flush()
    producer.close()


def _link(bus: KafkaBus, group: str, transactional: bool) -> KafkaLink:
    return bus.link(
        group=group,
        topics=[FEATURES],
        client_id=f"{group}-{uuid.uuid4().hex[:4]}",
        transactional_id=f"{group}-tx" if transactional else None,
    )


def _poll_all(link: KafkaLink, want: int, timeout_s: float = 30.0) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        records = link.poll(100, 0.5)
        got += [r.value for r in records]
        if records and len(got) < want:
            link.complete(())  # an ordinary batch in between: may defer its commit
    return got


@pytest.mark.parametrize("transactional", [False, True], ids=["plain", "transactional"])
def test_link_when_outputs_fail_mid_batch_commits_nothing_and_redelivers_the_batch(
    kafka_bootstrap: str, names: TopicNames, transactional: bool
) -> None:
    bus = KafkaBus(kafka_bootstrap, names)
    group = f"{names.physical('g')}-{transactional}"
    _publish(bus, FEATURES, 5)
    link = _link(bus, group, transactional)
    got = _poll_all(link, 5)
    assert len(got) == 5

    with pytest.raises(BusError):
        link.complete([OutRecord(SIGNALS, KEY, b"ok"), OutRecord(SIGNALS, KEY, TOO_LARGE)])
    assert not link.ready()  # a failed link says so to /readyz
    link.close()  # after a failure: nothing committed, an open transaction aborted

    again = _link(bus, group, transactional)
    try:
        assert _poll_all(again, 5) == got  # the whole batch again: nothing was lost
    finally:
        again.close()
    reader = bus.reader([SIGNALS], from_ms=0, client_id="check")
    try:
        published = [r.value for r in reader.poll(100, 2.0)]
    finally:
        reader.close()
    if transactional:
        assert published == []  # the aborted transaction's first output is invisible
    else:
        assert TOO_LARGE not in published  # at most the good output, delivered once more


def test_link_when_closed_with_a_batch_polled_but_not_completed_commits_nothing(
    kafka_bootstrap: str, names: TopicNames
) -> None:
    bus = KafkaBus(kafka_bootstrap, names)
    group = names.physical("in-flight")
    _publish(bus, FEATURES, 3)
    link = _link(bus, group, transactional=True)
    first = _poll_all(link, 3)
    link.close()  # e.g. the handler raised: its outputs never left

    again = _link(bus, group, transactional=True)
    try:
        assert _poll_all(again, 3) == first
    finally:
        again.close()


def test_history_when_read_returns_every_committed_record_to_the_end(
    kafka_bootstrap: str, names: TopicNames
) -> None:
    bus = KafkaBus(kafka_bootstrap, names)
    _publish(bus, CONTROL, 7)
    started = time.monotonic()

    values = [r.value for r in read_history(bus, [CONTROL], "history-test")]

    assert values == [f"in-{i}".encode() for i in range(7)]
    assert time.monotonic() - started < 15


def test_sigterm_when_broker_unreachable_during_init_transactions_ends_risk_quickly(
    free_port_factory: Callable[[], int], tmp_path: Path
) -> None:
    dead = free_port_factory()  # nothing listens there: init_transactions keeps retrying
    env = {
        "TICKPIPE_BUS": "kafka",
        "TICKPIPE_KAFKA_BOOTSTRAP": f"127.0.0.1:{dead}",
        "TICKPIPE_HTTP_PORT": str(free_port_factory()),
        "TICKPIPE_REDIS_URL": "",
    }
    log = tmp_path / "risk.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tickpipe.cli", "run", "risk"],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    try:
        time.sleep(6)  # well into init_transactions (imports take ~2-3 s)
        assert proc.poll() is None, log.read_text()
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert took < 10, f"SIGTERM took {took:.1f} s"
    assert proc.returncode == 0, log.read_text()
    assert "init_transactions" in log.read_text()  # it was stopped there, not elsewhere
