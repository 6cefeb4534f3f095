"""Rows of trades or quotes (from CSV, JSON or Parquet) -> TradeData / QuoteData.

Columns are found by name among the spellings public datasets use (freqtrade, Tardis,
nautilus, ccxt's unified structures, Binance's single-letter keys), so one parser serves every
tabular layout. A row that cannot be read raises `ParseError` with a DLQ reason code; numbers
that parse but are wrong (NaN, negative, crossed) are left to the ingest validator.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tickpipe.marketdata.recorded import QUOTE_ASSETS, unified_symbol
from tickpipe.marketdata.records import ParseError, QuoteData, TradeData

_TS = ("timestamp", "ts_event", "time", "ts", "T", "transact_time", "datetime", "date")
_SYMBOL = ("symbol", "s", "pair", "instrument")
_EXCHANGE = ("exchange",)

TRADE_COLUMNS: dict[str, tuple[str, ...]] = {
    "ts": _TS,
    "price": ("price", "p", "px"),
    "size": ("amount", "quantity", "qty", "size", "volume", "q"),
    "side": ("side", "taker_side", "aggressor_side"),
    "buyer_maker": ("buyer_maker", "is_buyer_maker", "isBuyerMaker", "m"),
    "id": ("id", "trade_id", "tradeId", "tid", "a", "t"),
    "symbol": _SYMBOL,
    "exchange": _EXCHANGE,
}
QUOTE_COLUMNS: dict[str, tuple[str, ...]] = {
    "ts": _TS,
    "bid": ("bid", "bid_price", "bidPrice", "best_bid", "b"),
    "bid_size": ("bid_size", "bid_amount", "bidQty", "bid_qty", "bidVolume", "B"),
    "ask": ("ask", "ask_price", "askPrice", "best_ask", "a"),
    "ask_size": ("ask_size", "ask_amount", "askQty", "ask_qty", "askVolume", "A"),
    "sequence": ("sequence", "seq"),
    "symbol": _SYMBOL,
    "exchange": _EXCHANGE,
}
_BUY = {"buy", "b", "bid", "taker_buy"}
_SELL = {"sell", "s", "ask", "offer", "taker_sell"}
_UNKNOWN_SIDE = {"", "unknown", "none", "null"}
_TRUE = {"true", "1", "t", "yes"}
_FALSE = {"false", "0", "f", "no"}


@dataclass(frozen=True)
class Layout:
    """Which column holds which field, for trades or for quotes."""

    kind: str  # "trades" | "quotes"
    columns: dict[str, str]

    def has(self, field: str) -> bool:
        return field in self.columns


def detect_layout(names: Sequence[str]) -> Layout:
    """Trades or quotes, and each field's column. Raises ValueError for an unknown layout."""
    present = set(names)

    def pick(aliases: dict[str, tuple[str, ...]]) -> dict[str, str]:
        found: dict[str, str] = {}
        for field, spellings in aliases.items():
            name = next((s for s in spellings if s in present), None)
            if name is not None:
                found[field] = name
        return found

    quote = pick(QUOTE_COLUMNS)
    if {"ts", "bid", "ask"} <= set(quote):
        return Layout("quotes", quote)
    trade = pick(TRADE_COLUMNS)
    if {"ts", "price", "size"} <= set(trade):
        return Layout("trades", trade)
    raise ValueError(f"neither trades nor quotes: columns {list(names)}")


def normalize_symbol(raw: str) -> str:
    """Exchange spellings to ccxt's unified form: `XRP_ETH`, `BTC-USD`, `BTCUSDT` -> `X/Y`."""
    s = raw.strip().upper()
    if "/" in s:
        return s
    for sep in ("-", "_"):
        base, found, quote = s.partition(sep)
        if found and base and quote:
            return f"{base}/{quote}"
    return unified_symbol(s)


def symbol_from_filename(path: Path) -> str | None:
    """`XRP_ETH-trades.json.gz` -> `XRP/ETH`, `btcusdt-trades.parquet` -> `BTC/USDT`,
    `BTC-USD.csv` -> `BTC/USD`; None when the name does not start with a pair."""
    tokens = re.split(r"[-_ ]", path.name.split(".")[0].upper())
    if len(tokens) >= 2 and tokens[0].isalnum() and tokens[1] in QUOTE_ASSETS:
        return f"{tokens[0]}/{tokens[1]}"
    symbol = unified_symbol(tokens[0])
    return symbol if "/" in symbol else None


def _ts_scale(value: float) -> int:
    """Nanoseconds per unit, from the magnitude of an epoch timestamp (2001 onwards)."""
    magnitude = abs(value)
    if magnitude < 1e11:
        return 1_000_000_000  # seconds
    if magnitude < 1e14:
        return 1_000_000  # milliseconds
    if magnitude < 1e17:
        return 1_000  # microseconds
    return 1


class RowParser:
    """One file's rows. Stateful: the timestamp unit is fixed by the first row, so one broken
    value cannot silently change unit; sides missing from a file are inferred by the tick rule.
    """

    def __init__(self, layout: Layout, exchange: str | None, symbol: str | None) -> None:
        if not layout.has("exchange") and not exchange:
            raise ValueError("no exchange column: set the exchange for this file")
        if not layout.has("symbol") and not symbol:
            raise ValueError("no symbol column and none in the file name: set the symbol")
        self.layout = layout
        self._exchange = exchange or ""
        self._symbol = symbol or ""
        self._cols = layout.columns
        self._scale: int | None = None
        self._last_price: float | None = None
        self._last_side = "buy"
        self._row = 0

    def __call__(self, row: Mapping[str, Any], raw: bytes) -> TradeData | QuoteData:
        self._row += 1
        if self.layout.kind == "quotes":
            return self._quote(row, raw)
        return self._trade(row, raw)

    def _value(self, row: Mapping[str, Any], field: str, raw: bytes) -> Any:
        value = row.get(self._cols[field])
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ParseError("missing_field", f"{self._cols[field]} is empty", raw)
        return value

    def _number(self, row: Mapping[str, Any], field: str, raw: bytes) -> float:
        value = self._value(row, field, raw)
        if isinstance(value, bool):
            raise ParseError("invalid_number", f"{self._cols[field]}: {value!r}", raw)
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise ParseError("invalid_number", f"{self._cols[field]}: {value!r}", raw) from exc

    def _timestamp(self, row: Mapping[str, Any], raw: bytes) -> int:
        value = self._value(row, "ts", raw)
        try:
            if isinstance(value, datetime):
                return _datetime_ns(value)
            if isinstance(value, bool):
                raise ValueError(value)
            if isinstance(value, str):
                text = value.strip()
                try:
                    number = Decimal(text)
                except InvalidOperation:
                    return _datetime_ns(datetime.fromisoformat(text.replace("Z", "+00:00")))
            else:
                number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
            if not number.is_finite() or number <= 0:
                raise ValueError(value)
            if self._scale is None:
                self._scale = _ts_scale(float(number))
            return int(number * self._scale)
        except (TypeError, ValueError, InvalidOperation, OverflowError) as exc:
            raise ParseError("invalid_timestamp", f"{self._cols['ts']}: {value!r}", raw) from exc

    def _instrument(self, row: Mapping[str, Any], raw: bytes) -> tuple[str, str]:
        exchange = self._exchange
        if self.layout.has("exchange"):
            exchange = str(self._value(row, "exchange", raw)).strip()
        symbol = self._symbol
        if self.layout.has("symbol"):
            symbol = normalize_symbol(str(self._value(row, "symbol", raw)))
        return exchange, symbol

    def _side(self, row: Mapping[str, Any], price: float, raw: bytes) -> str:
        side: str | None = None
        if self.layout.has("side"):
            text = str(row.get(self._cols["side"]) or "").strip().lower()
            if text in _BUY:
                side = "buy"
            elif text in _SELL:
                side = "sell"
            elif text not in _UNKNOWN_SIDE:
                raise ParseError("invalid_side", f"{self._cols['side']}: {text!r}", raw)
        if side is None and self.layout.has("buyer_maker"):
            flag = row.get(self._cols["buyer_maker"])
            text = str(flag).strip().lower()
            if flag is True or text in _TRUE:
                side = "sell"  # the buyer rested, so the seller took liquidity
            elif flag is False or text in _FALSE:
                side = "buy"
            else:
                raise ParseError("invalid_side", f"{self._cols['buyer_maker']}: {flag!r}", raw)
        if side is None:
            # Tick rule (no aggressor in the data): up-tick buy, down-tick sell, else repeat.
            last = self._last_price
            if last is not None and math.isfinite(price) and price != last:
                side = "buy" if price > last else "sell"
            else:
                side = self._last_side
        return side

    def _trade_id(self, row: Mapping[str, Any], raw: bytes) -> str:
        if not self.layout.has("id"):
            return f"row{self._row}"  # not an exchange id: never checked for gaps
        value = self._value(row, "id", raw)
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value).strip()

    def _trade(self, row: Mapping[str, Any], raw: bytes) -> TradeData:
        ts = self._timestamp(row, raw)
        price = self._number(row, "price", raw)
        size = self._number(row, "size", raw)
        side = self._side(row, price, raw)
        trade_id = self._trade_id(row, raw)
        exchange, symbol = self._instrument(row, raw)
        if math.isfinite(price):
            self._last_price = price
        self._last_side = side
        return TradeData(exchange, symbol, trade_id, price, size, side, ts, raw)

    def _quote(self, row: Mapping[str, Any], raw: bytes) -> QuoteData:
        ts = self._timestamp(row, raw)
        bid = self._number(row, "bid", raw)
        ask = self._number(row, "ask", raw)
        bid_size = self._number(row, "bid_size", raw) if self.layout.has("bid_size") else 0.0
        ask_size = self._number(row, "ask_size", raw) if self.layout.has("ask_size") else 0.0
        sequence = None
        if self.layout.has("sequence"):
            seq = self._number(row, "sequence", raw)
            if not seq.is_integer():
                raise ParseError("invalid_number", f"sequence: {seq!r}", raw)
            sequence = int(seq)
        exchange, symbol = self._instrument(row, raw)
        return QuoteData(exchange, symbol, bid, bid_size, ask, ask_size, ts, raw, sequence)


def _datetime_ns(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # datasets without a zone are UTC by convention
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    if ns <= 0:
        raise ValueError(value)
    return ns
