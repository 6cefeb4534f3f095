"""Pytest plugin: where tests get real Kafka and Redis (`pytest_plugins = ["tests.brokers"]`).

In order: (1) `TICKPIPE_KAFKA_BOOTSTRAP` / `TICKPIPE_REDIS_URL` when set; (2) testcontainers
when a Docker engine answers (a `docker` CLI alone is not enough); (3) a local JVM broker and
`redis-server` (tickpipe.infra) in a pytest tmp dir. Started lazily, once per session, and
stopped at its end. Outside CI a broker that cannot be had skips the test; with `CI=true` it
is an error, so a broken setup never passes as green.
"""

from __future__ import annotations

import gc
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tickpipe.infra import LocalKafka, LocalRedis, free_port

KAFKA_ENV = "TICKPIPE_KAFKA_BOOTSTRAP"
REDIS_ENV = "TICKPIPE_REDIS_URL"
KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"  # testcontainers' KafkaContainer drives cp-kafka
REDIS_IMAGE = "redis:7-alpine"

_docker: bool | None = None


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def docker_available() -> bool:
    """Whether a Docker engine answers a ping (asked once per session)."""
    global _docker  # noqa: PLW0603 - one probe per session, not per fixture
    if _docker is None:
        _docker = _ping_docker()
    return _docker


def _ping_docker() -> bool:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        return False  # the usual no-engine case, decided without a connection attempt
    with warnings.catch_warnings():
        # docker-py leaks the socket of a refused connection: finalize it here, silently,
        # rather than as an unraisable ResourceWarning failing some later test.
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            import docker

            client = docker.from_env(timeout=2)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:
            return False
        finally:
            gc.collect()


def unavailable(message: str, *, module: bool = False) -> NoReturn:
    """Something a test needs is missing: outside CI the test is skipped with `message`; in
    CI (`CI=true`) that is a failure, so a skip never hides a missing dependency."""
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=module)


def _unavailable(what: str, exc: BaseException) -> NoReturn:
    unavailable(f"no {what} for tests: {type(exc).__name__}: {exc}")


def _start_container(stack: ExitStack, container: Any, **start: Any) -> Any:
    stack.callback(container.stop)  # also removes a container that failed to start
    return container.start(**start)


def _kafka(stack: ExitStack, tmp: pytest.TempPathFactory) -> str:
    if docker_available():
        from testcontainers.community.kafka import KafkaContainer

        # One broker: the transaction log must fit on it, or init_transactions() hangs.
        container = (
            KafkaContainer(KAFKA_IMAGE)
            .with_kraft()
            .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
            .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        )
        _start_container(stack, container, timeout=120)
        return str(container.get_bootstrap_server())
    kafka = LocalKafka(tmp.mktemp("kafka"))
    stack.callback(kafka.stop)
    kafka.start(timeout_s=120)  # generous: CI runners and parallel workers share few cores
    return kafka.bootstrap


def _redis(stack: ExitStack, tmp: pytest.TempPathFactory) -> str:
    if docker_available():
        from testcontainers.community.redis import RedisContainer

        container = RedisContainer(REDIS_IMAGE)
        _start_container(stack, container)
        host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
        return f"redis://{host}:{port}/0"
    server = LocalRedis(tmp.mktemp("redis"))
    stack.callback(server.stop)
    server.start()
    return server.url


def _provide(
    env: str,
    what: str,
    start: Callable[[ExitStack, pytest.TempPathFactory], str],
    tmp: pytest.TempPathFactory,
) -> Iterator[str]:
    given = os.environ.get(env)
    if given:
        yield given
        return
    with ExitStack() as stack:
        try:
            endpoint = start(stack, tmp)
        except Exception as exc:
            _unavailable(what, exc)
        yield endpoint


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`host:port` of a real Kafka broker (single node, transactions enabled)."""
    yield from _provide(KAFKA_ENV, "Kafka", _kafka, tmp_path_factory)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`redis://host:port/0` of a real Redis."""
    yield from _provide(REDIS_ENV, "Redis", _redis, tmp_path_factory)


@pytest.fixture
def free_port_factory() -> Callable[[], int]:
    """Distinct free loopback ports: a test asking for several never gets one twice."""
    given: set[int] = set()

    def next_port() -> int:
        port = free_port()
        while port in given:
            port = free_port()
        given.add(port)
        return port

    return next_port
