"""`tickpipe control`: arguments -> the ControlCommand on control.v1, keyed for compaction."""

from __future__ import annotations

import pytest

from tickpipe.bus.memory import MemoryBus
from tickpipe.cli import build_parser
from tickpipe.clock import SimClock
from tickpipe.control import command_from_args, publish
from tickpipe.ids import EventIds
from tickpipe.messages import ControlAction, ControlCommand, decode
from tickpipe.runner import EVENT_TYPE
from tickpipe.topics import CONTROL


@pytest.mark.parametrize(
    ("argv", "action", "target", "args"),
    [
        (["kill-switch", "on"], ControlAction.KILL_SWITCH_ON, "*", {}),
        (["kill-switch", "off"], ControlAction.KILL_SWITCH_OFF, "*", {}),
        (["pause", "binance:BTC/USDT"], ControlAction.PAUSE_SYMBOL, "binance:BTC/USDT", {}),
        (["resume", "binance:BTC/USDT"], ControlAction.RESUME_SYMBOL, "binance:BTC/USDT", {}),
        (
            ["set-limit", "max_order_qty", "2", "--strategy", "s1"],
            ControlAction.SET_LIMIT,
            "*",
            {"name": "max_order_qty", "value": "2", "strategy": "s1"},
        ),
        (
            ["reload-model", "baseline", "v2"],
            ControlAction.RELOAD_MODEL,
            "inference",
            {"name": "baseline", "version": "v2"},
        ),
        (["cancel-all"], ControlAction.CANCEL_ALL, "*", {}),
    ],
)
def test_control_cli_when_parsed_then_builds_the_command(
    argv: list[str], action: ControlAction, target: str, args: dict[str, str]
) -> None:
    parsed = build_parser().parse_args(["control", "--issued-by", "ops", *argv])
    command = command_from_args(parsed, EventIds(SimClock(5_000_000), seed=1), 5_000_000)
    assert (command.action, command.target, command.args, command.issued_by) == (
        action,
        target,
        args,
        "ops",
    )


def test_control_publish_when_sent_then_one_record_keyed_by_family_and_target() -> None:
    bus = MemoryBus()
    parsed = build_parser().parse_args(["control", "--reason", "drill", "kill-switch", "on"])
    command = command_from_args(parsed, EventIds(SimClock(1), seed=1), 1)
    publish(bus, command)
    (record,) = bus.records(CONTROL)
    assert record.key == b"kill_switch:*"
    decoded = decode(record.value, (record.header(EVENT_TYPE) or b"").decode())
    assert isinstance(decoded, ControlCommand) and decoded == command
    assert decoded.reason == "drill"
