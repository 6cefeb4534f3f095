"""Backtest report metrics, computed from execution fills and mark prices.

Pure: no bus, cache or clock. The engine hands over its fills and the marks (e.g. every 1 s bar
close) and gets back a frozen ``Report``; ``render`` turns that into tables, HTML and plots.

Conventions (the tests pin each of them):

* Accounting is in the quote currency. Cash starts at ``initial_capital``; a buy costs
  ``qty * price + fee``, a sell brings ``qty * price - fee``. Positions may go short.
* The equity curve has one point per distinct mark timestamp: cash plus every position marked at
  its instrument's latest mark (the latest fill price while an instrument has no mark yet).
  Fills at or before a point's timestamp count in it, so a fill and a mark at the same
  nanosecond are valued together. Fills after the last mark add one closing point at the last
  fill's timestamp, so the curve always ends at the final equity.
* Drawdown is ``equity / running_peak - 1`` (0 or negative); the running peak starts at the
  initial capital, so losses before the first high count. ``MaxDrawdown.fraction`` and
  ``.amount`` are positive magnitudes of the deepest drawdown by fraction.
* Per-period returns are simple returns between consecutive curve points. Sharpe is
  ``mean / stdev (ddof=1) * sqrt(periods_per_year)``; Sortino is
  ``mean / downside_deviation * sqrt(periods_per_year)`` with the downside deviation
  ``sqrt(sum(min(r, 0)^2) / n)`` over all n periods. The risk-free rate and target are 0.
  ``periods_per_year``, when not given, is a 365-day year (crypto trades every day) divided by
  the median spacing of the curve's timestamps.
* Undefined metrics are ``None``, never NaN: Sharpe, Sortino and volatility with fewer than
  two returns (three curve points) or once equity reached 0 or below; Sharpe when the stdev is
  (numerically) zero, e.g. flat equity, with volatility then 0.0; Sortino when no period lost;
  the hit rate with no closed round trip; buy-and-hold figures for an instrument without marks.
  Max drawdown is 0.0 with no peak/trough times when equity never fell.
* Round trips are matched FIFO per instrument: each (opening lot, closing fill) overlap is one
  trip. Its PnL is the price move times the matched quantity less the matched share of both
  fills' fees; a trip is a hit when that is > 0.
* Per instrument, ``realized`` and ``unrealized`` are before fees and ``net_pnl`` is
  ``realized + unrealized - fees``; so final equity is initial capital plus the sum of net PnL.
* Buy-and-hold splits the initial capital equally across the instruments that have marks, buys
  each at its first mark and holds it to its last, with no fees.
* ``Report.to_dict`` rounds every float to ``DECIMALS`` decimal places (and writes -0.0 as 0.0),
  so identical inputs give byte-identical JSON and float noise does not show.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, NamedTuple

DECIMALS = 10
# A 365-day year: crypto markets never close.
YEAR_NS = 365 * 86_400 * 1_000_000_000
# Lots left with less than this fraction of their quantity are closed: float sums such as
# 0.1 + 0.2 - 0.3 would otherwise leave 1e-17 dust lots and phantom round trips.
_DUST = 1e-9
# A deviation this small relative to the mean is float noise on a constant series.
_ZERO_DEVIATION = 1e-9

BUY = "buy"
SELL = "sell"


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution fill."""

    ts_ns: int
    instrument: str  # e.g. "binance:BTC/USDT"
    side: str  # "buy" | "sell"
    qty: float
    price: float
    fee: float  # quote currency, >= 0 (a rebate may be negative)


@dataclass(frozen=True, slots=True)
class Mark:
    """A mark price, e.g. each 1 s bar close."""

    ts_ns: int
    instrument: str
    price: float


class CurvePoint(NamedTuple):
    ts_ns: int
    value: float


@dataclass(frozen=True, slots=True)
class MaxDrawdown:
    """The deepest drawdown by fraction; times are None when equity never fell below a peak."""

    fraction: float  # positive, e.g. 0.25 for a 25 % fall
    amount: float  # peak equity minus trough equity, quote currency
    peak_ts_ns: int | None = None
    trough_ts_ns: int | None = None
    recovery_ts_ns: int | None = None  # first time back at the peak; None if never
    peak_equity: float | None = None
    trough_equity: float | None = None


@dataclass(frozen=True, slots=True)
class InstrumentReport:
    instrument: str
    fills: int
    traded_notional: float
    realized: float  # before fees
    unrealized: float  # open lots at the last price, before fees
    fees: float
    net_pnl: float  # realized + unrealized - fees
    final_position: float  # signed base quantity
    last_price: float | None  # latest mark (latest fill price if never marked)
    trips: int
    hits: int
    hit_rate: float | None
    buy_hold_pnl: float | None  # None without marks
    buy_hold_return: float | None


@dataclass(frozen=True, slots=True)
class Report:
    initial_capital: float
    final_equity: float
    total_return: float
    start_ts_ns: int | None  # first curve point
    end_ts_ns: int | None  # last curve point
    periods: int  # number of per-period returns
    periods_per_year: float | None
    sharpe: float | None
    sortino: float | None
    volatility: float | None  # annualised stdev of per-period returns
    max_drawdown: MaxDrawdown
    traded_notional: float
    turnover: float  # traded notional / initial capital
    total_fees: float
    fills: int
    trips: int
    hits: int
    hit_rate: float | None
    buy_hold_pnl: float
    buy_hold_return: float
    excess_return: float  # total_return - buy_hold_return
    instruments: tuple[InstrumentReport, ...]
    equity_curve: tuple[CurvePoint, ...] = field(repr=False)
    drawdown_curve: tuple[CurvePoint, ...] = field(repr=False)  # fractions, <= 0
    buy_hold_curve: tuple[CurvePoint, ...] = field(repr=False)

    def to_dict(self, *, include_series: bool = True) -> dict[str, Any]:
        """JSON-safe, in a fixed key order; floats rounded to DECIMALS places, None for n/a."""
        dd = self.max_drawdown
        out: dict[str, Any] = {
            "initial_capital": _num(self.initial_capital),
            "final_equity": _num(self.final_equity),
            "total_return": _num(self.total_return),
            "buy_hold_pnl": _num(self.buy_hold_pnl),
            "buy_hold_return": _num(self.buy_hold_return),
            "excess_return": _num(self.excess_return),
            "start_ts_ns": self.start_ts_ns,
            "end_ts_ns": self.end_ts_ns,
            "periods": self.periods,
            "periods_per_year": _num(self.periods_per_year),
            "sharpe": _num(self.sharpe),
            "sortino": _num(self.sortino),
            "volatility": _num(self.volatility),
            # Flat, not nested: callers such as the sweep keep only the scalar entries.
            "max_drawdown": _num(dd.fraction),
            "max_drawdown_amount": _num(dd.amount),
            "max_drawdown_peak_ts_ns": dd.peak_ts_ns,
            "max_drawdown_trough_ts_ns": dd.trough_ts_ns,
            "max_drawdown_recovery_ts_ns": dd.recovery_ts_ns,
            "max_drawdown_peak_equity": _num(dd.peak_equity),
            "max_drawdown_trough_equity": _num(dd.trough_equity),
            "traded_notional": _num(self.traded_notional),
            "turnover": _num(self.turnover),
            "total_fees": _num(self.total_fees),
            "fills": self.fills,
            "trips": self.trips,
            "hits": self.hits,
            "hit_rate": _num(self.hit_rate),
            "instruments": [_instrument_dict(i) for i in self.instruments],
        }
        if include_series:
            out["equity_curve"] = _series(self.equity_curve)
            out["drawdown_curve"] = _series(self.drawdown_curve)
            out["buy_hold_curve"] = _series(self.buy_hold_curve)
        return out


SERIES = ("equity_curve", "drawdown_curve", "buy_hold_curve")


def to_json(report: Report, *, include_series: bool = True) -> str:
    """``to_dict`` as indented JSON, each series point ``[ts_ns, value]`` on one line."""
    doc = report.to_dict(include_series=include_series)
    series = {name: doc.pop(name) for name in SERIES if name in doc}
    # allow_nan=False: a NaN reaching here is a bug, better raised than written.
    text = json.dumps(doc, indent=2, allow_nan=False)
    if series:
        blocks = []
        for name, points in series.items():
            # json.dumps per point is slow on day-long 1 s curves; _num already made values
            # finite floats or None, whose JSON is repr() or null.
            rows = ",\n".join(f"    [{ts}, {_json_num(v)}]" for ts, v in points)
            blocks.append(f"  {json.dumps(name)}: [" + (f"\n{rows}\n  ]" if rows else "]"))
        text = text[: -len("\n}")] + ",\n" + ",\n".join(blocks) + "\n}"
    return text + "\n"


def write_json(report: Report, path: Path, *, include_series: bool = True) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_json(report, include_series=include_series), encoding="utf-8")
    return path


def build_report(
    fills: Sequence[Fill],
    marks: Sequence[Mark],
    initial_capital: float,
    periods_per_year: float | None = None,
) -> Report:
    """Replays fills against marks in time order; see the module docstring for conventions.

    Raises ValueError on invalid input (non-positive capital, quantity or price, unknown side,
    non-finite numbers); degenerate but valid input (no fills, one mark) never raises.
    """
    _check_positive("initial_capital", initial_capital)
    initial_capital = float(initial_capital)
    if periods_per_year is not None:
        _check_positive("periods_per_year", periods_per_year)
    for f in fills:
        _check_fill(f)
    for m in marks:
        _check_positive(f"mark price of {m.instrument}", m.price)

    # Stable sorts: equal timestamps keep input order (a later mark at the same ns wins).
    fills_sorted = sorted(fills, key=lambda f: f.ts_ns)
    marks_sorted = sorted(marks, key=lambda m: m.ts_ns)

    first_mark: dict[str, float] = {}
    for m in marks_sorted:
        first_mark.setdefault(m.instrument, m.price)
    bh_capital = initial_capital / len(first_mark) if first_mark else 0.0

    books: dict[str, _Book] = {}
    last_mark: dict[str, float] = {}
    cash = initial_capital
    equity: list[CurvePoint] = []
    bh: list[CurvePoint] = []
    fi = 0

    def apply_fills_until(ts_ns: int) -> None:
        nonlocal fi, cash
        while fi < len(fills_sorted) and fills_sorted[fi].ts_ns <= ts_ns:
            f = fills_sorted[fi]
            cash += books.setdefault(f.instrument, _Book()).apply(f)
            fi += 1

    def sample(ts_ns: int) -> None:
        value = cash + sum(
            b.position * last_mark.get(name, b.last_fill_price) for name, b in books.items()
        )
        equity.append(CurvePoint(ts_ns, value))
        held = sum(bh_capital * last_mark[i] / p0 for i, p0 in first_mark.items() if i in last_mark)
        unmarked = bh_capital * sum(1 for i in first_mark if i not in last_mark)
        bh.append(CurvePoint(ts_ns, held + unmarked if first_mark else initial_capital))

    mi = 0
    while mi < len(marks_sorted):
        ts = marks_sorted[mi].ts_ns
        while mi < len(marks_sorted) and marks_sorted[mi].ts_ns == ts:
            last_mark[marks_sorted[mi].instrument] = marks_sorted[mi].price
            mi += 1
        apply_fills_until(ts)
        sample(ts)
    if fi < len(fills_sorted):
        apply_fills_until(fills_sorted[-1].ts_ns)
        sample(fills_sorted[-1].ts_ns)

    instruments = tuple(
        _instrument_report(
            name,
            books.get(name, _Book()),
            last_mark.get(name),
            first_mark.get(name),
            bh_capital,
        )
        for name in sorted(books.keys() | first_mark.keys())
    )
    return _assemble(initial_capital, periods_per_year, instruments, equity, bh)


def _assemble(
    initial_capital: float,
    periods_per_year: float | None,
    instruments: tuple[InstrumentReport, ...],
    equity: list[CurvePoint],
    bh: list[CurvePoint],
) -> Report:
    # Final equity from the per-instrument PnL, so the two always reconcile; it equals the
    # curve's last point up to float rounding.
    final_equity = initial_capital + math.fsum(i.net_pnl for i in instruments)
    returns = _returns(equity)
    ppy = periods_per_year if periods_per_year is not None else _infer_periods_per_year(equity)
    sharpe, sortino, vol = _risk_ratios(returns, ppy)
    drawdown, max_dd = _drawdowns(equity, initial_capital)
    bh_pnl = math.fsum(i.buy_hold_pnl or 0.0 for i in instruments)
    traded = math.fsum(i.traded_notional for i in instruments)
    trips = sum(i.trips for i in instruments)
    hits = sum(i.hits for i in instruments)
    total_return = final_equity / initial_capital - 1.0
    bh_return = bh_pnl / initial_capital
    return Report(
        initial_capital=initial_capital,
        final_equity=final_equity,
        total_return=total_return,
        start_ts_ns=equity[0].ts_ns if equity else None,
        end_ts_ns=equity[-1].ts_ns if equity else None,
        periods=len(returns) if returns is not None else max(len(equity) - 1, 0),
        periods_per_year=ppy,
        sharpe=sharpe,
        sortino=sortino,
        volatility=vol,
        max_drawdown=max_dd,
        traded_notional=traded,
        turnover=traded / initial_capital,
        total_fees=math.fsum(i.fees for i in instruments),
        fills=sum(i.fills for i in instruments),
        trips=trips,
        hits=hits,
        hit_rate=hits / trips if trips else None,
        buy_hold_pnl=bh_pnl,
        buy_hold_return=bh_return,
        excess_return=total_return - bh_return,
        instruments=instruments,
        equity_curve=tuple(equity),
        drawdown_curve=tuple(drawdown),
        buy_hold_curve=tuple(bh),
    )


@dataclass(slots=True)
class _Lot:
    qty: float  # remaining, > 0
    opened_qty: float
    price: float
    fee_per_unit: float
    sign: int  # +1 long, -1 short


@dataclass(slots=True)
class _Book:
    """One instrument's FIFO lots; all open lots share a sign (long or short)."""

    lots: deque[_Lot] = field(default_factory=deque)
    realized: float = 0.0
    fees: float = 0.0
    notional: float = 0.0
    fills: int = 0
    trips: int = 0
    hits: int = 0
    last_fill_price: float = 0.0
    position: float = 0.0  # signed sum of the lots, kept current: equity reads it per mark

    def unrealized(self, price: float) -> float:
        return math.fsum(lot.sign * lot.qty * (price - lot.price) for lot in self.lots)

    def apply(self, f: Fill) -> float:
        """Books the fill; returns the cash change."""
        sign = 1 if f.side == BUY else -1
        fee_per_unit = f.fee / f.qty
        self.fills += 1
        self.fees += f.fee
        self.notional += f.qty * f.price
        self.last_fill_price = f.price
        left = f.qty
        while left > _DUST * f.qty and self.lots and self.lots[0].sign != sign:
            lot = self.lots[0]
            matched = min(lot.qty, left)
            gross = matched * (f.price - lot.price) * lot.sign
            self.realized += gross
            self.trips += 1
            if gross - matched * (lot.fee_per_unit + fee_per_unit) > 0:
                self.hits += 1
            lot.qty -= matched
            left -= matched
            if lot.qty <= _DUST * lot.opened_qty:
                self.lots.popleft()
        if left > _DUST * f.qty:
            self.lots.append(_Lot(left, left, f.price, fee_per_unit, sign))
        self.position = math.fsum(lot.sign * lot.qty for lot in self.lots)
        return -sign * f.qty * f.price - f.fee


def _instrument_report(
    name: str,
    book: _Book,
    last_mark: float | None,
    first_mark: float | None,
    bh_capital: float,
) -> InstrumentReport:
    price = last_mark if last_mark is not None else (book.last_fill_price if book.fills else None)
    unrealized = book.unrealized(price) if price is not None else 0.0
    bh_return = None
    if last_mark is not None and first_mark is not None:
        bh_return = last_mark / first_mark - 1.0
    return InstrumentReport(
        instrument=name,
        fills=book.fills,
        traded_notional=book.notional,
        realized=book.realized,
        unrealized=unrealized,
        fees=book.fees,
        net_pnl=book.realized + unrealized - book.fees,
        final_position=book.position,
        last_price=price,
        trips=book.trips,
        hits=book.hits,
        hit_rate=book.hits / book.trips if book.trips else None,
        buy_hold_pnl=bh_capital * bh_return if bh_return is not None else None,
        buy_hold_return=bh_return,
    )


def _returns(equity: Sequence[CurvePoint]) -> list[float] | None:
    """Simple per-period returns; None once equity reaches 0 or below (returns undefined)."""
    out: list[float] = []
    for prev, cur in pairwise(equity):
        if prev.value <= 0:
            return None
        out.append(cur.value / prev.value - 1.0)
    return out


def _infer_periods_per_year(equity: Sequence[CurvePoint]) -> float | None:
    gaps = [b.ts_ns - a.ts_ns for a, b in pairwise(equity)]
    if not gaps:
        return None
    median = statistics.median(gaps)
    return YEAR_NS / median if median > 0 else None


def _risk_ratios(
    returns: list[float] | None, ppy: float | None
) -> tuple[float | None, float | None, float | None]:
    """(Sharpe, Sortino, annualised volatility); None where undefined."""
    if returns is None or len(returns) < 2 or ppy is None:
        return None, None, None
    n = len(returns)
    mean = math.fsum(returns) / n
    std = math.sqrt(math.fsum((r - mean) ** 2 for r in returns) / (n - 1))
    downside = math.sqrt(math.fsum(min(r, 0.0) ** 2 for r in returns) / n)
    scale = math.sqrt(ppy)
    flat = std <= _ZERO_DEVIATION * abs(mean)
    sharpe = None if flat else mean / std * scale
    sortino = None if downside == 0 else mean / downside * scale
    return sharpe, sortino, (0.0 if flat else std * scale)


def _drawdowns(
    equity: Sequence[CurvePoint], initial_capital: float
) -> tuple[list[CurvePoint], MaxDrawdown]:
    curve: list[CurvePoint] = []
    peak, peak_ts = initial_capital, equity[0].ts_ns if equity else None
    worst = 0.0
    worst_at: tuple[float, int | None, float, int] | None = None  # peak, peak_ts, trough, ts
    for point in equity:
        if point.value > peak:
            peak, peak_ts = point.value, point.ts_ns
        dd = point.value / peak - 1.0  # peak >= initial capital > 0
        curve.append(CurvePoint(point.ts_ns, dd))
        if dd < worst:
            worst, worst_at = dd, (peak, peak_ts, point.value, point.ts_ns)
    if worst_at is None:
        return curve, MaxDrawdown(fraction=0.0, amount=0.0)
    dd_peak, dd_peak_ts, trough, trough_ts = worst_at
    recovery = next((p.ts_ns for p in equity if p.ts_ns > trough_ts and p.value >= dd_peak), None)
    return curve, MaxDrawdown(
        fraction=-worst,
        amount=dd_peak - trough,
        peak_ts_ns=dd_peak_ts,
        trough_ts_ns=trough_ts,
        recovery_ts_ns=recovery,
        peak_equity=dd_peak,
        trough_equity=trough,
    )


def _check_positive(what: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{what} must be a finite number > 0, got {value!r}")


def _check_fill(f: Fill) -> None:
    if f.side not in (BUY, SELL):
        raise ValueError(f"fill side must be 'buy' or 'sell', got {f.side!r}")
    _check_positive(f"fill qty of {f.instrument}", f.qty)
    _check_positive(f"fill price of {f.instrument}", f.price)
    if not math.isfinite(f.fee):
        raise ValueError(f"fill fee of {f.instrument} must be finite, got {f.fee!r}")


def _num(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    rounded = round(float(x), DECIMALS)  # float(): an int price still writes as 108.0
    return rounded if rounded != 0 else 0.0  # no "-0.0" in the JSON


def _json_num(x: float | None) -> str:
    return "null" if x is None else repr(x)


def _series(points: Iterable[CurvePoint]) -> list[list[float | int | None]]:
    return [[p.ts_ns, _num(p.value)] for p in points]


def _instrument_dict(i: InstrumentReport) -> dict[str, Any]:
    return {
        "instrument": i.instrument,
        "fills": i.fills,
        "traded_notional": _num(i.traded_notional),
        "realized": _num(i.realized),
        "unrealized": _num(i.unrealized),
        "fees": _num(i.fees),
        "net_pnl": _num(i.net_pnl),
        "final_position": _num(i.final_position),
        "last_price": _num(i.last_price),
        "trips": i.trips,
        "hits": i.hits,
        "hit_rate": _num(i.hit_rate),
        "buy_hold_pnl": _num(i.buy_hold_pnl),
        "buy_hold_return": _num(i.buy_hold_return),
    }
