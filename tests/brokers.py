"""Pytest plugin: where tests get real Kafka and Redis (`pytest_plugins = ["tests.brokers"]`).

In order: (1) `TICKPIPE_KAFKA_BOOTSTRAP` / `TICKPIPE_REDIS_URL` when set; (2) testcontainers
when a Docker engine answers (a `docker` CLI alone is not enough) and the image can be had:
`KAFKA_IMAGE` / `REDIS_IMAGE` from the environment, else from `.tickpipe/images.env` (what
`make images` built or pulled on this machine), else the public images; (3) a local JVM broker
and `redis-server` (tickpipe.infra) in a pytest tmp dir, also when the engine answers but an
image cannot be had (the session's summary says why). Started lazily, once per session, and
stopped at its end. Outside CI a broker that cannot be had skips the test; with `CI=true` it is
an error, so a broken setup never passes as green.
"""

from __future__ import annotations

import gc
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tickpipe.infra import LocalKafka, LocalRedis, free_port
from tickpipe.infra.kafka_local import kafka_ready

KAFKA_ENV = "TICKPIPE_KAFKA_BOOTSTRAP"
REDIS_ENV = "TICKPIPE_REDIS_URL"
# The public images, where nothing names others. Both local equivalents keep their conventions.
KAFKA_IMAGE = "apache/kafka:4.1.1"
REDIS_IMAGE = "redis:7.4.2-alpine"
IMAGES_ENV = Path(__file__).resolve().parents[1] / ".tickpipe" / "images.env"
# Every container a session starts carries this label, valued with its owner (pid and start
# time): a later session removes those whose owner is gone (a session killed before cleanup).
OWNER_LABEL = "io.tickpipe.tests.owner"

_docker: bool | None = None


@dataclass(frozen=True)
class Provided:
    """Where a session's broker came from: `env`, `testcontainers` or `local`, and details."""

    source: str
    detail: str
    container_id: str | None = None


# "kafka" / "redis" -> how this session got it (read by tests/deploy/test_brokers.py and the
# terminal summary).
provided: dict[str, Provided] = {}


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


def images_env(path: Path = IMAGES_ENV) -> dict[str, str]:
    """`NAME=value` lines of `.tickpipe/images.env` (written by deploy/docker/images.sh)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def image_for(variable: str, public: str) -> str:
    return os.environ.get(variable) or images_env().get(variable) or public


def owner_token(pid: int | None = None) -> str:
    """`<pid>:<start time>`: unique to a live process, even when pids are reused."""
    pid = os.getpid() if pid is None else pid
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return f"{pid}:gone"
    return f"{pid}:{stat.rsplit(')', 1)[1].split()[19]}"  # field 22, after the command


def owner_alive(token: str) -> bool:
    """Whether the process an owner_token() names still runs."""
    pid, _, _ = token.partition(":")
    return pid.isdigit() and owner_token(int(pid)) == token


def _docker_client() -> Any:
    import docker

    return docker.from_env(timeout=30)


def remove_orphans() -> list[str]:
    """Remove containers earlier sessions started and could not stop (they were killed)."""
    client = _docker_client()
    removed = []
    try:
        for container in client.containers.list(all=True, filters={"label": OWNER_LABEL}):
            if not owner_alive(container.labels.get(OWNER_LABEL, "")):
                container.remove(force=True, v=True)
                removed.append(container.name)
    finally:
        client.close()
    return removed


def missing_image(image: str) -> str | None:
    """None when `image` is here or could be pulled; else why it cannot be had."""
    import docker.errors

    client = _docker_client()
    try:
        client.images.get(image)
        return None
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(image)
        return None
    except docker.errors.DockerException as exc:
        return f"{image} is not here and cannot be pulled ({exc})"
    finally:
        client.close()


def _note_fallback(what: str, why: str) -> None:
    provided[what.lower()] = Provided("local", f"the engine answers but {why}")


def _start_container(stack: ExitStack, container: Any, **start: Any) -> Any:
    stack.callback(container.stop)  # also removes a container that failed to start
    return container.start(**start)


def _configure_testcontainers() -> None:
    from testcontainers.core.config import ConnectionMode, testcontainers_config

    # Ryuk, testcontainers' reaper, is an image of its own that no registry may serve here:
    # sessions stop their containers themselves, and remove_orphans() catches killed ones.
    testcontainers_config.ryuk_disabled = True
    # Ports are published on this machine's loopback. A /.dockerenv (some VMs and CI runners
    # have one) would make testcontainers look for them at a gateway address instead.
    if not testcontainers_config.tc_host_override:
        testcontainers_config.tc_host_override = "127.0.0.1"
    if testcontainers_config.connection_mode_override is None:
        testcontainers_config.connection_mode_override = ConnectionMode.docker_host


def _container(image: str) -> Any:
    from testcontainers.core.container import DockerContainer

    _configure_testcontainers()
    return DockerContainer(image, labels={OWNER_LABEL: owner_token()})


def kafka_container(image: str, port: int) -> Any:
    """A single-node KRaft broker from `image` (apache/kafka's conventions), published on
    127.0.0.1:`port` only and advertised there."""
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    single_node = {
        "CLUSTER_ID": "tickpipeTestsKRaftAAAA",
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        # Clients reach the published port; the broker reaches itself (transaction markers)
        # on a listener of its own, since the published address means nothing inside.
        "KAFKA_LISTENERS": "PLAINTEXT://:9092,BROKER://localhost:9091,CONTROLLER://localhost:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port},BROKER://localhost:9091",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": (
            "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT"
        ),
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "BROKER",
        "KAFKA_LOG_DIRS": "/var/lib/kafka/data",
        # One broker: the internal topics must fit on it, or init_transactions() hangs.
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_HEAP_OPTS": "-Xms256m -Xmx512m",  # as the JVM broker: two cores, shared
    }
    container = _container(image).with_envs(**single_node)
    # Loopback only, at the port the broker advertises (docker-py's (address, port) form).
    container.ports["9092/tcp"] = ("127.0.0.1", port)
    return container.waiting_for(
        LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(120)
    )


def _kafka(stack: ExitStack, tmp: pytest.TempPathFactory) -> str:
    if docker_available():
        remove_orphans()
        image = image_for("KAFKA_IMAGE", KAFKA_IMAGE)
        why = missing_image(image)
        if why is None:
            port = free_port()
            container = _start_container(stack, kafka_container(image, port))
            bootstrap = f"127.0.0.1:{port}"
            if not kafka_ready(bootstrap, timeout_s=30):
                raise RuntimeError(f"Kafka in {image} logged its start but does not answer")
            provided["kafka"] = Provided("testcontainers", image, container.get_container_id())
            return bootstrap
        _note_fallback("Kafka", why)
    kafka = LocalKafka(tmp.mktemp("kafka"))
    stack.callback(kafka.stop)
    kafka.start(timeout_s=120)  # generous: CI runners and parallel workers share few cores
    provided.setdefault("kafka", Provided("local", "no Docker engine answers"))
    return kafka.bootstrap


def _redis(stack: ExitStack, tmp: pytest.TempPathFactory) -> str:
    if docker_available():
        remove_orphans()
        image = image_for("REDIS_IMAGE", REDIS_IMAGE)
        why = missing_image(image)
        if why is None:
            from testcontainers.community.redis import RedisContainer

            _configure_testcontainers()
            container = RedisContainer(image, labels={OWNER_LABEL: owner_token()})
            # Loopback only, any free port: docker-py takes an (address,) binding, which
            # testcontainers' annotation does not list.
            container.ports["6379"] = ("127.0.0.1",)  # type: ignore[assignment]
            _start_container(stack, container)
            port = container.get_exposed_port(6379)
            provided["redis"] = Provided("testcontainers", image, container.get_container_id())
            return f"redis://127.0.0.1:{port}/0"
        _note_fallback("Redis", why)
    server = LocalRedis(tmp.mktemp("redis"))
    stack.callback(server.stop)
    server.start()
    provided.setdefault("redis", Provided("local", "no Docker engine answers"))
    return server.url


def _provide(
    env: str,
    what: str,
    start: Callable[[ExitStack, pytest.TempPathFactory], str],
    tmp: pytest.TempPathFactory,
) -> Iterator[str]:
    given = os.environ.get(env)
    if given:
        provided[what.lower()] = Provided("env", env)
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


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line per broker the session used: where it came from, and why not a container."""
    where = {"env": "from", "testcontainers": "in a container of", "local": "local:"}
    for what, p in sorted(provided.items()):
        terminalreporter.write_line(f"brokers: {what} {where[p.source]} {p.detail}")
