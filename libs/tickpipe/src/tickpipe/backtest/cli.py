"""`tickpipe backtest`: one run with a report, or a parameter sweep across cores."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from tickpipe.backtest.config import (
    ENGINES,
    BacktestConfig,
    ConfigError,
    load_file,
    sections,
    split_key,
)

if TYPE_CHECKING:
    from tickpipe.marketdata import QuoteData, TradeData

SAMPLE = Path("data/sample/binance-spot-btcusdt-20240808.gz")
COLUMNS_HELP = (
    "name a table's columns where they are not known names, "
    "e.g. time=ts_ms,price=px,amount=qty,side=side (docs/data-formats.md)"
)


def columns_arg(text: str) -> dict[str, str]:
    """`--columns time=ts_ms,price=px`: checked here, so a typo is a usage error."""
    from tickpipe.marketdata import parse_columns

    try:
        return parse_columns(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _value(text: str) -> Any:
    """`--set risk.capital=5e4`: JSON when it parses (numbers, booleans, lists), else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _assignment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected service.setting=value")
    try:
        split_key(key)
    except ConfigError:  # argparse would say only "invalid _assignment value"
        service, dot, name = key.partition(".")
        known = ", ".join(sections())
        if not dot or not name:
            msg = f"{text!r}: expected service.setting=value, service one of {known}"
        else:
            msg = f"{text!r}: unknown service {service!r}; known: {known}"
        raise argparse.ArgumentTypeError(msg) from None
    return key, value


def _time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        msg = f"{text!r}: expected an ISO time, e.g. 2024-08-08T23:55"
        raise argparse.ArgumentTypeError(msg) from None


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "backtest",
        help="the five services over historical data, in one process, with a report",
        description="Runs the services' handlers on the in-memory bus with a simulated clock. "
        "With --sweep (or a [sweep] table in --config) runs a grid of settings in parallel.",
    )
    p.add_argument("--data", type=Path, nargs="+", default=[SAMPLE], help="market data file(s)")
    p.add_argument("--columns", type=columns_arg, help=COLUMNS_HELP)
    p.add_argument("--from", dest="start", type=_time, help="start time (UTC), inclusive")
    p.add_argument("--to", dest="end", type=_time, help="end time (UTC), exclusive")
    p.add_argument("--model", help="model VERSION or NAME/VERSION in the registry, or a folder")
    p.add_argument("--config", type=Path, help="TOML: [risk], [inference]... tables; [sweep]")
    p.add_argument(
        "--set", type=_assignment, action="append", default=[], help="service.setting=value"
    )
    p.add_argument(
        "--sweep",
        type=_assignment,
        action="append",
        default=[],
        help="service.setting=v1,v2,... (repeat for a grid)",
    )
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="ticks",
        help="ticks: every trade and quote through all five services (any settings); "
        "bars: bars and features in polars, the rest per bar (market orders, no latency)",
    )
    p.add_argument("--loops", type=int, default=1, help="replay the data N times, shifted")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="sweep processes")
    p.add_argument("--seed", type=int, default=0, help="seed of the event ids")
    p.add_argument("--json", dest="json_out", type=Path, help="write the report as JSON here")
    p.add_argument("--html", type=Path, help="write report.html and PNG plots into this folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=main)

    d = sub.add_parser(
        "dataset",
        help="normalise market data through ingest into a Parquet dataset (for --engine bars)",
    )
    d.add_argument("--data", type=Path, nargs="+", required=True, help="market data file(s)")
    d.add_argument("--columns", type=columns_arg, help=COLUMNS_HELP)
    d.add_argument("--out", type=Path, required=True, help="the dataset folder to write")
    d.add_argument("--from", dest="start", type=_time, help="start time (UTC), inclusive")
    d.add_argument("--to", dest="end", type=_time, help="end time (UTC), exclusive")
    d.add_argument("--loops", type=int, default=1, help="replay the data N times, shifted")
    d.set_defaults(func=dataset_main)


def dataset_main(args: argparse.Namespace) -> int:
    from tickpipe.app import load_specs
    from tickpipe.backtest.dataset import export
    from tickpipe.cli import missing_data

    if problem := missing_data("dataset", args.data):
        print(problem, file=sys.stderr)
        return 2
    if args.out.exists() and any(args.out.iterdir()):
        print(f"tickpipe dataset: {args.out} is not empty", file=sys.stderr)
        return 2
    config = BacktestConfig(data=tuple(args.data), start=args.start, end=args.end, loops=args.loops)
    if args.columns:
        config = config.with_settings({"ingest.columns": args.columns})
    specs = load_specs()
    try:
        settings = config.service_settings(specs)["ingest"]
    except ConfigError as exc:
        print(f"tickpipe dataset: {exc}", file=sys.stderr)
        return 2
    with _progress(quiet=False) as progress:
        task = progress.add_task("ingest", total=None)
        dataset = export(
            specs["ingest"],
            settings,
            args.out,
            [str(p) for p in args.data],
            on_progress=lambda n: progress.advance(task, n),
        )
    m = dataset.manifest
    print(
        f"{args.out}: {m['trades']:,} trades, {m['quotes']:,} quotes, "
        f"{m['dead_letters']:,} dead letters, {len(m['instruments'])} instrument(s)"
    )
    return 0


def _progress(quiet: bool) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,} records"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=quiet,
    )


def main(args: argparse.Namespace) -> int:
    try:
        settings, axes = load_file(args.config) if args.config else ({}, {})
        config = BacktestConfig(
            data=tuple(args.data),
            start=args.start,
            end=args.end,
            model=args.model,
            settings=settings,
            seed=args.seed,
            engine=args.engine,
            loops=args.loops,
        ).with_settings(
            {
                **({"ingest.columns": args.columns} if args.columns else {}),
                **{k: _value(v) for k, v in args.set},
            }
        )
        for key, values in args.sweep:
            axes[key] = [_value(v) for v in values.split(",")]
        missing = [str(p) for p in config.data if not p.exists()]
        if missing:
            raise ConfigError(f"--data {', '.join(missing)}: no such file (check the path)")
        if axes:
            if config.start is not None or config.end is not None:
                _check_window(config)  # before N workers each find nothing
            return _sweep(config, axes, args)
        return _single(config, args)
    except ConfigError as exc:
        print(f"tickpipe backtest: {exc}", file=sys.stderr)
        return 2


def _single(config: BacktestConfig, args: argparse.Namespace) -> int:
    from tickpipe.backtest.engine import run_backtest
    from tickpipe.backtest.render import print_report, write_html
    from tickpipe.backtest.report import build_report, write_json

    err = Console(stderr=True)
    with _progress(args.quiet) as progress:
        unit = "bars" if config.engine == "bars" else "records"
        task = progress.add_task(f"backtest ({unit})", total=None)
        result = run_backtest(config, on_progress=lambda n: progress.advance(task, n))
    if result.events == 0:  # an empty report would look like a strategy that did nothing
        raise ConfigError(_no_data(config))
    report = build_report(result.fills, result.marks, result.capital)
    console = Console()
    rate = result.trades / result.elapsed_s if result.elapsed_s else 0.0
    console.print(
        f"{result.events:,} market records ({result.trades:,} trades) in {result.elapsed_s:.1f} s"
        f" ({rate:,.0f} trades/s): {result.summary.counts.get('signals', 0):,} signals, "
        f"{len(result.orders):,} orders, {len(result.fills):,} fills"
    )
    print_report(report, console)
    if args.json_out:
        write_json(report, args.json_out)
        err.print(f"report: {args.json_out}")
    if args.html:
        err.print(f"report: {write_html(report, args.html)}")
    return 0


def _utc(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _window(config: BacktestConfig) -> str:
    start = config.start.isoformat() if config.start else "the start"
    end = config.end.isoformat() if config.end else "the end"
    return f"from {start} to {end}"


def _records(config: BacktestConfig, path: Path) -> Iterator[TradeData | QuoteData]:
    """A data file's records as ingest reads them (its format, exchange, symbol and column
    settings); ValueError when they cannot be read."""
    from tickpipe.marketdata import ParseError, read_market_data

    ingest = config.overlay()["ingest"]
    items = read_market_data(
        path,
        str(ingest.get("format") or "auto"),
        exchange=ingest.get("exchange"),
        symbol=ingest.get("symbol"),
        columns=ingest.get("columns") or None,
    )
    return (item for item in items if not isinstance(item, ParseError))


def _span(config: BacktestConfig) -> tuple[int, int] | None:
    """The first and last exchange time in the data (files or a dataset folder)."""
    from tickpipe.backtest.dataset import Dataset

    lo: int | None = None
    hi: int | None = None
    for path in config.data:
        if Dataset.is_dataset(path):
            import polars as pl

            parts = [*path.glob("trades/part-*.parquet"), *path.glob("quotes/part-*.parquet")]
            if not parts:
                continue
            row = pl.scan_parquet(parts).select(pl.col("ts").min(), pl.col("ts").max()).collect()
            first, last = row.row(0)
            if first is None or last is None:
                continue
            lo = first if lo is None else min(lo, first)
            hi = last if hi is None else max(hi, last)
            continue
        for item in _records(config, path):
            t = item.ts_event
            lo = t if lo is None or t < lo else lo
            hi = t if hi is None or t > hi else hi
    return None if lo is None or hi is None else (lo, hi)


def _no_data(config: BacktestConfig) -> str:
    """Why the backtest saw no market data: the window against the data's time span."""
    files = ", ".join(str(p) for p in config.data)
    try:
        span = _span(config)
    except ValueError:  # a layout that needs [ingest] settings to read: no span to give
        span = None
    if span is None:
        return f"no market data in {files} (is it empty, or all dead letters?)"
    loops = f", replayed {config.loops} times later" if config.loops > 1 else ""
    return (
        f"no market data {_window(config)}: {files} spans {_utc(span[0])} to "
        f"{_utc(span[1])}{loops} (choose --from/--to inside it)"
    )


def _check_window(config: BacktestConfig) -> None:
    """Raise ConfigError when no record of the data files falls in the window."""
    from tickpipe.backtest.dataset import Dataset

    if config.loops != 1 or any(Dataset.is_dataset(p) for p in config.data):
        return  # later loops are shifted; a dataset already holds its window
    start = _epoch_ns(config.start)
    end = _epoch_ns(config.end)
    try:
        for path in config.data:
            for item in _records(config, path):
                if (start is None or item.ts_event >= start) and (
                    end is None or item.ts_event < end
                ):
                    return
    except ValueError:
        return  # a layout ingest reads with settings: the run itself will say
    raise ConfigError(_no_data(config))


def _epoch_ns(t: datetime | None) -> int | None:
    if t is None:
        return None
    t = t if t.tzinfo else t.replace(tzinfo=UTC)  # naive times are UTC, as ingest reads them
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1_000


def _sweep(config: BacktestConfig, axes: dict[str, list[Any]], args: argparse.Namespace) -> int:
    from tickpipe.backtest.sweep import grid, run_sweep

    err = Console(stderr=True)
    n = len(grid(axes))
    workers = max(1, min(args.workers, n))
    err.print(f"sweep: {n} points on {workers} worker(s)")
    with ExitStack() as stack:
        if config.engine == "bars":  # one dataset for every point
            from tickpipe.backtest.engine import prepared

            config = stack.enter_context(prepared(config))
        points = run_sweep(
            config,
            axes,
            workers,
            on_done=lambda p: err.print(f"  done {p.params}", highlight=False),
        )
    columns = (
        "final_equity",
        "total_return",
        "excess_return",
        "sharpe",
        "sortino",
        "max_drawdown",
        "turnover",
        "total_fees",
        "hit_rate",
    )
    table = Table(title=f"sweep over {', '.join(sorted(axes))}")
    for name in sorted(axes):
        table.add_column(name)
    for c in ("orders", "fills", *columns):
        table.add_column(c, justify="right")
    for p in points:
        values = [_cell(p.metrics.get(c)) for c in columns]
        table.add_row(
            *(str(p.params[k]) for k in sorted(axes)), str(p.orders), str(p.fills), *values
        )
    Console().print(table)
    if args.json_out:
        rows = [
            {"params": p.params, "orders": p.orders, "fills": p.fills, **p.metrics} for p in points
        ]
        args.json_out.write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")
        err.print(f"sweep results: {args.json_out}")
    return 0


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}"
    if isinstance(value, dict):  # e.g. max drawdown {fraction, amount, ...}
        return _cell(value.get("fraction", value.get("amount")))
    return "—" if value is None else str(value)
