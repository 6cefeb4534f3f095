"""Backtest benchmark: ~1M real trades through features, ONNX inference, risk and paper fills.

The data is the hftbacktest Binance spot BTCUSDT capture (../shared/data/hftbacktest,
MIT; 2024-08-08 and -09, ~20k trades and ~73k quotes) replayed `--loops` times with
shifted timestamps, written once as a dataset by ingest's own code (`tickpipe dataset`,
cached under .tickpipe/bench/). Each run is a fresh `tickpipe backtest --engine bars`
process: its wall time (the engine's own clock, after imports) and its peak RSS. The
ticks engine runs on one loop for scale. Medians of `--runs`.

`--python PATH` (repeatable) also runs the bars case under another CPython, in an
environment synced from the same lock (.tickpipe/bench/venv-*): the interpreter's build
matters (pyenv's default build is a shared library without PGO or LTO; the python.org
Docker images, ours included, build with both), so the table names each interpreter and
times a plain loop in it.

    .venv/bin/python bench/backtest.py [--loops 50] [--runs 3] [--python /usr/bin/python3.11]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

CAPTURES = ("btcusdt_20240808.gz", "btcusdt_20240809.gz")
CACHE = Path(".tickpipe/bench")
PROBE = """
import json, os, platform, resource, sys, timeit
from pathlib import Path
from tickpipe.backtest.config import BacktestConfig
from tickpipe.backtest.engine import run_backtest
config = BacktestConfig(data=tuple(Path(p) for p in sys.argv[2:]), engine=sys.argv[1])
r = run_backtest(config)
print(json.dumps({"seconds": r.elapsed_s, "trades": r.trades, "events": r.events,
    "bars": r.summary.counts.get("bars", 0), "orders": len(r.orders), "fills": len(r.fills),
    "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "python": platform.python_version(), "executable": os.path.realpath(sys.executable),
    "loop_ms": min(timeit.repeat("for i in range(2 * 10**6): i * i", number=1, repeat=9)) * 1e3}))
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


def environment_for(python: str) -> str:
    """The interpreter of a project environment built on `python` from the lock."""
    if python == sys.executable:
        return python
    folder = CACHE / f"venv-{hashlib.sha256(python.encode()).hexdigest()[:12]}"
    uv = shutil.which("uv") or str(Path(__file__).resolve().parents[1] / ".tools" / "bin" / "uv")
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(folder.resolve())}
    env.pop("UV_PYTHON", None)
    subprocess.run(
        [uv, "sync", "--frozen", "--all-packages", "--quiet", "--python", python],
        check=True,
        env=env,
    )
    return str(folder / "bin" / "python")


def build(probe: dict[str, Any]) -> str:
    """`3.11.7 ~/.pyenv/... (loop 61 ms)`: which interpreter, and how fast it runs plain
    Python (a fixed integer loop, best of 9, after the run): builds differ by a third here."""
    return f"{probe['python']} {probe['executable']} (loop {probe['loop_ms']:.0f} ms)"


def probe(python: str, engine: str, data: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [python, "-c", PROBE, engine, *data], check=True, capture_output=True, text=True
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loops", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-ticks", action="store_true")
    parser.add_argument("--python", action="append", default=[], help="another CPython")
    args = parser.parse_args()
    big = dataset(args.loops)
    case = f"bars engine, capture x{args.loops}"
    cases = [(case, sys.executable, "bars", [str(big)])]
    cases += [(case, environment_for(p), "bars", [str(big)]) for p in args.python]
    if not args.skip_ticks:
        files = [str(shared_data() / name) for name in CAPTURES]
        cases.append(("ticks engine, capture x1", sys.executable, "ticks", files))
    table = Table(title="tickpipe backtest (median of runs)")
    for col in (
        "case",
        "python",
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
    # Run by run, case after case: a slow spell of this shared machine hits every case.
    results: list[list[dict[str, Any]]] = [[] for _ in cases]
    for _ in range(args.runs):
        for runs, (_, python, engine, data) in zip(results, cases, strict=True):
            runs.append(probe(python, engine, data))
    for (name, *_), runs in zip(cases, results, strict=True):
        s = statistics.median(r["seconds"] for r in runs)
        rss = statistics.median(r["rss_mib"] for r in runs)
        r0 = runs[0]
        table.add_row(
            name,
            build(runs[0]),
            f"{r0['trades']:,.0f}",
            f"{r0['events']:,.0f}",
            f"{r0['bars']:,.0f}",
            f"{r0['orders']:,.0f}",
            f"{s:.2f}",
            f"{r0['trades'] / s:,.0f}",
            f"{r0['events'] / s:,.0f}",
            f"{rss:.0f}",
        )
        seconds = [round(r["seconds"], 2) for r in runs]
        Console(stderr=True).print(f"{name}, {build(runs[0])}: {seconds} s")
    Console(width=160).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
