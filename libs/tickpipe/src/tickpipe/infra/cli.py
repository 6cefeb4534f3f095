"""`tickpipe infra up|down|status|install`: the local Kafka + Redis pair, no Docker."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tickpipe.infra._process import InfraError
from tickpipe.infra.jars import ensure_kafka_jars, java_executable
from tickpipe.infra.manager import DEFAULT_STATE_DIR, Endpoints, down, status, up
from tickpipe.infra.redis_local import ensure_redis_server


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    infra = subparsers.add_parser(
        "infra", help="run a local Kafka broker (JVM, KRaft) and redis-server, no Docker"
    )
    actions = infra.add_subparsers(dest="infra_command", required=True)

    def with_state_dir(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument(
            "--state-dir",
            type=Path,
            default=DEFAULT_STATE_DIR,
            help="where pids, ports, configs, data and logs live (default: %(default)s)",
        )
        return parser

    start = with_state_dir(actions.add_parser("up", help="start both (idempotent)"))
    start.add_argument("--kafka-port", type=int, help="default 9092, or a free port if busy")
    start.add_argument("--controller-port", type=int, help="default 9093, or a free port")
    start.add_argument("--redis-port", type=int, help="default 6379, or a free port if busy")
    start.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for Kafka")
    start.set_defaults(func=_up)

    stop = with_state_dir(actions.add_parser("down", help="stop both"))
    stop.add_argument("--purge", action="store_true", help="also delete their data and logs")
    stop.set_defaults(func=_down)

    show = with_state_dir(actions.add_parser("status", help="exit 0 only if both answer"))
    show.add_argument("--json", action="store_true", help="print the status as JSON")
    show.set_defaults(func=_status)

    install = actions.add_parser("install", help="fetch the Kafka jars and redis-server only")
    install.set_defaults(func=_install)


Handler = Callable[[argparse.Namespace], int]


def _guarded(handler: Handler) -> Handler:
    """Report an InfraError as one line and exit code 1, not a traceback."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except InfraError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return run


def _print_endpoints(found: Endpoints) -> None:
    for key, value in found.env().items():
        print(f"export {key}={value}")


def _describe(name: str, info: dict[str, Any], endpoint_key: str) -> str:
    where = info.get(endpoint_key, "-")
    if not info.get("running"):
        return f"{name}: {where} (not running)"
    health = "healthy" if info.get("healthy") else "NOT answering"
    return f"{name}: {where} (pid {info['pid']}, {health}, log {info.get('log')})"


@_guarded
def _up(args: argparse.Namespace) -> int:
    found = up(
        args.state_dir,
        kafka_port=args.kafka_port,
        controller_port=args.controller_port,
        redis_port=args.redis_port,
        timeout_s=args.timeout,
    )
    current = status(args.state_dir)
    print(_describe("kafka", current["kafka"], "bootstrap"))
    print(_describe("redis", current["redis"], "url"))
    _print_endpoints(found)
    return 0


@_guarded
def _down(args: argparse.Namespace) -> int:
    for name, pid in down(args.state_dir, purge=args.purge).items():
        print(f"{name}: stopped (pid {pid})" if pid else f"{name}: not running")
    return 0


@_guarded
def _status(args: argparse.Namespace) -> int:
    current = status(args.state_dir)
    healthy = bool(current["kafka"]["healthy"] and current["redis"]["healthy"])
    if args.json:
        print(json.dumps(current, indent=2, sort_keys=True))
    else:
        print(_describe("kafka", current["kafka"], "bootstrap"))
        print(_describe("redis", current["redis"], "url"))
        if healthy:
            _print_endpoints(Endpoints(current["kafka"]["bootstrap"], current["redis"]["url"]))
    return 0 if healthy else 1


@_guarded
def _install(args: argparse.Namespace) -> int:
    print(f"java: {java_executable()}")
    libs = ensure_kafka_jars()
    print(f"kafka jars: {libs} ({len(list(libs.glob('*.jar')))} jars)")
    print(f"redis-server: {ensure_redis_server()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (`python -m tickpipe.infra.cli up`) for when the main CLI is absent."""
    parser = argparse.ArgumentParser(prog="tickpipe")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["infra", *(sys.argv[1:] if argv is None else argv)])
    handler: Handler = args.func
    return handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
