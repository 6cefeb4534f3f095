"""One backtest: the five services' handlers in one process over historical data.

This is `EmbeddedPipeline` (in-memory bus, simulated clock, seeded ids) with the file
source, so research runs the code that trades: the same handlers, the same messages, the
same topics as the Kafka deployment.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

import orjson

from tickpipe.app import SERVICE_ORDER, load_specs
from tickpipe.backtest.config import (
    ENGINES,
    BacktestConfig,
    ConfigError,
    environment,
    settings_class,
    validate,
)
from tickpipe.backtest.report import Fill, Mark
from tickpipe.bus.base import Record
from tickpipe.cache.base import get_json
from tickpipe.embedded import EmbeddedPipeline
from tickpipe.runner import EVENT_TYPE
from tickpipe.summary import Summary, count_records
from tickpipe.topics import EXECUTIONS, FEATURES, ORDERS, TOPICS, TRADES

DEFAULT_CAPITAL = 100_000.0


@dataclass
class BacktestResult:
    orders: list[Record]
    executions: list[Record]
    fills: list[Fill]
    marks: list[Mark]
    summary: Summary
    capital: float
    events: int  # market data records the source published
    trades: int
    elapsed_s: float
    settings: dict[str, str] = field(default_factory=dict)

    def output_bytes(self) -> bytes:
        """Orders then executions as published (key and payload): what determinism compares."""
        out = bytearray()
        for r in (*self.orders, *self.executions):
            out += (r.key or b"") + b"\t" + r.value + b"\n"
        return bytes(out)


def run_backtest(
    config: BacktestConfig, on_progress: Callable[[int], None] | None = None
) -> BacktestResult:
    """Runs the configured engine; the bars engine over a dataset (see `prepared`)."""
    if config.engine == "bars":
        from tickpipe.backtest.bars_engine import run_bars  # it builds on this module
        from tickpipe.backtest.dataset import Dataset

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
    from tickpipe.backtest.dataset import Dataset, export

    if len(config.data) == 1 and Dataset.is_dataset(config.data[0]):
        yield config
        return
    with tempfile.TemporaryDirectory(prefix="tickpipe-dataset-") as tmp:
        specs = load_specs()
        with environment(config.env()):
            export(specs["ingest"], Path(tmp), [str(p) for p in config.data], config.seed)
        # The window and loops are in the dataset now.
        yield replace(config, data=(Path(tmp),), start=None, end=None, loops=1)


def run_ticks(
    config: BacktestConfig, on_progress: Callable[[int], None] | None = None
) -> BacktestResult:
    from tickpipe.backtest.dataset import Dataset

    if any(Dataset.is_dataset(p) for p in config.data):
        raise ConfigError("a dataset folder is read by the bars engine: add --engine bars")
    specs = load_specs()
    validate(config.settings, specs)
    env = config.env()
    with environment(env):
        pipeline = EmbeddedPipeline([specs[n] for n in SERVICE_ORDER], seed=config.seed)
        risk_class = settings_class(specs["risk"])
        risk = risk_class() if risk_class else None
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
            settings=env,
        )
    finally:
        pipeline.close()


def fills_of(executions: list[Record]) -> list[Fill]:
    fills = []
    for r in executions:
        if r.header(EVENT_TYPE) != b"execution":
            continue
        e = orjson.loads(r.value)
        qty = Decimal(str(e.get("last_qty", "0")))
        if qty == 0 or e.get("last_price") is None:
            continue
        fills.append(
            Fill(
                ts_ns=int(e["ts_event"]),
                instrument=f"{e['exchange']}:{e['symbol']}",
                side=str(e["side"]),
                qty=float(qty),
                price=float(Decimal(str(e["last_price"]))),
                fee=float(Decimal(str(e.get("fee", "0")))),
            )
        )
    return fills


def marks_of(features: list[Record]) -> list[Mark]:
    """Each bar's close (from the feature vectors) marks the book."""
    marks = []
    for r in features:
        f = orjson.loads(r.value)
        marks.append(Mark(int(f["ts_event"]), f"{f['exchange']}:{f['symbol']}", float(f["close"])))
    return marks
