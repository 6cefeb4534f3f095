"""Control endpoints: one ControlCommand per call, keyed by target, issued by the JWT
subject, audited; a publish failure is reported and audited, never swallowed."""

from __future__ import annotations

import logging

import pytest

from tests.api.conftest import Api, bearer, build_api
from tests.api.testclient import TestClient
from tickpipe.bus.memory import MemoryBus
from tickpipe.messages import ControlAction, ControlCommand, decode
from tickpipe.runner import EVENT_TYPE
from tickpipe.topics import CONTROL
from tickpipe_api.auth import Role
from tickpipe_api.control import BusControlPublisher

OPERATOR = bearer(Role.OPERATOR, "alice")


@pytest.mark.parametrize(
    ("path", "body", "action", "target", "args"),
    [
        ("/control/kill-switch", {"engaged": True}, ControlAction.KILL_SWITCH_ON, "*", {}),
        ("/control/kill-switch", {"engaged": False}, ControlAction.KILL_SWITCH_OFF, "*", {}),
        (
            "/control/pause",
            {"symbol": "binance:BTC/USDT"},
            ControlAction.PAUSE_SYMBOL,
            "binance:BTC/USDT",
            {},
        ),
        (
            "/control/resume",
            {"symbol": "binance:ETH/USDT"},
            ControlAction.RESUME_SYMBOL,
            "binance:ETH/USDT",
            {},
        ),
        (
            "/control/limits",
            {"name": "max_order_qty", "value": "2.50", "strategy": "baseline"},
            ControlAction.SET_LIMIT,
            "*",
            {"name": "max_order_qty", "value": "2.50", "strategy": "baseline"},
        ),
        (
            "/control/limits",
            {"name": "max_order_notional", "value": "10000"},
            ControlAction.SET_LIMIT,
            "*",
            {"name": "max_order_notional", "value": "10000"},
        ),
        (
            "/control/models/reload",
            {"name": "baseline", "version": "v2", "target": "baseline"},
            ControlAction.RELOAD_MODEL,
            "baseline",
            {"name": "baseline", "version": "v2"},
        ),
    ],
)
def test_control_when_called_publishes_one_command_by_subject(
    api: Api,
    client: TestClient,
    path: str,
    body: dict[str, object],
    action: ControlAction,
    target: str,
    args: dict[str, str],
) -> None:
    r = client.post(path, json={**body, "reason": "test"}, headers=OPERATOR)
    assert r.status_code == 202, r.text
    [command] = api.control.published
    assert (command.action, command.target, command.args) == (action, target, args)
    assert command.issued_by == "alice"
    assert command.reason == "test"
    assert r.json()["event_id"] == command.event_id


def test_control_when_published_is_in_audit_newest_first(api: Api, client: TestClient) -> None:
    client.post("/control/kill-switch", json={"engaged": True}, headers=OPERATOR)
    client.post("/control/kill-switch", json={"engaged": False}, headers=OPERATOR)
    audit = client.get("/audit", headers=OPERATOR).json()
    assert [e["command"]["action"] for e in audit] == ["kill_switch_off", "kill_switch_on"]
    assert {e["outcome"] for e in audit} == {"published"}


def test_control_when_published_logs_audit_line_without_token(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client.post("/control/pause", json={"symbol": "binance:BTC/USDT"}, headers=OPERATOR)
    [line] = [r for r in caplog.records if r.name == "tickpipe_api.audit"]
    assert line.__dict__["action"] == "pause_symbol"
    assert line.__dict__["issued_by"] == "alice"
    token = OPERATOR["Authorization"].split()[1]
    assert all(token not in r.getMessage() and token not in str(r.__dict__) for r in caplog.records)


def test_control_when_publisher_fails_answers_503_and_audits_failure(
    api: Api, client: TestClient
) -> None:
    def broken(command: ControlCommand) -> None:
        raise RuntimeError("broker down")

    api.control.subscribe(broken)
    r = client.post("/control/kill-switch", json={"engaged": True}, headers=OPERATOR)
    assert r.status_code == 503
    [entry] = client.get("/audit", headers=OPERATOR).json()
    assert (entry["outcome"], entry["error"]) == ("failed", "RuntimeError")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/control/limits", {"name": "Max Leverage", "value": "3"}),
        ("/control/limits", {"name": "max_order_qty", "value": "-1"}),
        ("/control/limits", {"name": "max_order_qty", "value": "NaN"}),
        ("/control/limits", {"name": "max_order_qty", "value": "0.000"}),
        ("/control/limits", {"name": "max_order_qty", "value": "1e3"}),
        ("/control/pause", {"symbol": "not a symbol"}),
        ("/control/kill-switch", {"engaged": True, "extra": 1}),
        ("/control/models/reload", {"name": "../etc", "version": "v1"}),
    ],
)
def test_control_when_body_invalid_answers_422_and_publishes_nothing(
    api: Api, client: TestClient, path: str, body: dict[str, object]
) -> None:
    assert client.post(path, json=body, headers=OPERATOR).status_code == 422
    assert api.control.published == []


def test_control_when_subject_exceeds_burst_answers_429_with_retry_after() -> None:
    api = build_api(control_burst=2)
    with TestClient(api.app) as client:
        codes = [
            client.post("/control/kill-switch", json={"engaged": True}, headers=OPERATOR)
            for _ in range(3)
        ]
        other = client.post(
            "/control/kill-switch", json={"engaged": True}, headers=bearer(Role.ADMIN, "bob")
        )
    assert [r.status_code for r in codes] == [202, 202, 429]
    assert int(codes[2].headers["retry-after"]) >= 1
    assert other.status_code == 202  # buckets are per subject
    assert len(api.control.published) == 3


def test_reads_when_subject_exceeds_burst_answers_429() -> None:
    api = build_api(read_rate=0.01, read_burst=2)
    with TestClient(api.app) as client:
        codes = [client.get("/pnl", headers=OPERATOR).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_bus_publisher_when_publishing_keys_record_by_family_and_target_with_type_header() -> None:
    bus = MemoryBus()
    command = ControlCommand(
        event_id="01J0000000000000000000000",
        ts_event=1,
        ts_init=1,
        action=ControlAction.PAUSE_SYMBOL,
        target="binance:BTC/USDT",
        issued_by="alice",
    )
    BusControlPublisher(bus.producer("api")).publish(command)
    [record] = bus.records(CONTROL)
    assert record.key == b"trading:binance:BTC/USDT"
    assert decode(record.value, (record.header(EVENT_TYPE) or b"").decode()) == command
