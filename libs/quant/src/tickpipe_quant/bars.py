"""Time bars from trades: OHLCV, VWAP, count, buy and sell volume, on a regular grid.

Rules (the polars batch path in `batch.py` implements the same ones):

- Bars are `[start, start + interval)`, aligned to the epoch.
- The watermark is the greatest trade time seen minus the allowed lateness. A bar is
  emitted once the watermark reaches its end; bars come out in time order.
- A trade whose bar is still open goes into it, even out of order: open and close are the
  prices of its earliest and latest trade by event time (ties: first and last to arrive).
- A trade whose bar's end is at or below the watermark when it arrives is too late: it
  changes nothing, `late` counts it and `add` raises `LateTrade` so the caller reports it.
- The grid starts at the first bar with a trade and has no holes: an interval without
  trades is emitted as an empty bar (open = high = low = close = the previous close, zero
  volume, `count` 0, `empty` true). Time bars promise a regular clock: a 14-bar RSI spans 14
  intervals and a 5-bar return 5, which skipping quiet intervals would silently break.
- Trades advance the watermark; nothing else does (quotes carry the receiving clock, not
  the exchange's). A bar is emitted by the first trade at or past its end plus the lateness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tickpipe_quant.state import SlotState

NAN = float("nan")


@dataclass(frozen=True, slots=True)
class Bar:
    start: int  # ns, inclusive
    end: int  # ns, exclusive
    open: float
    high: float
    low: float
    close: float
    volume: float
    notional: float
    count: int
    buy_volume: float
    sell_volume: float

    @property
    def empty(self) -> bool:
        """No trade in the interval: prices carry the previous close."""
        return self.count == 0

    @property
    def vwap(self) -> float:
        return self.notional / self.volume if self.volume > 0 else self.close


class LateTrade(ValueError):
    """A trade for a bar already emitted: counted, left out of every bar."""

    def __init__(self, ts: int, bar_start: int, watermark: int) -> None:
        super().__init__(
            f"trade at {ts} ns belongs to the bar starting {bar_start}, already emitted "
            f"(watermark {watermark}, {watermark - ts} ns past the trade)"
        )
        self.ts = ts
        self.bar_start = bar_start
        self.watermark = watermark


class _OpenBar(SlotState):
    __slots__ = (
        "buy",
        "close",
        "close_ts",
        "count",
        "high",
        "low",
        "notional",
        "open",
        "open_ts",
        "sell",
        "volume",
    )

    def __init__(self) -> None:
        self.open_ts = self.close_ts = 0
        self.open = self.high = self.low = self.close = NAN
        self.volume = self.notional = self.buy = self.sell = 0.0
        self.count = 0

    def add(self, ts: int, price: float, size: float, is_buy: bool) -> None:
        if self.count == 0:
            self.open_ts = self.close_ts = ts
            self.open = self.high = self.low = self.close = price
        else:
            if ts < self.open_ts:
                self.open_ts, self.open = ts, price
            if ts >= self.close_ts:
                self.close_ts, self.close = ts, price
            self.high = max(self.high, price)
            self.low = min(self.low, price)
        self.volume += size
        self.notional += price * size
        self.count += 1
        if is_buy:
            self.buy += size
        else:
            self.sell += size

    def bar(self, start: int, end: int) -> Bar:
        return Bar(
            start,
            end,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.notional,
            self.count,
            self.buy,
            self.sell,
        )


class TimeBarBuilder(SlotState):
    """Aggregates one instrument's trades into time bars (see the module rules)."""

    __slots__ = ("_max_ts", "_next", "_open", "_prev_close", "interval", "late", "lateness")

    def __init__(self, interval_ns: int, allowed_lateness_ns: int = 0) -> None:
        if interval_ns <= 0:
            raise ValueError("interval must be positive")
        if allowed_lateness_ns < 0:
            raise ValueError("allowed lateness must not be negative")
        self.interval = interval_ns
        self.lateness = allowed_lateness_ns
        self.late = 0
        self._max_ts: int | None = None
        self._next: int | None = None  # start of the next bar to emit, once one was
        self._open: dict[int, _OpenBar] = {}
        self._prev_close = NAN

    @property
    def watermark(self) -> int | None:
        return None if self._max_ts is None else self._max_ts - self.lateness

    def add(self, ts: int, price: float, size: float, is_buy: bool) -> list[Bar]:
        """Add a trade; returns the bars it completed (often none, several after a gap)."""
        start = ts - ts % self.interval
        wm = self.watermark
        if wm is not None and start + self.interval <= wm:
            self.late += 1
            raise LateTrade(ts, start, wm)
        bar = self._open.get(start)
        if bar is None:
            bar = self._open[start] = _OpenBar()
        bar.add(ts, price, size, is_buy)
        if self._max_ts is None or ts > self._max_ts:
            self._max_ts = ts
            return self._emit(ts - self.lateness)
        return []

    def _emit(self, wm: int) -> list[Bar]:
        step = self.interval
        if self._next is None:
            first = min(self._open)
            if first + step > wm:
                return []
            self._next = first
        out: list[Bar] = []
        while self._next + step <= wm:
            start = self._next
            pending = self._open.pop(start, None)
            if pending is not None:
                bar = pending.bar(start, start + step)
            else:
                c = self._prev_close
                bar = Bar(start, start + step, c, c, c, c, 0.0, 0.0, 0, 0.0, 0.0)
            out.append(bar)
            self._prev_close = bar.close
            self._next = start + step
        return out

    def _load_slot(self, name: str, current: Any, data: Any) -> Any:
        if name != "_open":
            return super()._load_slot(name, current, data)
        bars: dict[int, _OpenBar] = {}
        for start, bar_state in data:
            bar = bars[int(start)] = _OpenBar()
            bar.load(bar_state)
        return bars
