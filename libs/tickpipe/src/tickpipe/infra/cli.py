"""`tickpipe infra up|down|status|install`: the local Kafka + Redis pair, no Docker."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tickpipe.infra import secure
from tickpipe.infra._process import InfraError
from tickpipe.infra.jars import ensure_kafka_jars, java_executable
from tickpipe.infra.manager import (
    DEFAULT_STATE_DIR,
    Endpoints,
    _read_state,
    _resolve,
    down,
    status,
    up,
)
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
            default=None,
            help=f"where pids, ports, configs, data and logs live (default: {DEFAULT_STATE_DIR}"
            f", with --secure {secure.DEFAULT_SECURE_STATE_DIR})",
        )
        parser.add_argument(
            "--secure",
            action="store_true",
            help="Kafka over SASL_SSL (SCRAM, TLS 1.3) and mTLS with ACLs, Redis over TLS with "
            "ACL users (README: Security)",
        )
        return parser

    start = with_state_dir(actions.add_parser("up", help="start both (idempotent)"))
    start.add_argument("--kafka-port", type=int, help="default 9092, or a free port if busy")
    start.add_argument("--controller-port", type=int, help="default 9093, or a free port")
    start.add_argument("--redis-port", type=int, help="default 6379, or a free port if busy")
    start.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for Kafka")
    start.add_argument("--mtls-port", type=int, help="--secure: the mTLS listener (default 9095)")
    start.add_argument(
        "--namespace",
        default=None,
        help="--secure: the topic namespace the ACLs are for (default: TICKPIPE_TOPIC_NAMESPACE)",
    )
    start.add_argument(
        "--as",
        dest="principal",
        default=secure.ADMIN,
        help="--secure: print the settings of this principal (a service, api, admin)",
    )
    start.add_argument(
        "--mtls", action="store_true", help="--secure: print settings for the mTLS listener"
    )
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


def _state_dir(args: argparse.Namespace) -> Path:
    if args.state_dir is not None:
        return Path(args.state_dir)
    return secure.DEFAULT_SECURE_STATE_DIR if args.secure else DEFAULT_STATE_DIR


def _holds_secure(state_dir: Path) -> bool:
    return "secure" in _read_state(_resolve(state_dir))


@_guarded
def _up(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    if args.secure:
        return _up_secure(args, state_dir)
    if _holds_secure(state_dir):
        raise InfraError(f"{state_dir} holds a secure pair: add --secure")
    found = up(
        state_dir,
        kafka_port=args.kafka_port,
        controller_port=args.controller_port,
        redis_port=args.redis_port,
        timeout_s=args.timeout,
    )
    current = status(state_dir)
    print(_describe("kafka", current["kafka"], "bootstrap"))
    print(_describe("redis", current["redis"], "url"))
    _print_endpoints(found)
    return 0


def _up_secure(args: argparse.Namespace, state_dir: Path) -> int:
    namespace = args.namespace
    if namespace is None:
        namespace = os.environ.get("TICKPIPE_TOPIC_NAMESPACE", "")
    found = secure.up(
        state_dir,
        kafka_port=args.kafka_port,
        mtls_port=args.mtls_port,
        controller_port=args.controller_port,
        redis_port=args.redis_port,
        namespace=namespace,
        timeout_s=max(args.timeout, 90.0),
    )
    env = found.env(args.principal, mtls=args.mtls)  # refuses an unknown principal
    _print_secure(secure.status(state_dir))
    others = ", ".join(p for p in found.files.principals if p != args.principal)
    print(f"# settings of {args.principal!r} (`--as NAME` for another: {others}); secrets by file")
    for key, value in env.items():
        print(f"export {key}={value}")
    return 0


def _print_secure(current: dict[str, Any]) -> None:
    kafka, redis = current["kafka"], current["redis"]
    kafka_where = f"{kafka.get('bootstrap', '-')} SASL_SSL, {kafka.get('mtls_bootstrap', '-')} mTLS"
    print(_describe("kafka", {**kafka, "where": kafka_where}, "where"))
    print(_describe("redis", {**redis, "where": f"{redis.get('url', '-')} TLS"}, "where"))


@_guarded
def _down(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    stop = secure.down if args.secure or _holds_secure(state_dir) else down
    for name, pid in stop(state_dir, purge=args.purge).items():
        print(f"{name}: stopped (pid {pid})" if pid else f"{name}: not running")
    return 0


@_guarded
def _status(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    if args.secure or _holds_secure(state_dir):
        current = secure.status(state_dir)
        healthy = bool(current["kafka"]["healthy"] and current["redis"]["healthy"])
        if args.json:
            print(json.dumps(current, indent=2, sort_keys=True))
        else:
            _print_secure(current)
        return 0 if healthy else 1
    current = status(state_dir)
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
