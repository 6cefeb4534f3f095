"""One backtest: the five services' handlers in one process over historical data.

The ticks engine is `EmbeddedPipeline` (in-memory bus, simulated clock, seeded ids) with
the file source, so research runs the code that trades: the same handlers, the same
messages, the same topics as the Kafka deployment. The bars engine (`bars_engine`) runs
the handlers after the feature service over bars computed in polars.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from tickpipe.app import load_specs
from tickpipe.backtest.bars_engine import run_bars
from tickpipe.backtest.config import ENGINES, BacktestConfig, ConfigError
from tickpipe.backtest.dataset import Dataset, export
from tickpipe.backtest.result import DEFAULT_CAPITAL, BacktestResult, dumped, fills_of, marks_of
from tickpipe.cache.base import get_json
from tickpipe.embedded import EmbeddedPipeline
from tickpipe.summary import Summary, count_records
from tickpipe.topics import EXECUTIONS, FEATURES, ORDERS, TOPICS, TRADES

__all__ = ["BacktestResult", "fills_of", "marks_of", "run_backtest", "run_ticks"]


def run_backtest(
    config: BacktestConfig, on_progress: Callable[[int], None] | None = None
) -> BacktestResult:
    """Runs the configured engine; the bars engine over a dataset (see `prepared`)."""
    if config.engine == "bars":
        with prepared(config) as ready, rare_young_collections():
            return run_bars(ready, Dataset.open(ready.data[0]), on_progress)
    if config.engine != "ticks":
        raise ConfigError(f"engine {config.engine!r}: one of {ENGINES}")
    with rare_young_collections():
        return run_ticks(config, on_progress)


@contextmanager
def rare_young_collections(threshold: int = 50_000) -> Iterator[None]:
    """A backtest allocates millions of short-lived messages, which reference counting
    frees. At the default threshold (a young collection every 700 allocations) the cycle
    collector re-walked the survivors ~370 times on the benchmark, ~0.25 s of ~7; at 50,000,
    twice. Cycles are still collected, in larger batches."""
    old = gc.get_threshold()
    gc.set_threshold(threshold, *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


@contextmanager
def prepared(config: BacktestConfig) -> Iterator[BacktestConfig]:
    """`config` with its data as a dataset: as given, or exported by ingest to a temporary
    folder (removed afterwards) when it names market data files."""
    if len(config.data) == 1 and Dataset.is_dataset(config.data[0]):
        yield config
        return
    with tempfile.TemporaryDirectory(prefix="tickpipe-dataset-") as tmp:
        specs = load_specs()
        ingest = config.service_settings(specs)["ingest"]
        export(specs["ingest"], ingest, Path(tmp), [str(p) for p in config.data], config.seed)
        # The window and loops are in the dataset now.
        yield replace(config, data=(Path(tmp),), start=None, end=None, loops=1)


def run_ticks(
    config: BacktestConfig, on_progress: Callable[[int], None] | None = None
) -> BacktestResult:
    if any(Dataset.is_dataset(p) for p in config.data):
        raise ConfigError("a dataset folder is read by the bars engine: add --engine bars")
    specs = load_specs()
    settings = config.service_settings(specs)
    pipeline = EmbeddedPipeline(list(specs.values()), seed=config.seed, service_settings=settings)
    risk = settings.get("risk")
    capital = float(getattr(risk, "capital", DEFAULT_CAPITAL))
    account = str(getattr(risk, "account", "paper"))
    started = time.perf_counter()
    try:
        events = pipeline.run(on_progress=on_progress)
        elapsed = time.perf_counter() - started
        bus = pipeline.bus
        summary = Summary()
        for spec in TOPICS:
            count_records(summary, bus.records(spec.name))
        summary.pnl = get_json(pipeline.cache, f"pnl:{account}") or {}  # risk's books
        executions = bus.records(EXECUTIONS)
        return BacktestResult(
            orders=bus.records(ORDERS),
            executions=executions,
            fills=fills_of(executions),
            marks=marks_of(bus.records(FEATURES)),
            summary=summary,
            capital=capital,
            events=events,
            trades=summary.counts.get("trades", len(bus.records(TRADES))),
            elapsed_s=elapsed,
            settings=dumped(settings),
        )
    finally:
        pipeline.close()
