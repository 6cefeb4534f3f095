"""Normalised market data before it becomes an event (validation works on these)."""

from __future__ import annotations

from dataclasses import dataclass


class ParseError(ValueError):
    """A line that is not a market-data message we understand; `reason` is a DLQ reason code."""

    def __init__(self, reason: str, detail: str, raw: bytes) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.raw = raw


@dataclass(frozen=True, slots=True)
class TradeData:
    exchange: str
    symbol: str
    trade_id: str
    price: float
    size: float
    side: str  # aggressor: "buy" | "sell"
    ts_event: int
    raw: bytes = b""


@dataclass(frozen=True, slots=True)
class QuoteData:
    exchange: str
    symbol: str
    bid: float
    bid_size: float
    ask: float
    ask_size: float
    ts_event: int
    raw: bytes = b""
    # A feed's per-instrument update counter that must step by exactly 1, where it has one.
    sequence: int | None = None
