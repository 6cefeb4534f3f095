"""Backtest report output: rich terminal tables, an HTML page and its PNG plots.

The terminal tables and the HTML show the same formatted strings (``summary_rows``,
``instrument_rows``). matplotlib is imported inside ``write_plots`` only, so importing this module
(e.g. for the CLI's table output) stays cheap and works without the ``report`` extra.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tickpipe.backtest.report import CurvePoint, Report

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from matplotlib.figure import Figure

NA = "n/a"
EQUITY_PNG = "equity.png"
DRAWDOWN_PNG = "drawdown.png"
PNL_PNG = "pnl.png"
REPORT_HTML = "report.html"
INSTRUMENT_COLUMNS = (
    "Instrument",
    "Fills",
    "Position",
    "Realized",
    "Unrealized",
    "Fees",
    "Net PnL",
    "Buy & hold PnL",
    "Buy & hold return",
    "Trips",
    "Hit rate",
)
# Narrower headers for terminals; the HTML has room for the full ones.
_SHORT = {
    "Position": "Pos",
    "Buy & hold PnL": "B&H PnL",
    "Buy & hold return": "B&H ret",
    "Hit rate": "Hits",
}
# Columns whose sign matters: coloured in the terminal and the HTML.
_SIGNED = {"Realized", "Unrealized", "Net PnL", "Buy & hold PnL", "Buy & hold return"}


def fmt_money(x: float | None) -> str:
    return NA if x is None else f"{x:,.2f}"


def fmt_pct(x: float | None) -> str:
    return NA if x is None else f"{x * 100:.2f}%"


def fmt_ratio(x: float | None) -> str:
    return NA if x is None else f"{x:.2f}"


def fmt_qty(x: float) -> str:
    return f"{x:.8g}"


def fmt_ts(ts_ns: int | None) -> str:
    """UTC, to the millisecond; integer arithmetic so large ns values lose nothing."""
    if ts_ns is None:
        return NA
    sec, ns = divmod(ts_ns, 1_000_000_000)
    when = datetime.fromtimestamp(sec, UTC) + timedelta(microseconds=ns // 1000)
    return when.strftime("%Y-%m-%d %H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def summary_rows(report: Report) -> list[tuple[str, str]]:
    dd = report.max_drawdown
    ppy = report.periods_per_year
    return [
        ("Start", fmt_ts(report.start_ts_ns)),
        ("End", fmt_ts(report.end_ts_ns)),
        ("Initial capital", fmt_money(report.initial_capital)),
        ("Final equity", fmt_money(report.final_equity)),
        ("Total return", fmt_pct(report.total_return)),
        ("Buy & hold return", fmt_pct(report.buy_hold_return)),
        ("Excess return", fmt_pct(report.excess_return)),
        ("Sharpe (annualised)", fmt_ratio(report.sharpe)),
        ("Sortino (annualised)", fmt_ratio(report.sortino)),
        ("Volatility (annualised)", fmt_pct(report.volatility)),
        ("Periods", str(report.periods)),
        ("Periods per year", NA if ppy is None else f"{ppy:,.0f}"),
        ("Max drawdown", fmt_pct(dd.fraction)),
        ("Max drawdown (amount)", fmt_money(dd.amount)),
        ("Drawdown peak", fmt_ts(dd.peak_ts_ns)),
        ("Drawdown trough", fmt_ts(dd.trough_ts_ns)),
        ("Drawdown recovery", fmt_ts(dd.recovery_ts_ns)),
        ("Traded notional", fmt_money(report.traded_notional)),
        ("Turnover", f"{report.turnover:.2f}x"),
        ("Fees", fmt_money(report.total_fees)),
        ("Fills", str(report.fills)),
        ("Round trips (hits)", f"{report.trips} ({report.hits})"),
        ("Hit rate", fmt_pct(report.hit_rate)),
    ]


def instrument_rows(report: Report) -> list[tuple[str, ...]]:
    return [
        (
            i.instrument,
            str(i.fills),
            fmt_qty(i.final_position),
            fmt_money(i.realized),
            fmt_money(i.unrealized),
            fmt_money(i.fees),
            fmt_money(i.net_pnl),
            fmt_money(i.buy_hold_pnl),
            fmt_pct(i.buy_hold_return),
            str(i.trips),
            fmt_pct(i.hit_rate),
        )
        for i in report.instruments
    ]


def _sign_class(cell: str) -> str:
    if cell.startswith("-"):
        return "neg"
    return "pos" if cell not in (NA, "0.00", "0.00%") else ""


def summary_table(report: Report) -> Table:
    table = Table(title="Backtest summary", show_header=False)
    table.add_column("Metric", style="bold")
    table.add_column("Value", justify="right")
    for label, value in summary_rows(report):
        table.add_row(label, value)
    return table


def instruments_table(report: Report) -> Table:
    table = Table(title="Per instrument")
    for col in INSTRUMENT_COLUMNS:
        left = col == "Instrument"
        table.add_column(_SHORT.get(col, col), justify="left" if left else "right", no_wrap=left)
    styles = {"neg": "red", "pos": "green", "": ""}
    for row in instrument_rows(report):
        table.add_row(
            *(
                Text(cell, style=styles[_sign_class(cell)]) if col in _SIGNED else cell
                for col, cell in zip(INSTRUMENT_COLUMNS, row, strict=True)
            )
        )
    return table


def render_table(report: Report) -> Table:
    """Both tables stacked in one grid, ready for ``Console.print``."""
    grid = Table.grid(padding=(1, 0))
    grid.add_row(summary_table(report))
    grid.add_row(instruments_table(report))
    return grid


def print_report(report: Report, console: Console | None = None) -> None:
    (console or Console()).print(render_table(report))


def write_html(report: Report, out_dir: Path, *, title: str = "tickpipe backtest") -> Path:
    """Writes the PNG plots and report.html (which links them) into out_dir; returns the page."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = write_plots(report, out_dir)
    page = out_dir / REPORT_HTML
    page.write_text(render_html(report, title=title, images=images), encoding="utf-8")
    return page


def render_html(report: Report, *, title: str, images: Sequence[Path] = ()) -> str:
    """Self-contained page: inline CSS, no scripts; images by relative file name."""
    esc = html.escape
    summary = "\n".join(
        f"<tr><th>{esc(label)}</th><td>{esc(value)}</td></tr>"
        for label, value in summary_rows(report)
    )
    head = "".join(f"<th>{esc(c)}</th>" for c in INSTRUMENT_COLUMNS)
    body = "\n".join(
        "<tr>"
        + "".join(
            f'<td class="{_sign_class(cell) if col in _SIGNED else ""}">{esc(cell)}</td>'
            for col, cell in zip(INSTRUMENT_COLUMNS, row, strict=True)
        )
        + "</tr>"
        for row in instrument_rows(report)
    )
    alts = {
        EQUITY_PNG: "Equity curve against buy and hold",
        DRAWDOWN_PNG: "Drawdown",
        PNL_PNG: "Net PnL and buy-and-hold PnL per instrument",
    }
    figures = "\n".join(
        f'<figure><img src="{esc(p.name)}" alt="{esc(alts.get(p.name, p.name))}"></figure>'
        for p in images
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{esc(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ padding: 0.25em 0.8em; border-bottom: 1px solid #ddd; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
.neg {{ color: #b00020; }} .pos {{ color: #1b7f3b; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; }}
</style>
</head>
<body>
<h1>{esc(title)}</h1>
<h2>Summary</h2>
<table class="summary">
{summary}
</table>
<h2>Per instrument</h2>
<table class="instruments">
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<h2>Plots</h2>
{figures}
</body>
</html>
"""


def write_plots(report: Report, out_dir: Path) -> list[Path]:
    """equity.png, drawdown.png and pnl.png; returns their paths in that order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / EQUITY_PNG, out_dir / DRAWDOWN_PNG, out_dir / PNL_PNG]
    _save(_equity_figure(report), paths[0])
    _save(_drawdown_figure(report), paths[1])
    _save(_pnl_figure(report), paths[2])
    return paths


def _new_figure(width: float = 10.0, height: float = 4.0) -> Figure:
    # Figure + the Agg canvas directly: no pyplot, so no global state and no GUI backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> None:
    # No "Software" tag (it carries the matplotlib version): same report, same bytes.
    fig.savefig(path, format="png", metadata={"Software": None})


def _times(points: Sequence[CurvePoint]) -> npt.NDArray[np.datetime64]:
    import numpy as np

    return np.array([p.ts_ns for p in points], dtype="datetime64[ns]")


def _equity_figure(report: Report) -> Figure:
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.set_title("Equity")
    ax.set_ylabel("equity (quote)")
    if report.equity_curve:
        x = _times(report.equity_curve)
        ax.plot(x, [p.value for p in report.equity_curve], label="strategy", color="#1f5fa8")
        ax.plot(
            x,
            [p.value for p in report.buy_hold_curve],
            label="buy & hold",
            color="#999999",
            linestyle="--",
        )
        ax.legend(loc="best")
    else:
        _no_data(fig)
    ax.grid(alpha=0.3)
    return fig


def _drawdown_figure(report: Report) -> Figure:
    fig = _new_figure(height=3.0)
    ax = fig.add_subplot()
    ax.set_title("Drawdown")
    ax.set_ylabel("drawdown (%)")
    if report.drawdown_curve:
        x = _times(report.drawdown_curve)
        y = [p.value * 100 for p in report.drawdown_curve]
        ax.fill_between(x, y, 0.0, color="#b00020", alpha=0.35, linewidth=0)
        ax.plot(x, y, color="#b00020", linewidth=0.8)
    else:
        _no_data(fig)
    ax.grid(alpha=0.3)
    return fig


def _pnl_figure(report: Report) -> Figure:
    names = [i.instrument for i in report.instruments]
    fig = _new_figure(width=max(6.0, 1.2 * len(names) + 2), height=4.0)
    ax = fig.add_subplot()
    ax.set_title("PnL per instrument (net of fees) vs buy & hold")
    ax.set_ylabel("PnL (quote)")
    if names:
        pos = list(range(len(names)))
        net = [i.net_pnl for i in report.instruments]
        bh = [i.buy_hold_pnl or 0.0 for i in report.instruments]
        ax.bar([p - 0.2 for p in pos], net, width=0.4, label="strategy", color="#1f5fa8")
        ax.bar([p + 0.2 for p in pos], bh, width=0.4, label="buy & hold", color="#999999")
        ax.set_xticks(pos, names, rotation=30, ha="right")
        ax.axhline(0.0, color="#444444", linewidth=0.8)
        ax.legend(loc="best")
    else:
        _no_data(fig)
    ax.grid(axis="y", alpha=0.3)
    return fig


def _no_data(fig: Figure) -> None:
    fig.text(0.5, 0.5, "no data", ha="center", va="center", color="#888888")
