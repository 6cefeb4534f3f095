"""kill -9 of the risk service mid-stream over secure transport: Kafka over SASL_SSL (SCRAM,
TLS 1.3, ACLs) and Redis over TLS, risk as its own principal and ACL user. After the restart
(state from its Redis snapshot, history read back under its ACLs, then a replay of what it
had committed after the snapshot, outputs suppressed) orders.v1 holds exactly the orders of
an uninterrupted run: the scenario and the assertion of tests/integration/test_risk_recovery.py.

The scaffold (tests/integration/recovery.py) reads committed offsets and the output topic
with plain clients; here they get the admin principal's settings (a super user), the only
way to reach a broker with no plaintext listener.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer

from tests.integration import recovery
from tests.integration.secure import NS, secure_pair
from tests.integration.test_risk_recovery import (
    ENV,
    _expected,
    _inputs,
    kill_and_restart,
)
from tickpipe.bus.kafka import KafkaBus
from tickpipe.infra.secure import SecureEndpoints
from tickpipe.processes import ServiceProcesses
from tickpipe.topics import TopicNames

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureEndpoints]:
    """A fresh secure Kafka broker and Redis for this module, topics created as `admin`."""
    yield from secure_pair(tmp_path_factory)


def _as_admin(found: SecureEndpoints, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The scaffold's own Kafka clients (committed offsets, the output reader) as `admin`."""
    admin = found.admin_kafka_config()

    def consumer(conf: Mapping[str, Any]) -> Consumer:
        return Consumer({**conf, **admin})

    monkeypatch.setattr(recovery, "Consumer", consumer)
    monkeypatch.setattr(recovery, "KafkaBus", functools.partial(KafkaBus, client_config=admin))
    return admin


def test_risk_when_killed_mid_stream_over_sasl_ssl_then_orders_are_exactly_an_uninterrupted_runs(
    pair: SecureEndpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found, names, bootstrap = pair, TopicNames(NS), pair.kafka_bootstrap
    signals = _inputs(seed=7)
    expected = _expected(signals, monkeypatch)
    assert len(expected) > 40  # the scenario really trades
    admin = _as_admin(found, monkeypatch)

    producer = KafkaBus(bootstrap, names, client_config=admin).producer("test")
    env = {**found.env("risk"), **ENV}  # SASL_SSL as `risk`, rediss:// as the `risk` user
    assert env["TICKPIPE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["TICKPIPE_KAFKA_SASL_USERNAME"] == "risk"
    assert env["TICKPIPE_REDIS_URL"].startswith("rediss://risk@")
    procs = ServiceProcesses(env, tmp_path / "logs", base_port=None)
    cache = redis.Redis.from_url(found.redis_url, **found.admin_redis_options())
    try:
        run = kill_and_restart(procs, producer, cache, bootstrap, names, NS, signals, len(expected))
    finally:
        procs.stop()
        producer.close()
        cache.close()
    got, first_log, restarted_log = run.got, run.first_log, run.restarted_log
    replays, pending = run.replays, run.pending

    assert len(got) == len(set(got)), "an order was produced twice"
    assert got == expected
    # The restarted instance rebuilt its state from the snapshot plus a replay of the records
    # committed after it, whose orders (already on orders.v1) it did not publish again.
    assert '"msg":"state restored"' in restarted_log
    assert replays >= pending > 0, f"{replays} records replayed, {pending} committed after"
    # Nothing the restart needed was outside risk's own ACLs or Redis keys.
    for log in (first_log, restarted_log):
        for refusal in ("NOPERM", "uthorization failed", "no permissions"):
            assert refusal not in log, refusal
