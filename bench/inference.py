"""Inference benchmark: the shipped model, fp32 against its int8 variant, with onnxruntime.

Scores real feature rows of the sample capture through `OnnxModel.predict_proba`, the call
the inference service makes (one intra-op thread, float32 cast and P(up) column included):

- per-row latency: one row per call, p50 and p99 over `--calls` calls;
- batched throughput: rows per second at each `--batch` size, over `--batch-calls` calls.

Each figure is the median of `--repeats` loops, after a warm-up; the int8/fp32 column
divides the two medians (below 1: int8 takes less time, or moves fewer rows per second).

    .venv/bin/python bench/inference.py [--calls 20000] [--batch 64 256] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from tickpipe_inference.domain.model import Variant
from tickpipe_inference.onnx_model import VARIANT_FILES, OnnxModel
from tickpipe_inference.training import feature_rows

SAMPLE = Path("data/sample/binance-spot-btcusdt-20240808.gz")
MODEL_DIR = Path("models/baseline/v1")
VARIANTS: tuple[Variant, ...] = ("fp32", "int8")


def _per_row_us(model: OnnxModel, rows: np.ndarray, calls: int) -> tuple[float, float]:
    took = np.empty(calls, dtype=np.int64)
    for i in range(calls):
        row = rows[i % len(rows) : i % len(rows) + 1]
        started = time.perf_counter_ns()
        model.predict_proba(row)
        took[i] = time.perf_counter_ns() - started
    p50, p99 = np.percentile(took, [50, 99])
    return float(p50) / 1e3, float(p99) / 1e3


def _rows_per_s(model: OnnxModel, rows: np.ndarray, batch: int, calls: int) -> float:
    starts = [(i * batch) % (len(rows) - batch) for i in range(calls)]
    started = time.perf_counter()
    for s in starts:
        model.predict_proba(rows[s : s + batch])
    return batch * calls / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="single-row calls per loop")
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--batch-calls", type=int, default=2_000, help="batched calls per loop")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    x, _ = feature_rows(SAMPLE, 1.0)
    # Tiled so every batch is a distinct window of real rows, as consumed from features.v1.
    rows = np.tile(x, (max(1, 4 * max(args.batch) // len(x) + 1), 1)).astype(np.float32)
    models = {v: OnnxModel(MODEL_DIR, v) for v in VARIANTS}
    for model in models.values():
        _per_row_us(model, rows, 1_000)  # warm-up: allocator, kernel selection
        _rows_per_s(model, rows, max(args.batch), 50)

    # Variants alternate within each loop, so drift on a shared machine hits both alike.
    samples: dict[str, dict[Variant, list[float]]] = {}

    def record(measure: str, variant: Variant, value: float) -> None:
        samples.setdefault(measure, {}).setdefault(variant, []).append(value)

    for _ in range(args.repeats):
        for variant, model in models.items():
            p50, p99 = _per_row_us(model, rows, args.calls)
            record("1 row per call, p50 µs", variant, p50)
            record("1 row per call, p99 µs", variant, p99)
            for batch in args.batch:
                rate = _rows_per_s(model, rows, batch, args.batch_calls)
                record(f"batch {batch}, rows/s", variant, rate)
    for variant in VARIANTS:
        size = float((MODEL_DIR / VARIANT_FILES[variant]).stat().st_size)
        record("file size, bytes", variant, size)
    figures = {m: {v: statistics.median(xs) for v, xs in by.items()} for m, by in samples.items()}

    table = Table(
        title=f"inference — {MODEL_DIR}, onnxruntime CPU, 1 thread, median of {args.repeats}"
    )
    for col in ("measure", "fp32", "int8", "int8 / fp32"):
        table.add_column(col, justify="left" if col == "measure" else "right")
    for measure, by_variant in figures.items():
        fp32, int8 = by_variant["fp32"], by_variant["int8"]
        fmt = "{:,.1f}" if "µs" in measure else "{:,.0f}"
        table.add_row(measure, fmt.format(fp32), fmt.format(int8), f"{int8 / fp32:.2f}")
    Console(width=120).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
