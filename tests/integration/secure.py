"""A secure Kafka broker and Redis for one test module (`tickpipe infra up --secure` in a
pytest tmp dir, on free ports): Kafka over SASL_SSL and mTLS with the ACLs of namespace `NS`,
Redis over TLS with an ACL user per principal, every topic of `NS` created as `admin`.

A module asks for it with a fixture of its own, so each module gets a fresh pair:

    @pytest.fixture(scope="module")
    def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureEndpoints]:
        yield from secure_pair(tmp_path_factory)

`found.env(principal)` holds the settings a process connects with as that principal;
`found.admin_kafka_config()` and `found.admin_redis_options()` are the super user's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.brokers import unavailable
from tickpipe.bus.admin import create_topics
from tickpipe.infra import InfraError, free_port, secure
from tickpipe.infra.secure import SecureEndpoints
from tickpipe.topics import TopicNames

__all__ = ["NS", "secure_pair"]

NS = "sec"


def secure_pair(
    tmp_path_factory: pytest.TempPathFactory, namespace: str = NS
) -> Iterator[SecureEndpoints]:
    """Starts the pair, creates `namespace`'s topics as `admin`, yields its endpoints and
    stops it. No pair to be had: the test is skipped (an error in CI, tests/brokers.py)."""
    root = tmp_path_factory.mktemp("infra-secure")
    ports: set[int] = set()
    while len(ports) < 4:
        ports.add(free_port())
    kafka, mtls, controller, redis_port = sorted(ports)
    try:
        found = secure.up(
            root,
            kafka_port=kafka,
            mtls_port=mtls,
            controller_port=controller,
            redis_port=redis_port,
            namespace=namespace,
            timeout_s=120,
        )
    except InfraError as exc:
        secure.down(root)
        unavailable(f"no secure Kafka and Redis: {exc}")
    try:
        create_topics(
            found.kafka_bootstrap, TopicNames(namespace), client_config=found.admin_kafka_config()
        )
        yield found
    finally:
        secure.down(root)
