"""Feature benchmark: the streaming path per trade and per bar, and the polars batch path.

Over the sample capture (1 s bars): the bar builder per trade, the feature engine per bar,
the whole feature handler per input event (pydantic events in, `FeatureVector`s out, the
cache write included), a handler snapshot, and the batch path's rows per second on the sample
and on the sample tiled end to end (`--tile`). Each figure is the median of `--repeats` runs.

    .venv/bin/python bench/features.py [--repeats 7] [--tile 40]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table

from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.marketdata import QuoteData, TradeData, read_binance_capture
from tickpipe.messages import QuoteTick, TradeTick
from tickpipe.topics import QUOTES, TRADES
from tickpipe_feature.handlers import FeatureHandler
from tickpipe_quant.bars import Bar, TimeBarBuilder
from tickpipe_quant.batch import feature_rows, frames
from tickpipe_quant.features import FeatureEngine

SAMPLE = Path("data/sample/binance-spot-btcusdt-20240808.gz")
S = 1_000_000_000


def _median_s(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _events(records: list[TradeData | QuoteData]) -> list[TradeTick | QuoteTick]:
    out: list[TradeTick | QuoteTick] = []
    for n, r in enumerate(records):
        common = {"event_id": f"E{n}", "ts_event": r.ts_event, "ts_init": r.ts_event}
        if isinstance(r, TradeData):
            out.append(
                TradeTick(
                    exchange=r.exchange,
                    symbol=r.symbol,
                    trade_id=r.trade_id,
                    price=r.price,
                    size=r.size,
                    side=r.side,
                    **common,
                )
            )
        else:
            out.append(
                QuoteTick(
                    exchange=r.exchange,
                    symbol=r.symbol,
                    bid=r.bid,
                    ask=r.ask,
                    bid_size=r.bid_size,
                    ask_size=r.ask_size,
                    **common,
                )
            )
    return out


def _tiled(trades: pl.DataFrame, quotes: pl.DataFrame, copies: int) -> tuple[pl.DataFrame, ...]:
    """The sample end to end `copies` times, each copy shifted past the previous one."""
    span = (int(trades["ts"].max()) // S + 2) * S - (int(trades["ts"].min()) // S) * S
    n = trades.height + quotes.height
    tiles_t, tiles_q = [], []
    for k in range(copies):
        tiles_t.append(trades.with_columns(pl.col("seq") + k * n, pl.col("ts") + k * span))
        tiles_q.append(quotes.with_columns(pl.col("seq") + k * n))
    return pl.concat(tiles_t), pl.concat(tiles_q)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--tile", type=int, default=40, help="copies of the sample for batch")
    args = parser.parse_args()

    records = [r for r in read_binance_capture(SAMPLE) if isinstance(r, (TradeData, QuoteData))]
    trades = [r for r in records if isinstance(r, TradeData)]
    bars: list[Bar] = []
    builder = TimeBarBuilder(S)
    for t in trades:
        bars += builder.add(t.ts_event, t.price, t.size, t.side == "buy")
    events = _events(records)

    def build_bars() -> None:
        b = TimeBarBuilder(S)
        for t in trades:
            b.add(t.ts_event, t.price, t.size, t.side == "buy")

    def engine_bars() -> None:
        e = FeatureEngine()
        e.on_quote(61_000.0, 61_000.01, 1.0, 1.0)
        for bar in bars:
            e.on_bar(bar)

    def handler() -> FeatureHandler:
        clock = SimClock(0)
        return FeatureHandler(EventIds(clock, seed=1), MemoryCache(clock), S)

    def handle_all(h: FeatureHandler | None = None) -> FeatureHandler:
        h = h or handler()
        for ev in events:
            h.handle(ev, TRADES if isinstance(ev, TradeTick) else QUOTES, ev.ts_event)
        return h

    warm = handle_all()
    saved = warm.snapshot()
    trade_frame, quote_frame = frames(records)
    big_trades, big_quotes = _tiled(trade_frame, quote_frame, args.tile)
    r = args.repeats

    rows: list[tuple[str, str, str]] = []
    t = _median_s(build_bars, r)
    rows.append(
        ("bar builder", f"{t / len(trades) * 1e6:.2f} µs / trade", f"{len(trades):,} trades")
    )
    t = _median_s(engine_bars, r)
    rows.append(
        (
            "feature engine (22 features)",
            f"{t / len(bars) * 1e6:.2f} µs / bar",
            f"{len(bars):,} bars",
        )
    )
    t = _median_s(handle_all, r)
    rows.append(
        (
            "feature handler, all inputs",
            f"{t / len(events) * 1e6:.2f} µs / event",
            f"{len(events):,} events",
        )
    )
    rows.append(
        (
            "feature handler per trade, quotes included",
            f"{t / len(trades) * 1e6:.2f} µs / trade",
            "",
        )
    )
    t = _median_s(warm.snapshot, r)
    rows.append(("handler snapshot", f"{t * 1e6:.0f} µs", f"{len(saved):,} bytes"))
    t = _median_s(lambda: handler().restore(saved), r)
    rows.append(("handler restore", f"{t * 1e6:.0f} µs", ""))
    t = _median_s(lambda: feature_rows(trade_frame, quote_frame, S), r)
    rows.append(
        ("batch (polars), sample", f"{trade_frame.height / t:,.0f} trades/s", f"{t * 1e3:.1f} ms")
    )
    t = _median_s(lambda: feature_rows(big_trades, big_quotes, S), r)
    rows.append(
        (
            f"batch (polars), sample ×{args.tile}",
            f"{big_trades.height / t:,.0f} trades/s",
            f"{t * 1e3:.1f} ms, {big_trades.height + big_quotes.height:,} rows in",
        )
    )

    table = Table(title=f"tickpipe features — {SAMPLE.name}, 1 s bars, median of {r}")
    table.add_column("path")
    table.add_column("cost", justify="right")
    table.add_column("over", justify="right")
    for row in rows:
        table.add_row(*row)
    Console(width=120).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
