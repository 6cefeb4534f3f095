"""Subscribing over the real broker: the confluent-kafka and Faust examples (with the
published JSON Schema), `tickpipe signals tail` (backfill from a time, then live), the API's
control publisher (key = target) and its read_committed fills consumer."""

from __future__ import annotations

import importlib.util
import os
import re
import signal as signals
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from confluent_kafka import Consumer, Message, Producer

from tests.api.conftest import KEY, token
from tests.api.factories import report, signal
from tests.api.testclient import TestClient
from tests.polling import wait_until
from tickpipe.bus.admin import create_topics, delete_topics
from tickpipe.bus.base import OutRecord
from tickpipe.bus.kafka import KafkaBus
from tickpipe.cache.redis import RedisCache
from tickpipe.messages import ControlAction, ControlCommand, OrderStatus, Signal, decode
from tickpipe.runner import EVENT_TYPE, encode_emit
from tickpipe.service import Emit
from tickpipe.settings import PlatformSettings
from tickpipe.topics import CONTROL, EXECUTIONS, SIGNALS, TopicNames
from tickpipe_api.app import production_app
from tickpipe_api.consumer import CONSUMER_OVERRIDES, TOPICS, FeedConsumer
from tickpipe_api.control import BusControlPublisher
from tickpipe_api.live import LiveFeed
from tickpipe_api.settings import ApiSettings
from tickpipe_api.tail import signals as tail_signals

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE = EXAMPLES / "signals_confluent.py"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("signals_confluent", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def names(kafka_bootstrap: str) -> Iterator[TopicNames]:
    names = TopicNames(f"api-{uuid.uuid4().hex[:10]}")
    create_topics(kafka_bootstrap, names)
    yield names
    delete_topics(kafka_bootstrap, names)


def _publish(bootstrap: str, names: TopicNames, records: list[OutRecord]) -> None:
    producer = KafkaBus(bootstrap, names).producer("test")
    for r in records:
        producer.send(r)
    producer.flush()
    producer.close()


def _signal_record(s: Signal) -> OutRecord:
    return encode_emit(Emit(SIGNALS, s), ())


def _wait(predicate: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.fixture
def background() -> Iterator[Callable[[Callable[[threading.Event], None]], None]]:
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(target: Callable[[threading.Event], None]) -> None:
        t = threading.Thread(target=target, args=(stop,), daemon=True)
        t.start()
        threads.append(t)

    yield start
    stop.set()
    for t in threads:
        t.join(timeout=10)


def test_confluent_example_when_signals_published_validates_and_delivers_in_order(
    kafka_bootstrap: str, names: TopicNames, background: Any
) -> None:
    example = _example()
    sent = [signal(probability=p) for p in (0.6, 0.2, 0.8)]
    bad = OutRecord(SIGNALS, b"binance:BTC/USDT", b'{"type": "signal", "probability": 7}')
    _publish(kafka_bootstrap, names, [_signal_record(sent[0]), bad, *map(_signal_record, sent[1:])])
    got: list[dict[str, Any]] = []
    invalid: list[str] = []
    background(
        lambda stop: example.consume(
            kafka_bootstrap,
            f"{uuid.uuid4().hex}.example",
            got.append,
            stop,
            topic=names.physical(SIGNALS),
            on_invalid=lambda msg, why: invalid.append(why),
        )
    )
    _wait(lambda: len(got) == 3 and len(invalid) == 1)
    assert [g["event_id"] for g in got] == [s.event_id for s in sent]  # one key: one order
    assert "probability" in invalid[0]


@pytest.fixture
def faust_worker(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Starts `faust -A signals_faust worker` on a topic; yields the path of its output."""
    procs: list[subprocess.Popen[bytes]] = []
    # `python -m faust` as a user runs `faust`, from examples/ so that `-A` finds the module.
    command = [sys.executable, "-m", "faust", "-A", "signals_faust", "worker", "--without-web"]

    def start(topic: str) -> Path:
        log = tmp_path / "faust.log"
        env = {
            **os.environ,
            "BROKER_URL": f"kafka://{kafka_bootstrap}",
            "APP_DATADIR": str(tmp_path / "faust-data"),
            "SIGNALS_TOPIC": topic,
            "SIGNALS_GROUP": f"{uuid.uuid4().hex}.faust",
        }
        with log.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [*command, "-l", "info"],
                    cwd=EXAMPLES,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
        return log

    yield start
    for proc in procs:
        proc.send_signal(signals.SIGTERM)  # Faust leaves its group and stops cleanly on TERM
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_faust_example_when_signals_published_validates_and_delivers_in_order(
    kafka_bootstrap: str, names: TopicNames, faust_worker: Callable[[str], Path]
) -> None:
    # Faust reaches Kafka only through aiokafka: this is the check that the locked pair still
    # joins a group and fetches from our Kafka 4 broker (KIP-896 removed old request versions).
    sent = [signal(probability=p) for p in (0.6, 0.2, 0.8)]
    bad = OutRecord(SIGNALS, b"binance:BTC/USDT", b'{"type": "signal", "probability": 7}')
    _publish(kafka_bootstrap, names, [_signal_record(sent[0]), bad, *map(_signal_record, sent[1:])])
    log = faust_worker(names.physical(SIGNALS))

    def output() -> str:
        return log.read_text(errors="replace")

    def done() -> bool:
        text = output()
        return len(re.findall(r"\bsignal binance:BTC/USDT ", text)) == 3 and "skipped" in text

    try:
        _wait(done, timeout_s=45)
    except AssertionError:
        raise AssertionError(f"Faust worker output:\n{output()[-4000:]}") from None
    text = output()
    got = re.findall(r"\bsignal binance:BTC/USDT (\S+) direction=", text)
    assert got == [s.event_id for s in sent]  # one key: one partition, one order
    [skipped] = re.findall(r"skipped \S+\.signals\.v1\[\d\]@\d+: (.*)", text)
    assert "/probability: 7 is greater than the maximum of 1.0" in skipped
    assert "Traceback" not in text


def test_tail_when_from_time_given_backfills_after_it_then_follows_live(
    kafka_bootstrap: str, names: TopicNames, background: Any
) -> None:
    before = [signal(probability=0.3) for _ in range(2)]
    _publish(kafka_bootstrap, names, [_signal_record(s) for s in before])
    time.sleep(0.05)
    from_ms = int(time.time() * 1000)
    time.sleep(0.05)
    after = [signal(probability=0.7), signal(symbol="ETH/USDT", probability=0.9)]
    _publish(kafka_bootstrap, names, [_signal_record(s) for s in after])
    got: list[Signal] = []

    def run(stop: threading.Event) -> None:
        bus = KafkaBus(kafka_bootstrap, names)
        for s in tail_signals(bus, from_ms, stop, symbol="binance:BTC/USDT"):
            got.append(s)

    background(run)
    _wait(lambda: len(got) == 1)
    live = signal(probability=0.1)
    _publish(kafka_bootstrap, names, [_signal_record(live)])
    _wait(lambda: len(got) == 2)
    assert [s.event_id for s in got] == [after[0].event_id, live.event_id]


def _read_one(kafka_bootstrap: str, topic: str) -> Message:
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    try:
        msg = None
        deadline = time.monotonic() + 20
        while msg is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
        assert msg is not None and msg.error() is None
        return msg
    finally:
        consumer.close()


def test_control_publisher_when_publishing_to_kafka_keys_by_family_and_target(
    kafka_bootstrap: str, names: TopicNames
) -> None:
    command = ControlCommand(
        event_id=str(uuid.uuid4()),
        ts_event=1,
        ts_init=1,
        action=ControlAction.PAUSE_SYMBOL,
        target="binance:BTC/USDT",
        issued_by="alice",
    )
    publisher = BusControlPublisher(KafkaBus(kafka_bootstrap, names).producer("api"))
    publisher.publish(command)
    publisher.close()
    msg = _read_one(kafka_bootstrap, names.physical(CONTROL))
    assert msg.key() == b"trading:binance:BTC/USDT"
    header = dict(msg.headers() or [])[EVENT_TYPE]
    assert isinstance(header, bytes)
    assert decode(msg.value() or b"", header.decode()) == command


def test_feed_consumer_when_transaction_aborted_shows_only_committed_fills(
    kafka_bootstrap: str, names: TopicNames
) -> None:
    feed = LiveFeed(10)
    bus = KafkaBus(kafka_bootstrap, names, consumer_overrides=CONSUMER_OVERRIDES)
    group = f"{uuid.uuid4().hex}.api"
    consumer = FeedConsumer(
        lambda: bus.link(group=group, topics=TOPICS, client_id="api"), feed
    ).start()
    try:
        _wait(consumer.ready)
        producer = Producer(
            {"bootstrap.servers": kafka_bootstrap, "transactional.id": uuid.uuid4().hex}
        )
        producer.init_transactions(30)

        def fill(coid: str, commit: bool) -> None:
            producer.begin_transaction()
            rec = encode_emit(
                Emit(EXECUTIONS, report(coid, OrderStatus.FILLED, last_qty="0.01")), ()
            )
            producer.produce(
                names.physical(EXECUTIONS), rec.value, rec.key, headers=list(rec.headers)
            )
            # Written before the transaction ends: an abort purges what is still queued, and
            # an aborted record that never reached the log would test nothing.
            assert producer.flush(30) == 0
            (producer.commit_transaction if commit else producer.abort_transaction)(30)

        # "latest" is resolved when the first fetch starts, a while after the assignment: a
        # record published before then is skipped. Committed probes (same producer, same key:
        # the fills' partition) until one shows; whatever is published after it is read.
        probes: list[str] = []

        def reading() -> bool:
            if any(f.client_order_id in probes for f in feed.fills()):
                return True
            probes.append(f"probe-{len(probes)}")
            fill(probes[-1], commit=True)
            return False

        wait_until(
            reading, lambda: f"none of {len(probes)} committed probes reached the feed", 60, 0.2
        )
        for commit, coid in ((False, "aborted"), (True, "committed")):
            fill(coid, commit)
        wait_until(
            lambda: any(f.client_order_id == "committed" for f in feed.fills()),
            lambda: f"the committed fill; the feed has {[f.client_order_id for f in feed.fills()]}",
            60,
        )
        # One partition, read in order: the aborted fill came before the committed one, so
        # had it been delivered it would be in the feed by now.
        fills = [f.client_order_id for f in feed.fills() if f.client_order_id not in probes]
        assert fills == ["committed"]
    finally:
        consumer.stop()


def test_production_app_when_wired_to_kafka_and_redis_serves_and_publishes(
    kafka_bootstrap: str, redis_url: str, names: TopicNames
) -> None:
    namespace = names.physical("x")[: -len(".x")]
    platform = PlatformSettings(
        bus="kafka", kafka_bootstrap=kafka_bootstrap, redis_url=redis_url, topic_namespace=namespace
    )
    settings = ApiSettings(jwt_key=KEY, health_targets={"risk": "http://127.0.0.1:9"})
    RedisCache(redis_url, namespace=namespace).set("risk:paper:kill_switch", b"1")
    with production_app(platform, settings) as app, TestClient(app) as client:
        _wait(lambda: client.get("/readyz").status_code == 200, 30)  # the feed is assigned
        operator = {"Authorization": f"Bearer {token('olga')}"}
        assert client.get("/risk", headers=operator).json()["kill_switch"] is True
        [risk] = client.get("/health", headers=operator).json()["services"]
        assert (risk["ready"], risk["error"]) == (False, "ConnectError")
        r = client.post("/control/kill-switch", json={"engaged": False}, headers=operator)
        assert r.status_code == 202
    msg = _read_one(kafka_bootstrap, names.physical(CONTROL))
    command = decode(msg.value() or b"", "control")
    assert isinstance(command, ControlCommand)
    assert (command.action, command.issued_by) == (ControlAction.KILL_SWITCH_OFF, "olga")
