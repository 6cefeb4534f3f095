"""`tickpipe backtest`: the five handlers over the sample capture, deterministic, with a
report; configuration errors are errors; sweeps give the same points in parallel."""

from __future__ import annotations

import gc
import json
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from tickpipe.backtest.cli import add_parser
from tickpipe.backtest.config import BacktestConfig, ConfigError, load_file
from tickpipe.backtest.engine import BacktestResult, rare_young_collections, run_backtest
from tickpipe.backtest.sweep import grid, run_sweep
from tickpipe.cli import main as cli_main
from tickpipe.marketdata import TradeData, read_binance_capture

SAMPLE = Path("data/sample/binance-spot-btcusdt-20240808.gz")
START, END = datetime(2024, 8, 8, 23, 55), datetime(2024, 8, 8, 23, 57, 30)
WINDOW = BacktestConfig(data=(SAMPLE,), start=START, end=END)


@pytest.fixture(scope="module")
def window_run() -> BacktestResult:
    return run_backtest(WINDOW)


def test_backtest_when_run_twice_gives_byte_identical_orders_and_executions(
    window_run: BacktestResult,
) -> None:
    again = run_backtest(WINDOW)
    assert len(window_run.orders) > 10 and len(window_run.fills) > 10
    assert again.output_bytes() == window_run.output_bytes()


def test_backtest_when_a_limit_changes_gives_other_orders(window_run: BacktestResult) -> None:
    # The comparison above could only pass vacuously if settings did not reach the services.
    smaller = run_backtest(WINDOW.with_settings({"risk.max_order_notional": 5_000}))
    orders = [orjson.loads(r.value) for r in smaller.orders]
    assert smaller.output_bytes() != window_run.output_bytes()
    assert orders and all(
        float(o["quantity"]) * float(o["reference_price"]) <= 5_000 for o in orders
    )


def test_backtest_window_when_from_and_to_given_replays_only_that_time(
    window_run: BacktestResult,
) -> None:
    start_ns, end_ns = (int(t.timestamp()) * 1_000_000_000 for t in (START, END))
    in_window = sum(
        1
        for item in read_binance_capture(SAMPLE)
        if isinstance(item, TradeData) and start_ns <= item.ts_event < end_ns
    )
    assert window_run.trades == in_window
    assert all(start_ns < m.ts_ns <= end_ns for m in window_run.marks)


def test_backtest_fills_and_marks_when_collected_match_the_executions(
    window_run: BacktestResult,
) -> None:
    reports = [orjson.loads(r.value) for r in window_run.executions]
    filled = [r for r in reports if float(r["last_qty"]) > 0]
    assert [f.qty for f in window_run.fills] == [float(r["last_qty"]) for r in filled]
    assert {f.instrument for f in window_run.fills} == {"binance:BTC/USDT"}
    assert len(window_run.marks) == window_run.summary.counts["bars"]


def test_config_file_when_it_names_an_unknown_setting_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[risk]\nmax_order_notionl = 10\n")
    settings, _ = load_file(bad)
    with pytest.raises(ConfigError, match="max_order_notionl"):
        run_backtest(BacktestConfig(data=(SAMPLE,), settings=settings))
    bad.write_text("[riks]\ncapital = 10\n")
    with pytest.raises(ConfigError, match="riks"):
        load_file(bad)


def test_config_file_when_it_has_a_sweep_table_reads_the_grid(tmp_path: Path) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(
        '[risk]\ncapital = 50000\n[sweep]\n"risk.max_order_notional" = [1000, 2000]\n'
        '"inference.long_threshold" = [0.55, 0.6]\n'
    )
    settings, axes = load_file(path)
    assert settings == {"risk": {"capital": 50000}}
    points = grid(axes)
    assert len(points) == 4
    assert points[0] == {"inference.long_threshold": 0.55, "risk.max_order_notional": 1000}


def test_model_when_version_is_not_registered_is_an_error() -> None:
    with pytest.raises(ConfigError, match="v999"):
        BacktestConfig(data=(SAMPLE,), model="v999").overlay()


def test_sweep_when_run_in_parallel_equals_the_points_run_one_by_one() -> None:
    short = BacktestConfig(data=(SAMPLE,), start=START, end=datetime(2024, 8, 8, 23, 56, 30))
    axes = {"risk.max_order_notional": [2_000, 20_000]}
    parallel = run_sweep(short, axes, workers=2)
    serial = run_sweep(short, axes, workers=1)
    assert [p.metrics for p in parallel] == [p.metrics for p in serial]
    assert parallel[0].metrics != parallel[1].metrics  # the parameter mattered
    assert [p.params for p in parallel] == grid(axes)


def test_cli_when_json_and_html_asked_writes_the_report(tmp_path: Path) -> None:
    code = cli_main(
        [
            "backtest",
            "--from",
            START.isoformat(),
            "--to",
            END.isoformat(),
            "--quiet",
            "--json",
            str(tmp_path / "r.json"),
            "--html",
            str(tmp_path / "html"),
        ]
    )
    assert code == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["fills"] > 10 and doc["equity_curve"]
    assert (tmp_path / "html" / "report.html").read_text().count("<img") >= 2


def test_cli_when_setting_is_malformed_exits_with_usage_error() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    with pytest.raises(SystemExit):
        parser.parse_args(["backtest", "--set", "riskcapital=1"])
    assert cli_main(["backtest", "--data", "no/such/file.gz", "--quiet"]) == 2


def test_model_when_version_is_registered_points_inference_at_its_folder() -> None:
    overlay = BacktestConfig(data=(SAMPLE,), model="v1").overlay()
    assert overlay["inference"]["model_dir"] == Path("models/baseline/v1")
    assert BacktestConfig(data=(SAMPLE,), model="baseline/v1").overlay() == overlay


def _trading(result: BacktestResult) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    orders = [orjson.loads(r.value) for r in result.orders]
    keys = ("ts_event", "side", "quantity", "order_type", "limit_price", "reference_price")
    return (
        [tuple(o[k] for k in keys) for o in orders],
        [(f.ts_ns, f.side, f.qty, f.price, f.fee) for f in result.fills],
    )


def test_bars_engine_when_run_on_the_window_trades_as_the_ticks_engine(
    window_run: BacktestResult, tmp_path: Path
) -> None:
    from dataclasses import replace

    bars = run_backtest(replace(WINDOW, engine="bars"))
    assert bars.summary.counts["trades"] == window_run.trades
    assert _trading(bars) == _trading(window_run)
    assert bars.marks == window_run.marks  # the report values both on the same bar closes
    # Limit orders rest on prints the bars engine does not replay: refused, not approximated.
    with pytest.raises(ConfigError, match="market orders"):
        run_backtest(replace(WINDOW, engine="bars").with_settings({"risk.order_type": "limit"}))


def test_dataset_cli_when_run_writes_what_ingest_publishes(
    window_run: BacktestResult, tmp_path: Path
) -> None:
    from tickpipe.backtest.dataset import Dataset

    out = tmp_path / "ds"
    args = ["dataset", "--data", str(SAMPLE), "--out", str(out)]
    assert cli_main([*args, "--from", START.isoformat(), "--to", END.isoformat()]) == 0
    dataset = Dataset.open(out)
    assert dataset.manifest["trades"] == window_run.trades
    assert dataset.instruments() == [("binance", "BTC/USDT")]
    assert cli_main(args) == 2  # not over a dataset already there


def test_rare_young_collections_raises_the_threshold_and_restores_it() -> None:
    before = gc.get_threshold()
    with rare_young_collections(12_345):
        assert gc.get_threshold() == (12_345, *before[1:])
    assert gc.get_threshold() == before


def test_bars_engine_when_run_on_the_window_places_the_ticks_engines_client_order_ids(
    window_run: BacktestResult,
) -> None:
    """Vector ids are derived (instrument, bar, feature set), so both engines score the same
    vectors under the same ids and derive the same signal and client order ids."""
    from dataclasses import replace

    bars = run_backtest(replace(WINDOW, engine="bars"))
    ticks = [orjson.loads(r.value)["client_order_id"] for r in window_run.orders]
    assert ticks and [orjson.loads(r.value)["client_order_id"] for r in bars.orders] == ticks
