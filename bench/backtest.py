"""Backtest benchmark: ~1M real trades through features, ONNX inference, risk and paper fills.

The data is the hftbacktest Binance spot BTCUSDT capture (../shared/data/hftbacktest,
MIT; 2024-08-08 and -09, ~20k trades and ~73k quotes) replayed `--loops` times with
shifted timestamps, written once as a dataset by ingest's own code (`tickpipe dataset`,
cached under .tickpipe/bench/). Each run is a fresh `tickpipe backtest --engine bars`
process: its wall time (the engine's own clock, after imports) and its peak RSS. The
ticks engine runs on one loop for scale. Medians of `--runs`.

    .venv/bin/python bench/backtest.py [--loops 50] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

CAPTURES = ("btcusdt_20240808.gz", "btcusdt_20240809.gz")
CACHE = Path(".tickpipe/bench")
PROBE = """
import json, resource, sys
from pathlib import Path
from tickpipe.backtest.config import BacktestConfig
from tickpipe.backtest.engine import run_backtest
config = BacktestConfig(data=tuple(Path(p) for p in sys.argv[2:]), engine=sys.argv[1])
r = run_backtest(config)
print(json.dumps({"seconds": r.elapsed_s, "trades": r.trades, "events": r.events,
    "bars": r.summary.counts.get("bars", 0), "orders": len(r.orders), "fills": len(r.fills),
    "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def shared_data() -> Path:
    here = Path(__file__).resolve().parents[1]
    for root in (os.environ.get("TICKPIPE_SHARED_DATA"), here.parent / "shared" / "data"):
        if root and (Path(root) / "hftbacktest").is_dir():
            return Path(root) / "hftbacktest" / "examples" / "spot"
    sys.exit("bench/backtest.py: ../shared/data/hftbacktest not found (TICKPIPE_SHARED_DATA)")


def dataset(loops: int) -> Path:
    out = CACHE / f"btcusdt-x{loops}"
    if (out / "dataset.json").is_file():
        return out
    files = [str(shared_data() / name) for name in CAPTURES]
    cmd = [sys.executable, "-m", "tickpipe.cli", "dataset", "--loops", str(loops)]
    subprocess.run([*cmd, "--out", str(out), "--data", *files], check=True)
    return out


def probe(engine: str, data: list[str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, engine, *data], check=True, capture_output=True, text=True
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loops", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-ticks", action="store_true")
    args = parser.parse_args()
    big = dataset(args.loops)
    cases = [(f"bars engine, capture x{args.loops}", "bars", [str(big)])]
    if not args.skip_ticks:
        files = [str(shared_data() / name) for name in CAPTURES]
        cases.append(("ticks engine, capture x1", "ticks", files))
    table = Table(title="tickpipe backtest (median of runs)")
    for col in (
        "case",
        "trades",
        "events",
        "bars",
        "orders",
        "s",
        "trades/s",
        "events/s",
        "RSS MiB",
    ):
        table.add_column(col, justify="left" if col == "case" else "right")
    for name, engine, data in cases:
        runs = [probe(engine, data) for _ in range(args.runs)]
        s = statistics.median(r["seconds"] for r in runs)
        rss = statistics.median(r["rss_mib"] for r in runs)
        r0 = runs[0]
        table.add_row(
            name,
            f"{r0['trades']:,.0f}",
            f"{r0['events']:,.0f}",
            f"{r0['bars']:,.0f}",
            f"{r0['orders']:,.0f}",
            f"{s:.2f}",
            f"{r0['trades'] / s:,.0f}",
            f"{r0['events'] / s:,.0f}",
            f"{rss:.0f}",
        )
        Console(stderr=True).print(f"{name}: {[round(r['seconds'], 2) for r in runs]} s")
    Console(width=160).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
