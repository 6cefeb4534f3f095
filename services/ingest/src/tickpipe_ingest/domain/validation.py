"""Edge validation of market data. Returns a reason code for bad input, None when valid."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from tickpipe.marketdata import QuoteData, TradeData


@dataclass(frozen=True)
class ValidationLimits:
    max_trade_size: float = 1e6
    future_tolerance_ns: int = 5_000_000_000
    backwards_tolerance_ns: int = 60_000_000_000
    dedupe_window: int = 100_000  # trade ids remembered per instrument


def _bad_number(x: float) -> bool:
    return math.isnan(x) or math.isinf(x)


class Validator:
    """Stateful per instrument: last timestamp, recent trade ids (bounded memory)."""

    def __init__(self, limits: ValidationLimits | None = None) -> None:
        self.limits = limits or ValidationLimits()
        self._last_ts: dict[str, int] = {}
        self._seen: dict[str, OrderedDict[str, None]] = {}

    def _check_time(self, key: str, ts: int, now_ns: int) -> str | None:
        if ts > now_ns + self.limits.future_tolerance_ns:
            return "timestamp_in_future"
        last = self._last_ts.get(key)
        if last is not None and ts < last - self.limits.backwards_tolerance_ns:
            return "timestamp_backwards"
        if last is None or ts > last:
            self._last_ts[key] = ts
        return None

    def trade(self, t: TradeData, now_ns: int) -> str | None:
        if _bad_number(t.price) or _bad_number(t.size):
            return "non_finite"
        if t.price <= 0:
            return "invalid_price"
        if t.size <= 0:
            return "invalid_size"
        if t.size > self.limits.max_trade_size:
            return "size_above_bound"
        key = f"{t.exchange}:{t.symbol}"
        seen = self._seen.setdefault(key, OrderedDict())
        if t.trade_id in seen:
            return "duplicate_trade"
        reason = self._check_time(key, t.ts_event, now_ns)
        if reason:
            return reason
        seen[t.trade_id] = None
        if len(seen) > self.limits.dedupe_window:
            seen.popitem(last=False)
        return None

    def quote(self, q: QuoteData, now_ns: int) -> str | None:
        if any(_bad_number(x) for x in (q.bid, q.ask, q.bid_size, q.ask_size)):
            return "non_finite"
        if q.bid <= 0 or q.ask <= 0:
            return "invalid_price"
        if q.bid_size < 0 or q.ask_size < 0:
            return "invalid_size"
        if q.bid >= q.ask:
            return "crossed_quote"
        return self._check_time(f"{q.exchange}:{q.symbol}:q", q.ts_event, now_ns)
