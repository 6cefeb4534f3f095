"""A sentinel API key and secret, through the live execution service end to end (ccxt over
HTTP to a local fake Binance): they never reach logs, Kafka records, cache values or error
messages — only the exchange, in the request header it needs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal

import pytest

from tests.fixtures.execution.fake_binance import FakeBinance
from tests.unit import factories as f
from tickpipe.bus.memory import MemoryBus
from tickpipe.cache.memory import MemoryCache
from tickpipe.embedded import EmbeddedPipeline
from tickpipe.messages import ControlAction, OrderType
from tickpipe.runner import encode_emit
from tickpipe.service import Emit
from tickpipe.topics import CONTROL, DLQ, EXECUTIONS, ORDERS
from tickpipe_execution.app import SERVICE
from tickpipe_execution.live.credentials import CredentialsError, load_credentials
from tickpipe_execution.live.oms import KILL_SWITCH_KEY

pytestmark = pytest.mark.integration

KEY = "SENTINEL-APIKEY-4c1d9e"
SECRET = "SENTINEL-SECRET-90ab3f"
P = "TICKPIPE_EXECUTION_"


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    server = FakeBinance().start()
    yield server
    server.stop()


def test_live_execution_when_run_with_sentinel_credentials_never_leaks_them(
    fake: FakeBinance, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env = {
        f"{P}MODE": "live",
        f"{P}API_KEY": KEY,
        f"{P}API_SECRET": SECRET,
        f"{P}REST_URL": fake.base_url,
        f"{P}WS_URL": fake.ws_url,  # the user-data stream signs its subscription with the key
        f"{P}TIMEOUT_MS": "500",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    caplog.set_level(logging.DEBUG)  # everything, ccxt's request dumps included
    pipeline = EmbeddedPipeline([SERVICE])
    producer = pipeline.bus.producer("test")
    fake.fault("POST /api/v3/order", "500", "insufficient_balance")
    orders = [
        f.order(client_order_id="tp-s1", event_id="01S1"),
        f.order(client_order_id="tp-s2", event_id="01S2", quantity=Decimal(9)),
        f.order(
            client_order_id="tp-s3",
            event_id="01S3",
            order_type=OrderType.LIMIT,
            limit_price=Decimal(50_000),
        ),
    ]
    for o in orders:
        producer.send(encode_emit(Emit(ORDERS, o), ()))
    pipeline.pump()
    # Live mode keeps no state snapshot (the OMS is rebuilt from the ledger): what it writes
    # to the cache is the kill switch, on each control command, as the pump handles it.
    producer.send(encode_emit(Emit(CONTROL, f.control(ControlAction.CANCEL_ALL)), ()))
    pipeline.pump()
    errors = []
    for bad in ({f"{P}API_KEY": KEY}, {f"{P}KEYFILE": "/nonexistent", f"{P}KEYFILE_KEY": SECRET}):
        with pytest.raises(CredentialsError) as err:
            load_credentials(bad)
        errors.append(str(err.value))

    bus: MemoryBus = pipeline.bus
    records = [r for t in (EXECUTIONS, DLQ) for r in bus.records(t)]
    cache = pipeline.cache
    assert isinstance(cache, MemoryCache)
    values = [v for v, _ in cache._data.values()]
    assert len(records) >= 5  # the scenario did trade, reject and cancel
    assert cache.get(KILL_SWITCH_KEY) == b"0"  # ...and wrote the cache
    # s1: a 5xx, not found by client id, resent, then rejected; s2 and s3 placed once each.
    assert fake.placed == ["tp-s2", "tp-s3"]
    haystacks = {
        "logs": caplog.text,
        "records": b"".join(r.value + repr(r.headers).encode() for r in records).decode(),
        "cache": b"".join(values).decode(errors="replace"),
        "errors": "\n".join(errors),
    }
    for where, text in haystacks.items():
        assert KEY not in text and SECRET not in text, f"credential leaked into {where}"
    # ...and the key did reach the exchange, where it belongs (the test can see it).
    assert fake.api_keys == {KEY}
    assert fake.subscriptions >= 1
