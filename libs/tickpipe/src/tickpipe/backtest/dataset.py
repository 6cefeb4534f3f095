"""Normalised market data on disk: what ingest would publish, as Parquet, for fast backtests.

`export` runs the ingest service's own source (the file replay with its validation,
normalisation and `ingest_seq` numbering) and writes every trade and quote it publishes;
dead letters and data-quality events are counted, not written. The bars engine reads the
result with polars, a chunk at a time, so a backtest over millions of records neither
parses text again nor holds it all in memory.

Layout: `<dir>/trades/part-NNNNN.parquet`, `<dir>/quotes/part-NNNNN.parquet`, and
`<dir>/dataset.json` (counts, sources, format version).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import polars as pl
from pydantic_settings import BaseSettings

from tickpipe.embedded import simulated_context
from tickpipe.messages import DataQuality, DeadLetter, QuoteTick, TradeTick
from tickpipe.service import ServiceSpec, Source

FORMAT = 1
MANIFEST = "dataset.json"
TRADES = {
    "exchange": pl.Categorical,
    "symbol": pl.Categorical,
    "seq": pl.Int64,
    "ts": pl.Int64,
    "price": pl.Float64,
    "size": pl.Float64,
    "is_buy": pl.Boolean,
}
QUOTES = {
    "exchange": pl.Categorical,
    "symbol": pl.Categorical,
    "seq": pl.Int64,
    "ts": pl.Int64,
    "bid": pl.Float64,
    "ask": pl.Float64,
    "bid_size": pl.Float64,
    "ask_size": pl.Float64,
}
PART_ROWS = 250_000


@dataclass(frozen=True)
class Dataset:
    path: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, path: Path) -> Dataset:
        manifest_path = path / MANIFEST
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a tickpipe dataset ({exc})") from exc
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{path}: dataset format {manifest.get('format')}, need {FORMAT}")
        return cls(path, manifest)

    @staticmethod
    def is_dataset(path: Path) -> bool:
        return (path / MANIFEST).is_file()

    def instruments(self) -> list[tuple[str, str]]:
        return [(str(e), str(s)) for e, s in self.manifest["instruments"]]

    def chunks(
        self, kind: str, exchange: str, symbol: str, columns: list[str]
    ) -> Iterator[pl.DataFrame]:
        """One instrument's trades or quotes in seq order, a part file at a time (parts are
        written in arrival order): memory holds one part."""
        mine = (pl.col("exchange") == exchange) & (pl.col("symbol") == symbol)
        for part in sorted((self.path / kind).glob("part-*.parquet")):
            yield pl.scan_parquet(part).filter(mine).select(columns).collect()


class _Writer:
    def __init__(self, folder: Path, schema: dict[str, Any]) -> None:
        self.folder = folder
        self.schema = schema
        self.rows: list[tuple[Any, ...]] = []
        self.parts = 0
        self.total = 0
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, row: tuple[Any, ...]) -> None:
        self.rows.append(row)
        if len(self.rows) >= PART_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        frame = pl.DataFrame(self.rows, schema=self.schema, orient="row")
        frame.write_parquet(self.folder / f"part-{self.parts:05d}.parquet", statistics=True)
        self.parts += 1
        self.total += len(self.rows)
        self.rows = []


def export(
    ingest: ServiceSpec[Any],
    settings: BaseSettings,
    out: Path,
    sources: list[str],
    seed: int = 0,
    on_progress: Callable[[int], None] | None = None,
) -> Dataset:
    """Run `ingest` with `settings` (a backtest's) and write what it publishes under `out`."""
    ctx = simulated_context(seed)
    if ingest.inputs:
        raise TypeError(f"{ingest.name} is not a source")
    source = cast(Source, ingest.build(ctx, settings))
    trades, quotes = _Writer(out / "trades", TRADES), _Writer(out / "quotes", QUOTES)
    instruments: dict[tuple[str, str], None] = {}
    dead_letters = quality = 0
    for n, emit in enumerate(source, 1):
        e = emit.event
        if isinstance(e, TradeTick):
            instruments[e.exchange, e.symbol] = None
            trades.add(
                (e.exchange, e.symbol, e.ingest_seq, e.ts_event, e.price, e.size, e.side == "buy")
            )
        elif isinstance(e, QuoteTick):
            instruments[e.exchange, e.symbol] = None
            quotes.add(
                (e.exchange, e.symbol, e.ingest_seq, e.ts_event, e.bid, e.ask, e.bid_size,
                 e.ask_size)
            )  # fmt: skip
        elif isinstance(e, DeadLetter):
            dead_letters += 1
        elif isinstance(e, DataQuality):
            quality += 1
        if on_progress and n % 10_000 == 0:
            on_progress(10_000)
    trades.flush()
    quotes.flush()
    manifest = {
        "format": FORMAT,
        "sources": sources,
        "instruments": sorted(instruments),
        "trades": trades.total,
        "quotes": quotes.total,
        "dead_letters": dead_letters,
        "quality_events": quality,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return Dataset(out, manifest)
