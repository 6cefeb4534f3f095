"""ccxt's unified structures (trade, ticker, order book) -> TradeData / QuoteData.

Pure: works on the dicts ccxt returns, without importing ccxt. The dead-letter payload is
the exchange's own message (`info`), which ccxt keeps next to its parsed fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from tickpipe.marketdata.records import ParseError, QuoteData, TradeData

MS = 1_000_000


def _raw(structure: Mapping[str, Any]) -> bytes:
    info = structure.get("info")
    return orjson.dumps(info if info is not None else structure, default=str)


def _number(structure: Mapping[str, Any], field: str, raw: bytes) -> float:
    value = structure.get(field)
    if value is None:
        raise ParseError("missing_field", f"{field} is missing", raw)
    if isinstance(value, bool):
        raise ParseError("invalid_number", f"{field}: {value!r}", raw)
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ParseError("invalid_number", f"{field}: {value!r}", raw) from exc


def _ms_to_ns(value: Any, field: str, raw: bytes) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ParseError("invalid_timestamp", f"{field}: {value!r}", raw)
    return int(value) * MS


def trade_from_ccxt(exchange: str, trade: Mapping[str, Any]) -> TradeData:
    """A ccxt trade (`fetch_trades` / `watch_trades` element). Raises ParseError."""
    raw = _raw(trade)
    symbol = trade.get("symbol")
    if not symbol:
        raise ParseError("missing_field", "symbol is missing", raw)
    trade_id = trade.get("id")
    if trade_id is None or str(trade_id) == "":
        raise ParseError("missing_field", "id is missing", raw)
    side = trade.get("side")
    if side not in ("buy", "sell"):
        raise ParseError("invalid_side", f"side: {side!r}", raw)
    return TradeData(
        exchange=exchange,
        symbol=str(symbol),
        trade_id=str(trade_id),
        price=_number(trade, "price", raw),
        size=_number(trade, "amount", raw),
        side=side,
        ts_event=_ms_to_ns(trade.get("timestamp"), "timestamp", raw),
        raw=raw,
    )


def quote_from_ticker(exchange: str, ticker: Mapping[str, Any], recv_ns: int) -> QuoteData:
    """A ccxt ticker (`fetch_ticker`, `watch_ticker`, `watch_bids_asks`) as top of book.

    Tickers without an exchange time (Binance's bookTicker) take the receive time.
    """
    raw = _raw(ticker)
    symbol = ticker.get("symbol")
    if not symbol:
        raise ParseError("missing_field", "symbol is missing", raw)
    ts = ticker.get("timestamp")
    return QuoteData(
        exchange=exchange,
        symbol=str(symbol),
        bid=_number(ticker, "bid", raw),
        bid_size=_optional_size(ticker, "bidVolume", raw),
        ask=_number(ticker, "ask", raw),
        ask_size=_optional_size(ticker, "askVolume", raw),
        ts_event=recv_ns if ts is None else _ms_to_ns(ts, "timestamp", raw),
        raw=raw,
    )


def _optional_size(structure: Mapping[str, Any], field: str, raw: bytes) -> float:
    # Several exchanges' tickers carry prices without sizes; the event allows size 0.
    return 0.0 if structure.get(field) is None else _number(structure, field, raw)


def _level(side: Any, name: str, raw: bytes) -> tuple[float, float]:
    if not isinstance(side, Sequence) or not side:
        raise ParseError("missing_field", f"{name} is empty", raw)
    level = side[0]
    if not isinstance(level, Sequence) or len(level) < 2:
        raise ParseError("missing_field", f"{name}[0]: {level!r}", raw)
    try:
        return float(level[0]), float(level[1])
    except (TypeError, ValueError) as exc:
        raise ParseError("invalid_number", f"{name}[0]: {level!r}", raw) from exc


def quote_from_order_book(
    exchange: str, symbol: str, book: Mapping[str, Any], recv_ns: int, depth: int = 5
) -> QuoteData:
    """The top level of a ccxt order book; the raw payload keeps the first `depth` levels."""
    bids, asks = book.get("bids"), book.get("asks")
    top = {
        "symbol": symbol,
        "timestamp": book.get("timestamp"),
        "nonce": book.get("nonce"),
        "bids": list(bids[:depth]) if isinstance(bids, Sequence) else bids,
        "asks": list(asks[:depth]) if isinstance(asks, Sequence) else asks,
    }
    raw = orjson.dumps(top, default=str)
    bid, bid_size = _level(bids, "bids", raw)
    ask, ask_size = _level(asks, "asks", raw)
    ts = book.get("timestamp")
    return QuoteData(
        exchange=exchange,
        symbol=symbol,
        bid=bid,
        bid_size=bid_size,
        ask=ask,
        ask_size=ask_size,
        ts_event=recv_ns if ts is None else _ms_to_ns(ts, "timestamp", raw),
        raw=raw,
    )
