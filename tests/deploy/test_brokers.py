"""Where the broker fixtures (tests/brokers.py) get Kafka and Redis once an engine answers.

Two paths, each exercised in CI: the images `make base-images` recorded run in testcontainers
(this session's own brokers), and an image that cannot be had falls back to the local JVM
broker and redis-server, saying why (a pytest session of its own with the images renamed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import redis
from confluent_kafka.admin import AdminClient

from tests import brokers
from tests.deploy.engine import inspect, require_engine
from tests.deploy.tools import ROOT

PROBE = """
import redis
from confluent_kafka.admin import AdminClient


def test_probe(kafka_bootstrap: str, redis_url: str) -> None:
    assert AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=60).brokers
    with redis.Redis.from_url(redis_url) as client:
        assert client.ping()
"""


def test_brokers_when_the_engine_answers_then_containers_of_the_recorded_images(
    kafka_bootstrap: str, redis_url: str
) -> None:
    images = require_engine()
    for what, variable in (("kafka", "KAFKA_IMAGE"), ("redis", "REDIS_IMAGE")):
        got = brokers.provided[what]
        if got.source == "env":
            brokers.unavailable(f"{what} given by {got.detail}: no container to check")
        assert got.source == "testcontainers", got
        assert got.detail == os.environ.get(variable, images[variable])
        assert got.container_id
        (container,) = inspect("container", got.container_id)
        assert container["Config"]["Image"] == got.detail
        assert container["Config"]["Labels"][brokers.OWNER_LABEL] == brokers.owner_token()
        bindings = [b for p in container["HostConfig"]["PortBindings"].values() for b in p]
        assert bindings and all(b["HostIp"] == "127.0.0.1" for b in bindings), bindings
    assert AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=30).brokers
    with redis.Redis.from_url(redis_url) as client:
        assert client.ping()


def test_brokers_when_an_image_cannot_be_had_then_the_jvm_broker_and_why(tmp_path: Path) -> None:
    require_engine()
    (tmp_path / "test_probe.py").write_text(textwrap.dedent(PROBE))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {brokers.KAFKA_ENV, brokers.REDIS_ENV, "PYTEST_ADDOPTS"}
    }
    missing = {"KAFKA_IMAGE": "tickpipe-missing/kafka:0", "REDIS_IMAGE": "tickpipe-missing/redis:0"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.brokers", "-p", "no:cacheprovider",
         "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT), "-q",
         str(tmp_path / "test_probe.py")],
        cwd=ROOT,
        env={**env, **missing, "CI": "true"},
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    for what, image in (("kafka", missing["KAFKA_IMAGE"]), ("redis", missing["REDIS_IMAGE"])):
        line = next((line for line in out.splitlines() if line.startswith(f"brokers: {what} ")), "")
        assert line.startswith(f"brokers: {what} local: the engine answers but {image}"), out
        assert "cannot be pulled" in line
