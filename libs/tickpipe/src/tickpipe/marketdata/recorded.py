"""Binance combined-stream captures: `<local_receive_ns> <{"stream":..., "data":...}>` per line.

This is the format of hftbacktest's recordings (`data/sample/`). `@trade` messages become
trades (exchange time `T`), `@bookTicker` messages quotes (no exchange time in the
message: the local receive time is used). Depth diffs are skipped: not market data we
publish yet.
"""

from __future__ import annotations

import functools
import gzip
from collections.abc import Iterator
from pathlib import Path

import orjson

from tickpipe.marketdata.records import ParseError, QuoteData, TradeData

QUOTE_ASSETS = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "USD", "TRY")


@functools.lru_cache(maxsize=4096)  # called per record; an exchange has a few thousand symbols
def unified_symbol(exchange_symbol: str) -> str:
    """`BTCUSDT` -> `BTC/USDT` (ccxt's unified form) by known quote-asset suffixes."""
    s = exchange_symbol.upper()
    splits = [(s[: -len(q)], q) for q in QUOTE_ASSETS if s.endswith(q) and len(s) > len(q)]
    if not splits:
        return s
    # `XBTUSD` ends in TUSD too: the first split leaving a base of 3+ letters is likelier.
    base, quote = min(splits, key=lambda split: len(split[0]) < 3)
    return f"{base}/{quote}"


def _parse_line(line: bytes, exchange: str) -> TradeData | QuoteData | None:
    stamp, sep, body = line.partition(b" ")
    if not sep:
        raise ParseError("malformed_line", "expected '<ns> <json>'", line)
    try:
        recv_ns = int(stamp)
        msg = orjson.loads(body)
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise ParseError("malformed_json", str(exc), line) from exc
    if not isinstance(msg, dict) or "data" not in msg:
        return None  # the REST depth snapshot line: not a stream message
    stream = str(msg.get("stream", ""))
    data = msg["data"]
    try:
        if stream.endswith("@trade"):
            return TradeData(
                exchange=exchange,
                symbol=unified_symbol(data["s"]),
                trade_id=str(data["t"]),
                price=float(data["p"]),
                size=float(data["q"]),
                # m: the buyer is the maker, so the seller was the aggressor.
                side="sell" if data["m"] else "buy",
                ts_event=int(data["T"]) * 1_000_000,
                raw=body,
            )
        if stream.endswith("@bookTicker"):
            return QuoteData(
                exchange=exchange,
                symbol=unified_symbol(data["s"]),
                bid=float(data["b"]),
                bid_size=float(data["B"]),
                ask=float(data["a"]),
                ask_size=float(data["A"]),
                ts_event=recv_ns,
                raw=body,
            )
    except (KeyError, TypeError) as exc:
        raise ParseError("missing_field", f"{stream}: {exc!r}", line) from exc
    except ValueError as exc:
        raise ParseError("invalid_number", f"{stream}: {exc}", line) from exc
    return None


def read_binance_capture(
    path: Path, exchange: str = "binance"
) -> Iterator[TradeData | QuoteData | ParseError]:
    """Yield trades, quotes, and ParseErrors (as values, so callers dead-letter them)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        for raw in fh:
            line = raw.rstrip(b"\r\n")
            if not line:
                continue
            try:
                item = _parse_line(line, exchange)
            except ParseError as err:
                yield err
                continue
            if item is not None:
                yield item
