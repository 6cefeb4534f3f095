"""The `tickpipe` command: one entry point for every service, job and tool."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points
from pathlib import Path

SAMPLE = Path("data/sample/binance-spot-btcusdt-20240808.gz")
SCHEMAS = Path("schemas")


def _run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from tickpipe.app import run_service
    from tickpipe.settings import PlatformSettings

    try:
        settings = PlatformSettings()
    except ValidationError as exc:  # one line per bad setting; values are not echoed
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"tickpipe run {args.service}: invalid settings: {errors}", file=sys.stderr)
        return 2
    return run_service(args.service, settings)


def _demo(args: argparse.Namespace) -> int:
    from tickpipe.demo import main as demo_main

    return demo_main(args.data, args.kafka)


def _topics(args: argparse.Namespace) -> int:
    from tickpipe.bus.admin import create_topics
    from tickpipe.settings import PlatformSettings
    from tickpipe.topics import TOPICS, TopicNames

    settings = PlatformSettings()
    names = TopicNames(settings.topic_namespace)
    if args.action == "list":
        for t in TOPICS:
            print(f"{names.physical(t.name)}\tpartitions={t.partitions}\tkey={t.key}\t{t.config}")
        return 0
    try:
        result = create_topics(settings.kafka_bootstrap, names, args.replication_factor)
    except Exception as exc:  # refused, unreachable: one line, not librdkafka's traceback
        print(f"tickpipe topics: {settings.kafka_bootstrap}: {exc}", file=sys.stderr)
        return 1
    for topic, state in result.items():
        print(f"{topic}: {state}")
    return 0


def _schemas(args: argparse.Namespace) -> int:
    from tickpipe import schemas

    if args.action == "generate":
        for path in schemas.write(args.dir):
            print(path)
        return 0
    problems = schemas.drift(args.dir)
    for released in sorted((args.dir / "released").glob("*")):
        problems += [f"{released.name}/{p}" for p in schemas.check_against(released)]
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tickpipe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    from tickpipe.app import service_names

    run = sub.add_parser("run", help="run one service until stopped")
    run.add_argument(
        "service", choices=service_names(), help="an installed service (its settings: README)"
    )
    run.set_defaults(func=_run)

    demo = sub.add_parser("demo", help="the five services over the sample data, with a summary")
    demo.add_argument("--data", type=Path, default=SAMPLE)
    demo.add_argument(
        "--kafka",
        action="store_true",
        help="five processes over the local Kafka and Redis instead of in-memory",
    )
    demo.set_defaults(func=_demo)

    topics = sub.add_parser("topics", help="create or list the topics")
    topics.add_argument("action", choices=["create", "list"])
    topics.add_argument("--replication-factor", type=int, default=1)
    topics.set_defaults(func=_topics)

    schemas = sub.add_parser("schemas", help="generate or check the JSON Schemas")
    schemas.add_argument("action", choices=["generate", "check"])
    schemas.add_argument("--dir", type=Path, default=SCHEMAS)
    schemas.set_defaults(func=_schemas)

    from tickpipe.backtest.cli import add_parser as add_backtest
    from tickpipe.control import add_parser as add_control

    add_backtest(sub)

    add_control(sub)

    try:
        from tickpipe.infra.cli import add_parser as add_infra
    except ImportError:  # infra tooling is optional in slim images
        pass
    else:
        add_infra(sub)

    # Services contribute their own commands (e.g. inference's `train`).
    for ep in entry_points(group="tickpipe.commands"):
        ep.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
