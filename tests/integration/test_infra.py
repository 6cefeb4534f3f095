"""Real local infrastructure: the brokers tests get, and `tickpipe infra up|status|down`."""

from __future__ import annotations

import argparse
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tickpipe.infra import cli, manager
from tickpipe.infra.jars import FALLBACK_POM, repo_pom
from tickpipe.infra.kafka_local import new_cluster_id

pytestmark = pytest.mark.integration


def _create_topic(bootstrap: str) -> str:
    topic = f"infra-test-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    futures[topic].result(30)
    return topic


def _consume(bootstrap: str, topic: str, want: int, isolation: str) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"infra-test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "isolation.level": isolation,
        }
    )
    values: list[bytes] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while len(values) < want and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                values.append(msg.value() or b"")
    finally:
        consumer.close()
    return values


def test_kafka_topic_produce_consume_round_trip(kafka_bootstrap: str) -> None:
    topic = _create_topic(kafka_bootstrap)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(3):
        producer.produce(topic, key=b"k", value=f"v{i}".encode())
    assert producer.flush(30) == 0

    assert _consume(kafka_bootstrap, topic, 3, "read_uncommitted") == [b"v0", b"v1", b"v2"]


def test_kafka_transactions_commit(kafka_bootstrap: str) -> None:
    # Needs the single-node transaction-log settings: else init_transactions() hangs.
    topic = _create_topic(kafka_bootstrap)
    producer = Producer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "transactional.id": f"infra-test-{uuid.uuid4().hex}",
            "enable.idempotence": True,
        }
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, value=b"committed")
    producer.commit_transaction(30)

    assert _consume(kafka_bootstrap, topic, 1, "read_committed") == [b"committed"]


def test_redis_set_get(redis_url: str) -> None:
    key = f"infra-test:{uuid.uuid4().hex}"
    with redis.Redis.from_url(redis_url) as client:
        assert client.set(key, b"value", ex=60)
        assert client.get(key) == b"value"
        client.delete(key)


def _pid_gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def _run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="tickpipe")
    cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["infra", *argv])
    code: int = args.func(args)
    return code


def test_manager_up_status_down(
    tmp_path: Path, free_port_factory: Callable[[], int], capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = tmp_path / "infra"
    ports = {
        "kafka_port": free_port_factory(),
        "controller_port": free_port_factory(),
        "redis_port": free_port_factory(),
    }
    try:
        first = manager.up(state_dir, **ports)
        assert first.kafka_bootstrap == f"127.0.0.1:{ports['kafka_port']}"
        assert first.redis_url == f"redis://127.0.0.1:{ports['redis_port']}/0"
        pids = {name: manager.status(state_dir)[name]["pid"] for name in ("kafka", "redis")}

        # Already running and healthy: same endpoints, same processes, nothing restarted.
        assert manager.up(state_dir) == first
        current = manager.status(state_dir)
        for name in ("kafka", "redis"):
            assert current[name]["pid"] == pids[name]
            assert current[name]["running"] and current[name]["healthy"]

        assert _run_cli("status", "--state-dir", str(state_dir)) == 0
        out = capsys.readouterr().out
        assert re.search(rf"^kafka: 127\.0\.0\.1:{ports['kafka_port']} \(pid \d+", out, re.M)
        assert f"export TICKPIPE_KAFKA_BOOTSTRAP={first.kafka_bootstrap}\n" in out
        assert f"export TICKPIPE_REDIS_URL={first.redis_url}\n" in out
    finally:
        stopped = manager.down(state_dir)

    assert stopped == pids
    assert all(_pid_gone(pid) for pid in pids.values())
    after = manager.status(state_dir)
    assert not after["kafka"]["running"] and not after["redis"]["running"]
    assert _run_cli("status", "--state-dir", str(state_dir)) == 1


def test_fallback_pom_matches_repo_pom() -> None:
    # The pom written for installs outside the repo must resolve the same jars.
    pom = repo_pom()
    assert pom is not None
    versions = re.compile(r"<(kafka|log4j)\.version>([^<]+)<")
    assert versions.findall(FALLBACK_POM) == versions.findall(pom.read_text())


def test_cluster_ids_are_valid() -> None:
    for _ in range(200):
        cluster_id = new_cluster_id()
        assert len(cluster_id) == 22 and not cluster_id.startswith("-")
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id)
