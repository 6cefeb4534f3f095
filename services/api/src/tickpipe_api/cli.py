"""`tickpipe api ...` and `tickpipe signals tail`, contributed through `tickpipe.commands`."""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any


def _serve(args: argparse.Namespace) -> int:
    from tickpipe_api.app import serve

    return serve()


def _token(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from tickpipe_api.auth import Role, issue_token
    from tickpipe_api.settings import ApiSettings, describe

    # Any key the API would refuse is refused here, in one line and with no token printed.
    try:
        settings = ApiSettings()
        token = issue_token(
            settings.key_ring(),
            subject=args.sub,
            role=Role(args.role),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            now_s=int(time.time()),
            ttl_s=args.ttl,
            kid=args.kid,
        )
    except ValidationError as exc:
        raise SystemExit(f"api token: {describe(exc)}") from None
    except ValueError as exc:
        raise SystemExit(f"api token: {exc}") from None
    print(token)
    return 0


def _tail(args: argparse.Namespace) -> int:
    from tickpipe.app import make_kafka_bus
    from tickpipe.bus.base import BusError
    from tickpipe.settings import PlatformSettings
    from tickpipe_api.tail import parse_time, signals, tail

    platform = PlatformSettings()
    stop = threading.Event()
    # Always Kafka, whatever TICKPIPE_BUS says: no in-memory bus can be read from here. Its
    # transport comes from TICKPIPE_KAFKA_SECURITY_PROTOCOL & co.; a refusal is one line.
    bus = make_kafka_bus(platform, stop)
    source = signals(
        bus,
        parse_time(args.from_time) if args.from_time else None,
        stop,
        symbol=args.symbol,
    )
    try:
        tail(source, args.json)
    except KeyboardInterrupt:
        stop.set()
    except BusError as exc:
        raise SystemExit(f"signals tail: {exc}") from exc
    return 0


def add_parser(sub: Any) -> None:
    """`tickpipe api [serve|token]`."""
    api = sub.add_parser("api", help="the operator API and dashboard")
    api.set_defaults(func=_serve)
    actions = api.add_subparsers(dest="api_command")
    actions.add_parser("serve", help="serve the API (the default)").set_defaults(func=_serve)
    token = actions.add_parser("token", help="issue a JWT for local use (needs the API key)")
    token.add_argument("--sub", required=True, help="subject: who the token is for")
    token.add_argument(
        "--role",
        choices=["viewer", "operator", "admin"],
        default="viewer",
        help="what the token may do (default viewer: read only)",
    )
    token.add_argument("--ttl", type=int, default=8 * 3600, help="lifetime in seconds")
    token.add_argument(
        "--kid",
        help="sign with this key id (default: TICKPIPE_API_JWT_SIGNING_KID or the only key)",
    )
    token.set_defaults(func=_token)


def add_signals_parser(sub: Any) -> None:
    """`tickpipe signals tail [--symbol S] [--from TIME] [--json]`."""
    signals = sub.add_parser("signals", help="subscribe to signals.v1")
    actions = signals.add_subparsers(dest="signals_command", required=True)
    tail = actions.add_parser("tail", help="backfill from --from, then follow live")
    tail.add_argument("--symbol", help="only this `exchange:symbol`")
    tail.add_argument(
        "--from", dest="from_time", help="ISO-8601 time (UTC if naive) or epoch ms; default: now"
    )
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.set_defaults(func=_tail)
