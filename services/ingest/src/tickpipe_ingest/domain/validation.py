"""Edge validation of market data. Returns a reason code for bad input, None when valid.

Gaps in numeric trade ids or in quote sequence numbers are not reasons to reject the record
that reveals them (it is good data): they are reported to the `DataQuality` port.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from tickpipe.marketdata import QuoteData, TradeData
from tickpipe_ingest.domain.quality import CollectingQuality, DataQuality, Gap

REASONS = (
    "non_finite",
    "invalid_price",
    "invalid_size",
    "size_above_bound",
    "timestamp_in_future",
    "timestamp_backwards",
    "duplicate_trade",
    "crossed_quote",
    "duplicate_quote",
    "sequence_backwards",
)


@dataclass(frozen=True)
class ValidationLimits:
    max_trade_size: float = 1e6
    future_tolerance_ns: int = 5_000_000_000
    backwards_tolerance_ns: int = 60_000_000_000
    dedupe_window: int = 100_000  # trade ids remembered per instrument


def _bad_number(x: float) -> bool:
    return math.isnan(x) or math.isinf(x)


def _numeric_id(trade_id: str) -> int | None:
    return int(trade_id) if trade_id.isascii() and trade_id.isdigit() else None


class Validator:
    """Stateful per instrument: last timestamp, recent trade ids (bounded memory), the highest
    numeric trade id and quote sequence (for gaps)."""

    def __init__(
        self, limits: ValidationLimits | None = None, quality: DataQuality | None = None
    ) -> None:
        self.limits = limits or ValidationLimits()
        self.quality: DataQuality = quality if quality is not None else CollectingQuality(10_000)
        self._last_ts: dict[str, int] = {}
        self._seen: dict[str, OrderedDict[str, None]] = {}
        self._last_id: dict[str, int] = {}
        self._last_seq: dict[str, int] = {}

    def resume_trade_ids(self, last: Mapping[str, int]) -> None:
        """The last numeric trade id an earlier run published per `exchange:symbol`: trades
        missed while ingest was down then show as a gap."""
        for key, tid in last.items():
            self._last_id[key] = max(self._last_id.get(key, tid), tid)

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
        self._track_id(key, t)
        return None

    def _track_id(self, key: str, t: TradeData) -> None:
        tid = _numeric_id(t.trade_id)
        if tid is None:
            return
        last = self._last_id.get(key)
        if last is not None and tid > last + 1:
            self.quality.report(
                Gap(t.exchange, t.symbol, "trades", "trade_id", last + 1, tid, t.ts_event)
            )
        if last is None or tid > last:
            self._last_id[key] = tid

    def quote(self, q: QuoteData, now_ns: int) -> str | None:
        if any(_bad_number(x) for x in (q.bid, q.ask, q.bid_size, q.ask_size)):
            return "non_finite"
        if q.bid <= 0 or q.ask <= 0:
            return "invalid_price"
        if q.bid_size < 0 or q.ask_size < 0:
            return "invalid_size"
        if q.bid >= q.ask:
            return "crossed_quote"
        key = f"{q.exchange}:{q.symbol}:q"
        last_seq = self._last_seq.get(key) if q.sequence is not None else None
        if q.sequence is not None and last_seq is not None and q.sequence <= last_seq:
            return "duplicate_quote" if q.sequence == last_seq else "sequence_backwards"
        reason = self._check_time(key, q.ts_event, now_ns)
        if reason or q.sequence is None:
            return reason
        if last_seq is not None and q.sequence > last_seq + 1:
            self.quality.report(
                Gap(
                    q.exchange, q.symbol, "quotes", "sequence", last_seq + 1, q.sequence, q.ts_event
                )
            )
        self._last_seq[key] = q.sequence
        return None
