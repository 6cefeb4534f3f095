"""Operator commands from the command line: `tickpipe control ...` publishes on control.v1.

The same ControlCommand the operator API publishes, keyed by its compaction key, so the
terminal is a second way to stop trading at once when the dashboard is out of reach.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from tickpipe.bus.base import Bus, BusError
from tickpipe.clock import LiveClock
from tickpipe.ids import EventIds
from tickpipe.messages import ControlAction, ControlCommand
from tickpipe.runner import encode_emit
from tickpipe.service import Emit
from tickpipe.topics import CONTROL


def command_from_args(args: argparse.Namespace, ids: EventIds, now_ns: int) -> ControlCommand:
    what: str = args.what
    target: str = args.target
    cmd_args: dict[str, str] = {}
    if what == "kill-switch":
        action = (
            ControlAction.KILL_SWITCH_ON if args.state == "on" else ControlAction.KILL_SWITCH_OFF
        )
    elif what in ("pause", "resume"):
        action = ControlAction.PAUSE_SYMBOL if what == "pause" else ControlAction.RESUME_SYMBOL
        target = args.symbol
    elif what == "set-limit":
        action = ControlAction.SET_LIMIT
        cmd_args = {"name": args.name, "value": args.value}
        if args.strategy:
            cmd_args["strategy"] = args.strategy
    elif what == "reload-model":
        action, target = ControlAction.RELOAD_MODEL, "inference"
        cmd_args = {"name": args.name, "version": args.version}
    else:
        action = ControlAction.CANCEL_ALL
    return ControlCommand(
        event_id=ids.new(),
        ts_event=now_ns,
        ts_init=now_ns,
        action=action,
        target=target,
        args=cmd_args,
        issued_by=args.issued_by,
        reason=args.reason,
    )


def publish(bus: Bus, command: ControlCommand) -> None:
    producer = bus.producer("tickpipe-control")
    try:
        producer.send(encode_emit(Emit(CONTROL, command, key=command.compaction_key), ()))
        producer.flush(10)  # acknowledged by Kafka before we say it was sent
    finally:
        producer.close()


def _run(args: argparse.Namespace) -> int:
    from tickpipe.app import make_bus
    from tickpipe.settings import PlatformSettings

    settings = PlatformSettings()
    if settings.bus != "kafka":
        print(
            "tickpipe control needs TICKPIPE_BUS=kafka (and TICKPIPE_KAFKA_BOOTSTRAP)",
            file=sys.stderr,
        )
        return 2
    clock = LiveClock()
    command = command_from_args(args, EventIds(clock), clock.now_ns())
    # The bus's clients get TICKPIPE_KAFKA_SECURITY_PROTOCOL & co. (tickpipe.bus.security);
    # brokers that refuse them end this command at once, in one line.
    try:
        publish(make_bus(settings), command)
    except BusError as exc:
        raise SystemExit(f"tickpipe control: not sent: {exc}") from None
    print(f"{command.action.value} target={command.target} sent as {command.event_id}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("control", help="send an operator command on control.v1")
    p.add_argument("--target", default="*", help="`*`, an account, or exchange:symbol")
    p.add_argument("--reason", default=None, help="why, recorded in the audit")
    p.add_argument("--issued-by", default=getpass.getuser(), help="recorded in the audit")
    what = p.add_subparsers(dest="what", required=True)
    kill = what.add_parser("kill-switch", help="stop (on) or resume (off) trading")
    kill.add_argument("state", choices=["on", "off"], help="on: stop trading; off: resume")
    for name in ("pause", "resume"):
        what.add_parser(name, help=f"{name} one symbol").add_argument(
            "symbol", help="exchange:symbol, e.g. binance:BTC/USDT"
        )
    limit = what.add_parser("set-limit", help="change a risk limit")
    limit.add_argument("name", help="the limit, e.g. max_order_notional (README: risk)")
    limit.add_argument("value", help="its new value, a number")
    limit.add_argument(
        "--strategy",
        default=None,
        help="override it for this strategy only (default: the default for all)",
    )
    model = what.add_parser("reload-model", help="serve another registered model version")
    model.add_argument("name", help="the model (strategy) name in the registry, e.g. baseline")
    model.add_argument("version", help="the registered version, e.g. v2")
    what.add_parser("cancel-all", help="cancel every open order on --target")
    p.set_defaults(func=_run)
