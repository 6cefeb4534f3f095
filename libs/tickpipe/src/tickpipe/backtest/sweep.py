"""Parameter sweeps: every point of a grid is one backtest, run in parallel processes.

Each worker builds its own pipeline from its own settings: the points share nothing, so
the result of a point does not depend on the others or on the number of workers.
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from tickpipe.backtest.config import BacktestConfig, split_key
from tickpipe.backtest.engine import run_backtest
from tickpipe.backtest.report import build_report


@dataclass(frozen=True)
class SweepPoint:
    params: dict[str, Any]
    metrics: dict[str, Any]
    orders: int
    fills: int


def grid(axes: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of `section.name` -> values, in a stable order."""
    for dotted in axes:
        split_key(dotted)
    names = sorted(axes)
    return [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(axes[n] for n in names))
    ]


def run_point(config: BacktestConfig, params: dict[str, Any]) -> SweepPoint:
    result = run_backtest(config.with_settings(params))
    report = build_report(result.fills, result.marks, result.capital)
    metrics = report.to_dict(include_series=False)
    metrics.pop("instruments")
    return SweepPoint(
        params=params,
        metrics=metrics,
        orders=len(result.orders),
        fills=len(result.fills),
    )


def run_sweep(
    config: BacktestConfig,
    axes: Mapping[str, Sequence[Any]],
    workers: int,
    on_done: Callable[[SweepPoint], None] | None = None,
) -> list[SweepPoint]:
    points = grid(axes)
    if workers <= 1:
        done = []
        for p in points:
            done.append(run_point(config, p))
            if on_done:
                on_done(done[-1])
        return done
    # fork: workers start at once with the services already imported (spawn re-imports
    # onnxruntime, polars and the services in every worker).
    ctx = multiprocessing.get_context("fork")
    results: dict[int, SweepPoint] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {pool.submit(run_point, config, p): i for i, p in enumerate(points)}
        for future in as_completed(futures):
            results[futures[future]] = point = future.result()
            if on_done:
                on_done(point)
    return [results[i] for i in range(len(points))]
