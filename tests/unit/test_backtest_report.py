"""Backtest report: metrics against hand-computed cases and an independent numpy reference,
degenerate inputs, deterministic JSON, and the terminal/HTML/PNG output."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from tickpipe.backtest.render import (
    DRAWDOWN_PNG,
    EQUITY_PNG,
    PNL_PNG,
    fmt_money,
    fmt_pct,
    fmt_ratio,
    fmt_ts,
    print_report,
    render_table,
    write_html,
)
from tickpipe.backtest.report import (
    YEAR_NS,
    CurvePoint,
    Fill,
    InstrumentReport,
    Mark,
    Report,
    build_report,
    to_json,
    write_json,
)

S = 1_000_000_000
T0 = 1_723_161_600 * S  # 2024-08-09 00:00:00 UTC
BTC = "binance:BTC/USDT"
ETH = "binance:ETH/USDT"
SOL = "binance:SOL/USDT"


def t(seconds: float) -> int:
    return T0 + round(seconds * S)


def buy(sec: float, qty: float, price: float, fee: float = 0.0, instrument: str = BTC) -> Fill:
    return Fill(t(sec), instrument, "buy", qty, price, fee)


def sell(sec: float, qty: float, price: float, fee: float = 0.0, instrument: str = BTC) -> Fill:
    return Fill(t(sec), instrument, "sell", qty, price, fee)


def marks(prices: list[float], instrument: str = BTC, start: float = 0.0) -> list[Mark]:
    return [Mark(t(start + i), instrument, p) for i, p in enumerate(prices)]


def only(report: Report) -> InstrumentReport:
    (instrument,) = report.instruments
    return instrument


def values(curve: tuple[CurvePoint, ...]) -> list[float]:
    return [p.value for p in curve]


def _no_nan(doc: str) -> Any:
    def reject(name: str) -> None:
        raise AssertionError(f"{name} in JSON")

    return json.loads(doc, parse_constant=reject)


# --- accounting: hand-computed ---------------------------------------------------------------


def test_build_report_when_round_trip_with_fees_gives_exact_pnl_hit_and_turnover() -> None:
    fills = [buy(1, 1, 100.0, fee=0.1), sell(3, 1, 105.0, fee=0.1)]
    report = build_report(fills, [Mark(t(2), BTC, 110.0), Mark(t(4), BTC, 108.0)], 1000.0)

    btc = only(report)
    assert btc.realized == pytest.approx(5.0)
    assert btc.unrealized == 0.0
    assert btc.fees == pytest.approx(0.2)
    assert btc.net_pnl == pytest.approx(4.8)
    assert btc.final_position == 0.0
    assert (btc.trips, btc.hits, btc.hit_rate) == (1, 1, 1.0)
    assert (report.trips, report.hits, report.hit_rate) == (1, 1, 1.0)
    assert report.fills == 2
    assert report.traded_notional == pytest.approx(205.0)
    assert report.turnover == pytest.approx(0.205)
    assert report.total_fees == pytest.approx(0.2)
    # t=2: cash 1000 - 100 - 0.1 plus 1 BTC at 110; t=4: flat, cash + 105 - 0.1.
    assert values(report.equity_curve) == pytest.approx([1009.9, 1004.8])
    assert report.final_equity == pytest.approx(1004.8)
    assert report.total_return == pytest.approx(0.0048)


def test_build_report_when_position_stays_open_marks_it_at_the_last_mark() -> None:
    fills = [buy(0, 2, 100.0, fee=0.2), sell(1, 1, 105.0, fee=0.1)]
    report = build_report(fills, marks([100.0, 104.0, 110.0]), 1000.0)

    btc = only(report)
    assert btc.realized == pytest.approx(5.0)
    assert btc.unrealized == pytest.approx(10.0)
    assert btc.fees == pytest.approx(0.3)
    assert btc.net_pnl == pytest.approx(14.7)
    assert btc.final_position == pytest.approx(1.0)
    assert btc.last_price == 110.0
    # The one closed unit: +5 less its share of fees (0.1 of the buy, 0.1 of the sell).
    assert (btc.trips, btc.hits) == (1, 1)
    assert report.final_equity == pytest.approx(1014.7)
    assert report.equity_curve[-1].value == pytest.approx(1014.7)


def test_build_report_when_fees_exceed_the_price_move_counts_no_hit() -> None:
    fills = [buy(0, 1, 100.0, fee=1.0), sell(1, 1, 100.5, fee=1.0)]
    report = build_report(fills, marks([100.0, 100.5]), 1000.0)

    btc = only(report)
    assert btc.realized == pytest.approx(0.5)
    assert btc.net_pnl == pytest.approx(-1.5)
    assert (report.trips, report.hits, report.hit_rate) == (1, 0, 0.0)


def test_build_report_when_closing_across_lots_matches_fifo() -> None:
    fills = [buy(0, 1, 100.0), buy(1, 1, 110.0), sell(2, 1.5, 105.0)]
    report = build_report(fills, marks([100.0, 110.0, 105.0, 120.0]), 1000.0)

    btc = only(report)
    # FIFO: 1 @100 -> +5 (hit), then 0.5 @110 -> -2.5 (miss); 0.5 @110 stays open.
    assert btc.realized == pytest.approx(2.5)
    assert (btc.trips, btc.hits, btc.hit_rate) == (2, 1, 0.5)
    assert btc.final_position == pytest.approx(0.5)
    assert btc.unrealized == pytest.approx(5.0)


def test_build_report_when_short_books_pnl_with_the_opposite_sign() -> None:
    fills = [sell(0, 2, 100.0), buy(1, 1, 90.0)]
    report = build_report(fills, marks([100.0, 90.0, 95.0]), 1000.0)

    btc = only(report)
    assert btc.realized == pytest.approx(10.0)
    assert btc.unrealized == pytest.approx(5.0)
    assert btc.final_position == pytest.approx(-1.0)
    assert report.final_equity == pytest.approx(1015.0)
    assert values(report.equity_curve) == pytest.approx([1000.0, 1020.0, 1015.0])


def test_build_report_when_a_fill_flips_the_position_splits_its_fee_pro_rata() -> None:
    # Sell 3 against a 1 long: 1 closes (+10 gross, fee share 9 of 27 -> net +1, a hit; all
    # 27 would make it a miss), 2 open short at 110 carrying the other 18.
    fills = [buy(0, 1, 100.0), sell(1, 3, 110.0, fee=27.0), buy(2, 2, 112.0)]
    report = build_report(fills, marks([100.0, 110.0, 112.0]), 1000.0)

    btc = only(report)
    assert btc.realized == pytest.approx(10.0 - 4.0)
    # The short closes at a 4 loss: a miss whatever its fees.
    assert (btc.trips, btc.hits) == (2, 1)
    assert btc.final_position == 0.0
    assert btc.net_pnl == pytest.approx(6.0 - 27.0)


def test_build_report_when_fill_quantities_sum_with_float_noise_leaves_no_dust() -> None:
    fills = [buy(0, 0.1, 100.0), buy(1, 0.2, 100.0), sell(2, 0.3, 101.0)]
    report = build_report(fills, marks([100.0, 100.0, 101.0]), 1000.0)

    btc = only(report)
    assert btc.final_position == 0.0
    assert btc.trips == 2
    assert btc.unrealized == 0.0


# --- equity curve, drawdown ------------------------------------------------------------------


def test_equity_and_drawdown_when_path_is_known_match_it() -> None:
    report = build_report([buy(0, 1, 100.0)], marks([100.0, 120.0, 90.0, 108.0, 130.0]), 100.0)

    assert values(report.equity_curve) == pytest.approx([100.0, 120.0, 90.0, 108.0, 130.0])
    assert [p.ts_ns for p in report.equity_curve] == [t(i) for i in range(5)]
    assert values(report.drawdown_curve) == pytest.approx([0.0, 0.0, -0.25, -0.1, 0.0])
    dd = report.max_drawdown
    assert dd.fraction == pytest.approx(0.25)
    assert dd.amount == pytest.approx(30.0)
    assert (dd.peak_ts_ns, dd.trough_ts_ns, dd.recovery_ts_ns) == (t(1), t(2), t(4))
    assert [dd.peak_equity, dd.trough_equity] == pytest.approx([120.0, 90.0])
    assert report.total_return == pytest.approx(0.3)


def test_max_drawdown_when_two_falls_reports_the_deeper_fraction_never_recovered() -> None:
    # 100 -> 200 -> 150 (-25 %) -> 300 -> 210 (-30 %) -> 240.
    report = build_report([buy(0, 1, 100.0)], marks([100, 200, 150, 300, 210, 240]), 100.0)

    dd = report.max_drawdown
    assert dd.fraction == pytest.approx(0.3)
    assert dd.amount == pytest.approx(90.0)
    assert (dd.peak_ts_ns, dd.trough_ts_ns, dd.recovery_ts_ns) == (t(3), t(4), None)


def test_drawdown_when_fees_before_the_first_mark_counts_from_initial_capital() -> None:
    report = build_report([buy(0, 1, 100.0, fee=10.0)], marks([100.0, 100.0], start=1), 1000.0)

    assert values(report.equity_curve) == pytest.approx([990.0, 990.0])
    assert values(report.drawdown_curve) == pytest.approx([-0.01, -0.01])
    assert report.max_drawdown.fraction == pytest.approx(0.01)
    assert report.max_drawdown.peak_ts_ns == t(1)


def test_equity_when_fill_and_mark_share_a_timestamp_values_them_together() -> None:
    report = build_report([buy(1, 1, 100.0)], marks([100.0, 150.0]), 1000.0)

    assert values(report.equity_curve) == pytest.approx([1000.0, 1050.0])


def test_equity_when_fills_come_after_the_last_mark_ends_at_a_closing_point() -> None:
    fills = [buy(0, 1, 100.0), sell(5, 1, 130.0, fee=1.0)]
    report = build_report(fills, marks([100.0, 120.0]), 1000.0)

    assert [p.ts_ns for p in report.equity_curve] == [t(0), t(1), t(5)]
    assert values(report.equity_curve) == pytest.approx([1000.0, 1020.0, 1029.0])
    assert report.final_equity == pytest.approx(1029.0)
    assert report.end_ts_ns == t(5)


def test_equity_when_an_instrument_has_no_mark_values_it_at_its_last_fill() -> None:
    fills = [buy(0, 1, 100.0, instrument=SOL), buy(1, 1, 120.0, instrument=SOL)]
    report = build_report(fills, marks([10.0, 10.0, 10.0]), 1000.0)

    assert values(report.equity_curve) == pytest.approx([1000.0, 1020.0, 1020.0])
    sol = next(i for i in report.instruments if i.instrument == SOL)
    assert sol.unrealized == pytest.approx(20.0)
    assert sol.last_price == 120.0
    assert (sol.buy_hold_pnl, sol.buy_hold_return) == (None, None)


# --- Sharpe, Sortino: an independent numpy reference -----------------------------------------


def _reference_ratios(equity: np.ndarray, ppy: float) -> tuple[float, float, float]:
    r = equity[1:] / equity[:-1] - 1.0
    sharpe = r.mean() / r.std(ddof=1) * np.sqrt(ppy)
    downside = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2))
    return (
        float(sharpe),
        float(r.mean() / downside * np.sqrt(ppy)),
        float(r.std(ddof=1) * np.sqrt(ppy)),
    )


def _random_walk(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 * np.cumprod(1.0 + rng.normal(0.0002, 0.01, n))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sharpe_sortino_when_periods_inferred_match_numpy_reference(seed: int) -> None:
    prices = _random_walk(500, seed)
    qty, fee = 7.0, 2.5
    report = build_report([buy(0, qty, prices[0], fee=fee)], marks(list(prices)), 1000.0)

    # Equity the numpy way: cash after the buy plus the position at each price.
    equity = 1000.0 - qty * prices[0] - fee + qty * prices
    sharpe, sortino, vol = _reference_ratios(equity, ppy=365 * 86_400)
    assert report.periods_per_year == pytest.approx(365 * 86_400)
    assert report.periods == 499
    assert report.sharpe == pytest.approx(sharpe, rel=1e-9)
    assert report.sortino == pytest.approx(sortino, rel=1e-9)
    assert report.volatility == pytest.approx(vol, rel=1e-9)


def test_sharpe_when_periods_per_year_given_uses_it() -> None:
    prices = _random_walk(50, 9)
    report = build_report([buy(0, 1, prices[0])], marks(list(prices)), 100.0, periods_per_year=252)

    sharpe, sortino, _ = _reference_ratios(100.0 - prices[0] + prices, ppy=252)
    assert report.periods_per_year == 252
    assert report.sharpe == pytest.approx(sharpe, rel=1e-9)
    assert report.sortino == pytest.approx(sortino, rel=1e-9)


def test_periods_per_year_when_spacing_is_irregular_uses_the_median_gap() -> None:
    seconds = [0, 60, 120, 300, 360, 420]
    report = build_report([], [Mark(t(s), BTC, 100.0) for s in seconds], 1000.0)

    assert report.periods_per_year == pytest.approx(YEAR_NS / (60 * S))


# --- buy and hold ----------------------------------------------------------------------------


def test_buy_and_hold_when_two_instruments_splits_capital_equally() -> None:
    btc = [Mark(t(0), BTC, 100.0), Mark(t(2), BTC, 110.0)]
    eth = [Mark(t(1), ETH, 50.0), Mark(t(2), ETH, 40.0)]
    report = build_report([], btc + eth, 1000.0)

    by_name = {i.instrument: i for i in report.instruments}
    assert by_name[BTC].buy_hold_return == pytest.approx(0.1)
    assert by_name[BTC].buy_hold_pnl == pytest.approx(50.0)
    assert by_name[ETH].buy_hold_return == pytest.approx(-0.2)
    assert by_name[ETH].buy_hold_pnl == pytest.approx(-100.0)
    assert report.buy_hold_pnl == pytest.approx(-50.0)
    assert report.buy_hold_return == pytest.approx(-0.05)
    assert report.excess_return == pytest.approx(0.05)
    # ETH's half waits as cash until its first mark.
    assert values(report.buy_hold_curve) == pytest.approx([1000.0, 1000.0, 950.0])


def test_buy_and_hold_when_an_instrument_has_only_fills_leaves_it_out_of_the_split() -> None:
    fills = [buy(0, 1, 10.0, instrument=SOL)]
    report = build_report(fills, marks([100.0, 120.0]), 1000.0)

    assert report.buy_hold_pnl == pytest.approx(200.0)  # all 1000 in BTC, +20 %
    assert report.buy_hold_return == pytest.approx(0.2)


# --- degenerate inputs -----------------------------------------------------------------------


def test_build_report_when_nothing_happened_gives_zeros_and_nones() -> None:
    report = build_report([], [], 1000.0)

    assert report.final_equity == 1000.0
    assert (report.total_return, report.turnover, report.total_fees) == (0.0, 0.0, 0.0)
    assert (report.sharpe, report.sortino, report.volatility, report.hit_rate) == (None,) * 4
    assert report.periods_per_year is None
    assert report.max_drawdown.fraction == 0.0
    assert report.max_drawdown.peak_ts_ns is None
    assert report.equity_curve == ()
    assert report.instruments == ()
    assert report.start_ts_ns is None
    _no_nan(to_json(report))


def test_build_report_when_one_mark_has_no_ratios() -> None:
    report = build_report([buy(0, 1, 100.0)], [Mark(t(0), BTC, 100.0)], 1000.0)

    assert len(report.equity_curve) == 1
    assert report.periods == 0
    assert (report.sharpe, report.sortino, report.periods_per_year) == (None, None, None)
    assert report.hit_rate is None
    _no_nan(to_json(report))


def test_build_report_when_equity_is_flat_gives_no_sharpe_and_zero_volatility() -> None:
    report = build_report([], marks([100.0, 101.0, 99.0, 100.0]), 1000.0)

    assert (report.sharpe, report.sortino) == (None, None)
    assert report.volatility == 0.0
    assert report.max_drawdown.fraction == 0.0
    assert values(report.drawdown_curve) == [0.0] * 4
    _no_nan(to_json(report))


def test_sortino_when_equity_never_falls_is_none_while_sharpe_is_defined() -> None:
    report = build_report([buy(0, 1, 100.0)], marks([100.0, 101.0, 103.0, 104.0]), 100.0)

    assert report.sortino is None
    assert report.sharpe is not None
    assert report.sharpe > 0


def test_ratios_when_equity_goes_below_zero_are_none_not_nan() -> None:
    report = build_report([sell(0, 1, 100.0)], marks([100.0, 250.0, 260.0, 240.0]), 100.0)

    assert report.final_equity == pytest.approx(-40.0)
    assert (report.sharpe, report.sortino, report.volatility) == (None, None, None)
    assert report.max_drawdown.fraction == pytest.approx(1.6)
    _no_nan(to_json(report))


@pytest.mark.parametrize(
    ("fills", "capital", "ppy"),
    [
        ([Fill(0, BTC, "long", 1.0, 100.0, 0.0)], 1000.0, None),
        ([Fill(0, BTC, "buy", 0.0, 100.0, 0.0)], 1000.0, None),
        ([Fill(0, BTC, "buy", 1.0, math.nan, 0.0)], 1000.0, None),
        ([Fill(0, BTC, "buy", 1.0, 100.0, math.inf)], 1000.0, None),
        ([], 0.0, None),
        ([], 1000.0, 0.0),
    ],
)
def test_build_report_when_input_is_invalid_raises_value_error(
    fills: list[Fill], capital: float, ppy: float | None
) -> None:
    with pytest.raises(ValueError):
        build_report(fills, marks([100.0]), capital, periods_per_year=ppy)


def test_build_report_when_a_mark_price_is_not_positive_raises_value_error() -> None:
    with pytest.raises(ValueError, match="mark price"):
        build_report([], [Mark(0, BTC, 0.0)], 1000.0)


# --- JSON ------------------------------------------------------------------------------------


def _busy_inputs(seed: int) -> tuple[list[Fill], list[Mark]]:
    rng = random.Random(seed)
    all_marks: list[Mark] = []
    fills: list[Fill] = []
    price = {BTC: 60_000.0, ETH: 3_000.0}
    for s in range(300):
        for name, last in price.items():
            px = price[name] = last * (1 + rng.gauss(0, 0.001))
            all_marks.append(Mark(t(s), name, px))
            if rng.random() < 0.1:
                side = rng.choice(["buy", "sell"])
                qty = rng.uniform(0.01, 0.1)
                fills.append(Fill(t(s + 0.5), name, side, qty, px, 1e-3 * qty * px))
    return fills, all_marks


def test_to_json_when_inputs_are_equal_is_byte_identical(tmp_path: Path) -> None:
    fills, all_marks = _busy_inputs(5)
    shuffled = list(reversed(fills))  # distinct timestamps: input order must not matter

    first = write_json(build_report(fills, all_marks, 10_000.0), tmp_path / "a.json")
    second = write_json(build_report(shuffled, list(all_marks), 10_000.0), tmp_path / "b.json")

    assert first.read_bytes() == second.read_bytes()
    doc = _no_nan(first.read_text())
    assert list(doc)[:3] == ["initial_capital", "final_equity", "total_return"]
    assert len(doc["equity_curve"]) == 300


def test_to_json_when_floats_carry_noise_rounds_them_and_writes_no_negative_zero() -> None:
    fills = [buy(0, 0.1, 1.0), buy(0, 0.2, 1.0), sell(1, 0.3, 1.0)]
    report = build_report(fills, marks([1.0, 1.0]), 0.3)

    text = to_json(report)
    doc = _no_nan(text)
    assert doc["traded_notional"] == 0.6  # 0.1 + 0.2 + 0.3 is 0.6000000000000001 in floats
    assert doc["turnover"] == 2.0
    assert "-0.0," not in text
    assert "-0.0]" not in text
    assert doc == json.loads(json.dumps(report.to_dict()))


def test_to_json_when_series_excluded_keeps_only_the_summary() -> None:
    fills, all_marks = _busy_inputs(6)
    report = build_report(fills, all_marks, 10_000.0)

    doc = _no_nan(to_json(report, include_series=False))

    assert "equity_curve" not in doc
    assert doc["max_drawdown"] == pytest.approx(report.max_drawdown.fraction, abs=1e-10)
    assert doc["instruments"][0]["instrument"] == BTC
    assert doc == report.to_dict(include_series=False)


# --- terminal and HTML -----------------------------------------------------------------------


def test_render_table_when_printed_shows_metrics_and_instruments() -> None:
    report = build_report([buy(0, 1, 100.0, fee=0.5)], marks([100.0, 90.0, 95.0]), 1000.0)
    console = Console(record=True, width=200, color_system=None)

    print_report(report, console)
    text = console.export_text()

    assert BTC in text
    assert fmt_pct(report.total_return) in text
    assert fmt_money(report.final_equity) in text
    assert fmt_pct(report.max_drawdown.fraction) in text
    assert render_table(report).row_count == 2


def test_fmt_ts_when_given_ns_writes_utc_milliseconds() -> None:
    assert fmt_ts(T0 + 1_234_567_890) == "2024-08-09 00:00:01.234Z"
    assert fmt_ts(None) == "n/a"


def test_write_html_when_called_writes_page_and_valid_pngs_it_links(tmp_path: Path) -> None:
    fills, all_marks = _busy_inputs(7)
    fills.append(buy(10, 1, 10.0, instrument="evil:<script>alert(1)</script>"))
    report = build_report(fills, all_marks, 10_000.0)

    page = write_html(report, tmp_path / "out")

    text = page.read_text()
    sources = [part.split('"')[0] for part in text.split('<img src="')[1:]]
    assert sources == [EQUITY_PNG, DRAWDOWN_PNG, PNL_PNG]
    for name in sources:
        assert (page.parent / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for value in (
        fmt_pct(report.total_return),
        fmt_pct(report.buy_hold_return),
        fmt_ratio(report.sharpe),
        fmt_ratio(report.sortino),
        fmt_pct(report.max_drawdown.fraction),
        fmt_money(report.total_fees),
        fmt_pct(report.hit_rate),
        fmt_money(report.instruments[0].net_pnl),
    ):
        assert f">{value}<" in text
    assert "<script" not in text
    assert "&lt;script&gt;" in text


def test_write_html_when_called_twice_writes_identical_files(tmp_path: Path) -> None:
    fills, all_marks = _busy_inputs(8)
    report = build_report(fills, all_marks, 10_000.0)

    a = write_html(report, tmp_path / "a").parent
    b = write_html(report, tmp_path / "b").parent

    for name in ("report.html", EQUITY_PNG, DRAWDOWN_PNG, PNL_PNG):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_write_html_when_report_is_empty_still_writes_everything(tmp_path: Path) -> None:
    page = write_html(build_report([], [], 1000.0), tmp_path)

    assert page.name == "report.html"
    for name in (EQUITY_PNG, DRAWDOWN_PNG, PNL_PNG):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ">n/a<" in page.read_text()


# --- properties ------------------------------------------------------------------------------

_INSTRUMENTS = st.sampled_from([BTC, ETH])
_FILL = st.builds(
    Fill,
    ts_ns=st.integers(0, 20),
    instrument=_INSTRUMENTS,
    side=st.sampled_from(["buy", "sell"]),
    qty=st.floats(0.001, 10.0),
    price=st.floats(1.0, 1000.0),
    fee=st.floats(-0.5, 5.0),
)
_MARK = st.builds(
    Mark, ts_ns=st.integers(0, 20), instrument=_INSTRUMENTS, price=st.floats(1.0, 1000.0)
)


@settings(max_examples=200, deadline=None)
@given(fills=st.lists(_FILL, max_size=25), all_marks=st.lists(_MARK, max_size=25))
def test_build_report_when_random_keeps_accounts_reconciled(
    fills: list[Fill], all_marks: list[Mark]
) -> None:
    report = build_report(fills, all_marks, 10_000.0)

    net = math.fsum(i.net_pnl for i in report.instruments)
    scale = 1.0 + sum(f.qty * f.price + abs(f.fee) for f in fills)
    assert report.final_equity == pytest.approx(10_000.0 + net, abs=1e-9 * scale)
    if report.equity_curve:
        assert report.equity_curve[-1].value == pytest.approx(report.final_equity, abs=1e-9 * scale)
    # Cash-flow view, computed independently: cash plus positions at the last known price.
    cash = 10_000.0 - math.fsum(
        (1 if f.side == "buy" else -1) * f.qty * f.price + f.fee for f in fills
    )
    for i in report.instruments:
        signed = math.fsum(
            (1 if f.side == "buy" else -1) * f.qty for f in fills if f.instrument == i.instrument
        )
        assert i.final_position == pytest.approx(signed, abs=1e-9 * scale)
        cash += signed * (i.last_price or 0.0)
    assert report.final_equity == pytest.approx(cash, abs=1e-9 * scale)
    assert report.hits <= report.trips
    assert all(p.value <= 0.0 for p in report.drawdown_curve)
    assert report.turnover == pytest.approx(sum(f.qty * f.price for f in fills) / 10_000.0)
    _no_nan(to_json(report))
