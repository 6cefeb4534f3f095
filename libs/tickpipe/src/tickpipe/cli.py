"""The `tickpipe` command: one entry point for every service, job and tool.

A mistake (a missing or corrupt file, a bad setting, a server that does not answer) ends
the command with one line on stderr and a non-zero exit: 2 for what it was given, 1 for
what failed while it ran. `--debug` (or TICKPIPE_DEBUG=1) shows the traceback instead.
See docs/cli.md.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import tempfile
import traceback
import zlib
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, cast

if TYPE_CHECKING:
    from pydantic import ValidationError

SAMPLE = Path("data/sample/binance-spot-btcusdt-20240808.gz")
SCHEMAS = Path("schemas")

USAGE = 2  # the command was given something wrong: arguments, files, settings
FAILED = 1  # it failed while running: a server, the network, an unexpected error
INTERRUPTED = 130  # Ctrl-C


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that points at `--help`, not the usage
    block; every subcommand's parser is one too (argparse uses the parent's class)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def missing_data(command: str, paths: Sequence[Path]) -> str | None:
    """One line for the market data files that do not exist, or None when they all do."""
    missing = [str(p) for p in paths if not p.exists()]
    if not missing:
        return None
    hint = (
        "the sample is relative to the repository root: run from there or pass --data FILE"
        if any(Path(m) == SAMPLE for m in missing)
        else "check the path"
    )
    return f"tickpipe {command}: --data {', '.join(missing)}: no such file ({hint})"


def _run(args: argparse.Namespace) -> int:
    from tickpipe.app import run_service
    from tickpipe.settings import PlatformSettings

    # Invalid settings: one line naming each variable (`main`), values not echoed.
    return run_service(args.service, PlatformSettings())


def _demo(args: argparse.Namespace) -> int:
    from tickpipe.demo import main as demo_main

    if problem := missing_data("demo", [args.data]):
        print(problem, file=sys.stderr)
        return USAGE

    return demo_main(args.data, args.kafka, args.columns)


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


def _version() -> str:
    try:
        return version("tickpipe")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tickpipe", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an error, show the traceback instead of one line (or TICKPIPE_DEBUG=1)",
    )
    # Subcommand parsers are `Parser`s too; typed as argparse's for the modules adding them.
    sub = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", required=True),
    )

    from tickpipe.app import service_names

    run = sub.add_parser("run", help="run one service until stopped")
    run.add_argument(
        "service", choices=service_names(), help="an installed service (its settings: README)"
    )
    run.set_defaults(func=_run)

    demo = sub.add_parser("demo", help="the five services over the sample data, with a summary")
    demo.add_argument(
        "--data", type=Path, default=SAMPLE, help=f"market data file (default: {SAMPLE})"
    )
    demo.add_argument(
        "--kafka",
        action="store_true",
        help="five processes over the local Kafka and Redis instead of in-memory",
    )
    from tickpipe.backtest.cli import COLUMNS_HELP, columns_arg

    demo.add_argument("--columns", type=columns_arg, help=COLUMNS_HELP)
    demo.set_defaults(func=_demo)

    topics = sub.add_parser("topics", help="create or list the topics")
    topics.add_argument(
        "action",
        choices=["create", "list"],
        help="create: every topic on TICKPIPE_KAFKA_BOOTSTRAP (idempotent); list: print them",
    )
    topics.add_argument(
        "--replication-factor", type=int, default=1, help="copies of each partition (default 1)"
    )
    topics.set_defaults(func=_topics)

    schemas = sub.add_parser("schemas", help="generate or check the JSON Schemas")
    schemas.add_argument(
        "action",
        choices=["generate", "check"],
        help="generate: write them; check: fail on drift from the code or a released version",
    )
    schemas.add_argument(
        "--dir", type=Path, default=SCHEMAS, help=f"the schema folder (default: {SCHEMAS})"
    )
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
    _debug_everywhere(parser)
    return parser


def _debug_everywhere(parser: argparse.ArgumentParser) -> None:
    """`--debug` after a subcommand too (`tickpipe backtest --debug`). SUPPRESS: a
    subcommand that was not given it leaves the top-level value alone."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if "--debug" not in child._option_string_actions:
                    child.add_argument(
                        "--debug",
                        action="store_true",
                        default=argparse.SUPPRESS,
                        help="on an error, show the traceback instead of one line",
                    )
                _debug_everywhere(child)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("TICKPIPE_DEBUG", "") not in ("", "0")
    if debug:
        code: int = args.func(args)
        return code
    command = f"tickpipe {args.command}"
    if args.command == "run":
        command += f" {args.service}"
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:  # SystemExit (a command's own one line) passes through
        known = explain(exc, args)
        if known is not None:
            status, line = known
            print(f"{command}: {line}", file=sys.stderr)
            return status
        if args.command == "run":  # a service's log is where its crash is diagnosed
            raise
        print(f"{command}: {unexpected(exc)}", file=sys.stderr)
        return FAILED
    return code


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _data_paths(args: argparse.Namespace) -> list[str]:
    data = getattr(args, "data", None)
    if data is None:
        return []
    return [str(p) for p in (data if isinstance(data, list | tuple) else [data])]


def _compressed_file(exc: BaseException, args: argparse.Namespace) -> str:
    """The file a decompression error came from: the GzipFile being read when it was
    raised, else the command's --data files (a sweep's workers lose the traceback)."""
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        reader = frame.f_locals.get("self")
        if isinstance(reader, gzip.GzipFile) and isinstance(reader.name, str) and reader.name:
            return reader.name
    paths = _data_paths(args)
    if len(paths) == 1:
        return paths[0]
    return f"one of {', '.join(paths)}" if paths else "a compressed input"


def _env_prefix(exc: BaseException) -> str | None:
    """The environment prefix of the settings class whose validation raised `exc`."""
    from pydantic_settings import BaseSettings

    for frame, _ in traceback.walk_tb(exc.__traceback__):
        for name in ("self", "__pydantic_self__"):
            obj = frame.f_locals.get(name)
            if isinstance(obj, BaseSettings):
                return str(obj.model_config.get("env_prefix") or "")
    return None


def _invalid(exc: ValidationError) -> str:
    """One entry per bad value, never the value itself: some settings are secrets."""
    prefix = _env_prefix(exc)
    if prefix is None:
        errors = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()
        )
        return f"invalid {exc.title}: {errors}"
    errors = "; ".join(
        f"{prefix.upper()}{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}"
        if e["loc"]
        else e["msg"]
        for e in exc.errors()
    )
    return f"invalid settings: {errors} (fix it in the environment)"


def explain(exc: BaseException, args: argparse.Namespace) -> tuple[int, str] | None:
    """The exit status and one line for an error a user can fix, or None for a bug."""
    from pydantic import ValidationError

    from tickpipe.bus.base import BusError
    from tickpipe.bus.security import SecurityConfigError
    from tickpipe.cache.base import CacheUnavailable
    from tickpipe.cache.redis import RedisAccessError
    from tickpipe.service import SettingsError

    if isinstance(exc, EOFError | gzip.BadGzipFile | zlib.error):
        what = _one_line(exc) or type(exc).__name__
        where = _compressed_file(exc, args)
        return USAGE, f"{where}: {what} (the file is truncated or corrupt: copy it again)"
    if isinstance(exc, FileNotFoundError | NotADirectoryError | IsADirectoryError):
        where = exc.filename or "?"
        return USAGE, f"{where}: {exc.strerror or _one_line(exc)} (check the path)"
    if isinstance(exc, PermissionError):
        where = exc.filename or "?"
        return USAGE, f"{where}: permission denied (check its owner and mode)"
    if isinstance(exc, ValidationError):
        return USAGE, _invalid(exc)
    if isinstance(exc, SettingsError | SecurityConfigError):
        return USAGE, f"invalid settings: {_one_line(exc)}"
    if isinstance(exc, BusError):
        return FAILED, (
            f"Kafka: {_one_line(exc)} (is it running and are TICKPIPE_KAFKA_* right? "
            "`tickpipe infra status`)"
        )
    if isinstance(exc, CacheUnavailable | RedisAccessError):
        return FAILED, (
            f"Redis: {_one_line(exc)} (is it running and is TICKPIPE_REDIS_URL right? "
            "`tickpipe infra status`)"
        )
    try:
        from tickpipe.infra._process import InfraError
    except ImportError:  # infra tooling is optional in slim images
        pass
    else:
        if isinstance(exc, InfraError):
            return FAILED, f"local infra: {_one_line(exc)}"
    from tickpipe.backtest.config import ConfigError

    if isinstance(exc, ConfigError):
        return USAGE, _one_line(exc)
    return None


def unexpected(exc: BaseException) -> str:
    """One line for a bug: its type and message, and where its traceback went (a file, so
    that a long run need not be repeated with --debug to report it)."""
    text = "".join(traceback.format_exception(exc))
    try:
        fd, path = tempfile.mkstemp(prefix="tickpipe-error-", suffix=".txt")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        where = f"traceback in {path}; run with --debug to see it here"
    except OSError:  # nowhere to write it: never lose it
        sys.stderr.write(text)
        where = "traceback above"
    return f"unexpected error: {type(exc).__name__}: {_one_line(exc)} ({where})"


if __name__ == "__main__":
    sys.exit(main())
