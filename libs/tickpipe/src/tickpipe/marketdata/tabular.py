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
# Any other time column: `timestamp_ms`, `ts_ns`, `Time (UTC)`, `trade_time`, `epoch_s`...
# (matched on the name lower-cased without separators; the unit still comes from the values).
_TS_PATTERN = re.compile(
    r"(?:trade|event|exchange|transact)?(?:timestamp|time|ts|datetime|date|epoch|unix)"
    r"(?:s|sec|secs|seconds|ms|millis|milliseconds|us|micros|microseconds|ns|nanos"
    r"|nanoseconds|utc|\(utc\))?"
)
_SYMBOL = ("symbol", "s", "pair", "instrument", "market", "ticker")
_EXCHANGE = ("exchange", "venue")

TRADE_COLUMNS: dict[str, tuple[str, ...]] = {
    "ts": _TS,
    "price": ("price", "p", "px", "trade_price"),
    "size": (
        "amount",
        "quantity",
        "qty",
        "size",
        "volume",
        "q",
        "base_amount",
        "base_volume",
        "trade_size",
        "trade_qty",
    ),
    "side": ("side", "taker_side", "aggressor_side", "aggressor", "direction"),
    "buyer_maker": ("buyer_maker", "is_buyer_maker", "isBuyerMaker", "m", "maker_buyer"),
    "id": ("id", "trade_id", "tradeId", "tid", "a", "t", "agg_trade_id", "aggTradeId"),
    "symbol": _SYMBOL,
    "exchange": _EXCHANGE,
}
QUOTE_COLUMNS: dict[str, tuple[str, ...]] = {
    "ts": _TS,
    "bid": ("bid", "bid_price", "bidPrice", "best_bid", "b", "bid_px", "best_bid_price", "bid1"),
    "bid_size": (
        "bid_size",
        "bid_amount",
        "bidQty",
        "bid_qty",
        "bidVolume",
        "B",
        "bid_quantity",
        "bid_sz",
        "best_bid_size",
        "best_bid_qty",
        "bid_size1",
    ),
    "ask": ("ask", "ask_price", "askPrice", "best_ask", "a", "ask_px", "best_ask_price", "ask1"),
    "ask_size": (
        "ask_size",
        "ask_amount",
        "askQty",
        "ask_qty",
        "askVolume",
        "A",
        "ask_quantity",
        "ask_sz",
        "best_ask_size",
        "best_ask_qty",
        "ask_size1",
    ),
    "sequence": ("sequence", "seq"),
    "symbol": _SYMBOL,
    "exchange": _EXCHANGE,
}
_BUY = {"buy", "b", "bid", "taker_buy", "buyer", "bought"}
_SELL = {"sell", "s", "ask", "offer", "taker_sell", "seller", "sold"}
_UNKNOWN_SIDE = {"", "unknown", "none", "null", "nan"}
_TRUE = {"true", "1", "t", "yes", "y", "1.0"}
_FALSE = {"false", "0", "f", "no", "n", "0.0"}

# `--columns` (and TICKPIPE_INGEST_COLUMNS) names: what a user calls a field -> ours.
COLUMN_FIELDS: dict[str, str] = {
    "time": "ts",
    "timestamp": "ts",
    "ts": "ts",
    "id": "id",
    "trade_id": "id",
    "side": "side",
    "is_buyer_maker": "buyer_maker",
    "buyer_maker": "buyer_maker",
    "price": "price",
    "amount": "size",
    "size": "size",
    "qty": "size",
    "quantity": "size",
    "volume": "size",
    "bid": "bid",
    "bid_price": "bid",
    "ask": "ask",
    "ask_price": "ask",
    "bid_size": "bid_size",
    "bid_amount": "bid_size",
    "ask_size": "ask_size",
    "ask_amount": "ask_size",
    "sequence": "sequence",
    "symbol": "symbol",
    "exchange": "exchange",
}
# The names `--columns` documents (COLUMN_FIELDS also takes a few synonyms).
FIELD_NAMES = (
    "time",
    "id",
    "side",
    "is_buyer_maker",
    "price",
    "amount",
    "bid",
    "ask",
    "bid_size",
    "ask_size",
    "sequence",
    "symbol",
    "exchange",
)
# Our field -> the name the messages use for it.
_SHOWN = {"ts": "time", "size": "amount", "buyer_maker": "is_buyer_maker"}
_TRADE_ONLY = {"price", "size", "side", "buyer_maker", "id"}
_QUOTE_ONLY = {"bid", "ask", "bid_size", "ask_size", "sequence"}


def parse_columns(spec: str | Mapping[str, Any] | None) -> dict[str, str]:
    """`time=ts_ms,price=px,amount=qty` (or a mapping) -> {field: column}. The fields are
    `COLUMN_FIELDS`' names (`time`, `id`, `side`, `is_buyer_maker`, `price`, `amount`, `bid`,
    `ask`, `bid_size`, `ask_size`, `sequence`, `symbol`, `exchange`). Raises ValueError."""
    if spec is None:
        return {}
    if isinstance(spec, str):
        pairs: list[tuple[str, str]] = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            key, sep, value = part.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise ValueError(f"columns: {part!r} is not field=column, e.g. time=ts_ms")
            pairs.append((key, value))
    else:
        pairs = [(str(k), str(v)) for k, v in spec.items()]
    out: dict[str, str] = {}
    for key, value in pairs:
        name = key.strip().lower()
        if name not in COLUMN_FIELDS:
            known = ", ".join(FIELD_NAMES)
            raise ValueError(f"columns: unknown field {key.strip()!r}; one of {known}")
        if name in out:
            raise ValueError(f"columns: {name} named twice")
        out[name] = value.strip()
    fields = [COLUMN_FIELDS[k] for k in out]
    if len(set(fields)) != len(fields):
        raise ValueError(f"columns: one field named twice in {spec!r}")
    return out


def format_columns(columns: Mapping[str, str]) -> str:
    """The inverse of `parse_columns`, for settings and messages."""
    return ",".join(f"{k}={v}" for k, v in columns.items())


@dataclass(frozen=True)
class Layout:
    """Which column holds which field, for trades or for quotes."""

    kind: str  # "trades" | "quotes"
    columns: dict[str, str]

    def has(self, field: str) -> bool:
        return field in self.columns


def _squash(name: str) -> str:
    return re.sub(r"[\s_\-.]", "", name.strip().lower())


def _find(
    spellings: tuple[str, ...], names: Sequence[str], taken: set[str], field: str
) -> str | None:
    """A column for one field: an exact spelling first (in preference order), then the same
    spelling in another case or with other separators (`Price`, `tradeId`, `Bid Price`)."""
    free = [n for n in names if n not in taken]
    for spelling in spellings:
        if spelling in free:
            return spelling
    for spelling in spellings:
        if len(spelling) > 1:  # `T`, `B`, `m`: exact only (`b` is a bid, `B` its size)
            match = next((n for n in free if _squash(n) == _squash(spelling)), None)
            if match is not None:
                return match
    if field == "ts":
        return next((n for n in free if _TS_PATTERN.fullmatch(_squash(n))), None)
    return None


def _pick(
    aliases: dict[str, tuple[str, ...]], names: Sequence[str], given: Mapping[str, str]
) -> dict[str, str]:
    found = {field: column for field, column in given.items() if field in aliases}
    taken = set(found.values())
    for field, spellings in aliases.items():
        if field in found:
            continue
        name = _find(spellings, names, taken, field)
        if name is not None:
            found[field] = name
            taken.add(name)
    return found


def _shown(fields: Sequence[str]) -> str:
    return ", ".join(_SHOWN.get(f, f) for f in fields)


def detect_layout(
    names: Sequence[str],
    columns: Mapping[str, str] | None = None,
    source: str = "",
) -> Layout:
    """Trades or quotes, and each field's column. `columns` (`parse_columns`' result) names
    some or all of them; the rest are found by name. Raises ValueError for an unknown layout,
    in one line naming the columns found and those needed; `source` (the file) leads it.

    One `columns` may serve a trades file and a quotes file together: a file whose columns
    include a named trade column (price, amount...) is read as trades, and the quote entries
    do not apply to it, and the other way round. An entry that applies names a column the
    file must have."""
    prefix = f"{source}: " if source else ""
    listed = f"[{', '.join(names)}]"
    named = parse_columns(columns)
    present = {k: v for k, v in named.items() if v in names}
    wants_quotes = bool(_QUOTE_ONLY & {COLUMN_FIELDS[k] for k in present})
    wants_trades = bool(_TRADE_ONLY & {COLUMN_FIELDS[k] for k in present})
    if wants_quotes and wants_trades:
        both = ", ".join(f"{k}={v}" for k, v in present.items())
        raise ValueError(f"{prefix}columns {both} name both trade and quote fields")
    skip = _QUOTE_ONLY if wants_trades else _TRADE_ONLY if wants_quotes else set()
    absent = [
        f"{k}={v}" for k, v in named.items() if k not in present and COLUMN_FIELDS[k] not in skip
    ]
    if absent:
        raise ValueError(f"{prefix}columns {', '.join(absent)}: not in the file's {listed}")
    given = {COLUMN_FIELDS[k]: v for k, v in present.items()}
    quote = _pick(QUOTE_COLUMNS, names, given)
    trade = _pick(TRADE_COLUMNS, names, given)
    quote_missing = [f for f in ("ts", "bid", "ask") if f not in quote]
    trade_missing = [f for f in ("ts", "price", "size") if f not in trade]
    if not wants_trades and not quote_missing:
        return Layout("quotes", quote)
    if not wants_quotes and not trade_missing:
        return Layout("trades", trade)
    if wants_quotes:
        found = _found(quote, ("ts", "bid", "ask"))
        raise ValueError(
            f"{prefix}cannot read quotes from columns {listed}: missing "
            f"{_shown(quote_missing)} (found {found or 'none'}); a quote file needs time, "
            f"bid, ask (bid_size, ask_size optional); name them with --columns "
            f"time=...,bid=...,ask=..."
        )
    found = _found(trade, ("ts", "price", "size", "side", "buyer_maker"))
    what = "trades" if wants_trades else "trades or quotes"
    raise ValueError(
        f"{prefix}cannot tell {what} from columns {listed}"
        + (f" (found {found}; missing {_shown(trade_missing)})" if found else "")
        + "; a trade file needs time, price, amount (and side or is_buyer_maker), a quote "
        "file time, bid, ask; name them with --columns time=...,price=...,amount=..."
    )


def _found(picked: Mapping[str, str], fields: Sequence[str]) -> str:
    return ", ".join(f"{_SHOWN.get(f, f)}={picked[f]}" for f in fields if f in picked)


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
            raise ValueError(
                "no exchange column: set the exchange for this file (TICKPIPE_INGEST_EXCHANGE; "
                "in a backtest --set ingest.exchange=...)"
            )
        if not layout.has("symbol") and not symbol:
            raise ValueError(
                "no symbol column and none in the file name: set the symbol "
                "(TICKPIPE_INGEST_SYMBOL; in a backtest --set ingest.symbol=...)"
            )
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
                    return _iso_ns(text)
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


_FRACTION = re.compile(r"[.,](\d{7,9})")


def _iso_ns(text: str) -> int:
    """ISO-8601 (`2024-08-08T23:54:15.342Z`, `2024-08-08 23:54:15+00:00`) to ns; digits
    past the microsecond, which `datetime` drops, are kept."""
    ns = _datetime_ns(datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00")))
    fraction = _FRACTION.search(text)
    if fraction is not None:
        ns += int(fraction.group(1).ljust(9, "0")[6:])
    return ns


def _datetime_ns(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # datasets without a zone are UTC by convention
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    if ns <= 0:
        raise ValueError(value)
    return ns
