"""Market-data files: CSV, JSON(.gz, lines) and Parquet readers, and format detection.

Every reader yields `TradeData`, `QuoteData` or `ParseError` values in file order, one per
input record, so a caller can account for every record (published + dead-lettered = read).

Layouts read (see `tabular.py` for the column names):
- CSV with a header (comma, tab, `;` or `|` separated): freqtrade trades (`timestamp,id,type,
  side,price,amount,cost`, with or without a leading index column), Tardis trades
  (`exchange,symbol,timestamp,...,side,price,amount`) and quotes (`...,ask_amount,ask_price,
  bid_price,bid_amount`), and any plain trade or quote table whose columns `tabular.py` knows
  by name (`timestamp_ms,id,side,price,amount`, `time,qty,price,is_buyer_maker`,
  `ts,bid,ask`...). Other names are given with `columns` (`time=ts_ms,price=px,...`).
- CSV without a header: Kraken's trade history (`unix_seconds,price,volume`); with `columns`,
  any other, its columns named by position from 1 (`time=1,price=2,amount=3`).
- JSON: an array (or JSON lines) of freqtrade trade rows `[ts_ms, id, type, side, price,
  amount, cost]` or of objects (ccxt unified trades, Binance-style objects).
- Parquet: nautilus trades (`timestamp,trade_id,price,quantity,buyer_maker`) and quotes
  (`timestamp,symbol,ask_size,ask,bid_size,bid`). Needs polars (imported on use).
- Binance combined-stream captures (`recorded.py`).
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, cast

import orjson

from tickpipe.marketdata.recorded import read_binance_capture
from tickpipe.marketdata.records import ParseError, QuoteData, TradeData
from tickpipe.marketdata.tabular import (
    Layout,
    RowParser,
    detect_layout,
    parse_columns,
    symbol_from_filename,
)

Item = TradeData | QuoteData | ParseError

FORMATS = ("binance_capture", "csv", "json", "parquet")
# freqtrade's DEFAULT_TRADES_COLUMNS: the positional layout of its trade arrays.
FREQTRADE_TRADE_FIELDS = ("timestamp", "id", "type", "side", "price", "amount", "cost")
KRAKEN_CSV_FIELDS = ("timestamp", "price", "amount")


def _open(path: Path) -> IO[bytes]:
    if path.name.endswith(".gz"):
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def _suffixes(path: Path) -> list[str]:
    return [s.lower() for s in path.suffixes if s.lower() != ".gz"]


def detect_format(path: Path) -> str:
    """By extension (`.csv`, `.json`, `.jsonl`, `.parquet`, each optionally `.gz`), else by
    the first bytes: `<digits> {` is a Binance capture, `[` or `{` JSON, anything else CSV."""
    suffixes = _suffixes(path)
    last = suffixes[-1] if suffixes else ""
    if last in (".parquet", ".pq"):
        return "parquet"
    if last == ".csv":
        return "csv"
    if last in (".json", ".jsonl", ".ndjson"):
        return "json"
    with _open(path) as fh:
        head = fh.read(64).lstrip()
    stamp, sep, rest = head.partition(b" ")
    if sep and stamp.isdigit() and rest.startswith(b"{"):
        return "binance_capture"
    if head[:1] in (b"[", b"{"):
        return "json"
    return "csv"


def read_market_data(
    path: Path,
    fmt: str = "auto",
    *,
    exchange: str | None = None,
    symbol: str | None = None,
    columns: str | Mapping[str, str] | None = None,
) -> Iterator[Item]:
    """Read any supported file. `exchange`/`symbol` fill in what the file does not say
    (the symbol defaults to one in the file name, e.g. `XRP_ETH-trades.json.gz`).
    `columns` (`time=ts_ms,price=px,...`, see `tabular.parse_columns`) names the columns of
    a table whose names are not known ones; fields it leaves out are still found by name.

    Raises ValueError up front for an unknown format or layout, or when the exchange or the
    symbol cannot be known: configuration errors, not bad records. Its message starts with
    the file.
    """
    fmt = detect_format(path) if fmt == "auto" else fmt
    symbol = symbol or symbol_from_filename(path)
    given = parse_columns(columns)
    try:
        if fmt == "binance_capture":
            if given:
                raise ValueError("a Binance capture has no columns to name")
            return read_binance_capture(path, exchange or "binance")
        if fmt == "csv":
            return read_csv(path, exchange=exchange, symbol=symbol, columns=given)
        if fmt == "json":
            return read_json(path, exchange=exchange, symbol=symbol, columns=given)
        if fmt == "parquet":
            return read_parquet(path, exchange=exchange, symbol=symbol, columns=given)
    except ValueError as exc:
        text = str(exc)
        raise ValueError(text if text.startswith(f"{path}: ") else f"{path}: {text}") from exc
    raise ValueError(f"unknown format {fmt!r}; one of auto, {', '.join(FORMATS)}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_fields(line: bytes, delimiter: str = ",", encoding: str = "utf-8") -> list[str]:
    return next(csv.reader([line.decode(encoding, "replace")], delimiter=delimiter), [])


def _delimiter(line: bytes) -> str:
    """`,` unless the header holds more tabs, semicolons or bars than commas."""
    return max((",", "\t", ";", "|"), key=lambda d: line.count(d.encode()))


def read_csv(
    path: Path,
    *,
    exchange: str | None,
    symbol: str | None,
    columns: str | Mapping[str, str] | None = None,
) -> Iterator[Item]:
    given = parse_columns(columns)
    with _open(path) as fh:
        first = fh.readline().rstrip(b"\r\n")
    delimiter = _delimiter(first)
    header = [name.strip() for name in _csv_fields(first, delimiter, "utf-8-sig")]
    headerless = bool(header) and all(_is_number(f) for f in header)
    if headerless and given:
        names: list[str] = [str(i) for i in range(1, len(header) + 1)]  # `time=1,price=2`
    elif headerless:
        if len(header) != len(KRAKEN_CSV_FIELDS):
            raise ValueError(
                f"{path}: headerless CSV with {len(header)} columns is unknown; name them by "
                "position with --columns, e.g. time=1,price=2,amount=3"
            )
        names = list(KRAKEN_CSV_FIELDS)
    else:
        names = header
    # Layout errors surface here, at the call, not on the first `next()`.
    parser = RowParser(detect_layout(names, given, str(path)), exchange, symbol)
    return _csv_rows(path, names, parser, skip_header=not headerless, delimiter=delimiter)


def _csv_rows(
    path: Path, names: list[str], parser: RowParser, skip_header: bool, delimiter: str = ","
) -> Iterator[Item]:
    with _open(path) as fh:
        if skip_header:
            fh.readline()
        # A BOM can only lead the file: the first line only pays for "utf-8-sig" (a Python
        # codec, ~14x plain "utf-8" a row).
        encoding = "utf-8" if skip_header else "utf-8-sig"
        for raw in fh:
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            fields = _csv_fields(line, delimiter, encoding)
            encoding = "utf-8"
            if len(fields) != len(names):
                yield ParseError(
                    "malformed_line", f"{len(fields)} fields, expected {len(names)}", line
                )
                continue
            yield _parse(parser, dict(zip(names, fields, strict=True)), line)


def _parse(parser: RowParser, row: Mapping[str, Any], raw: bytes) -> Item:
    try:
        return parser(row, raw)
    except ParseError as err:
        return err


def _dumps(row: Any) -> bytes:
    return orjson.dumps(row, default=str)


def read_json(
    path: Path,
    *,
    exchange: str | None,
    symbol: str | None,
    columns: str | Mapping[str, str] | None = None,
) -> Iterator[Item]:
    """A JSON array of rows, or JSON lines (one row per line; a broken line is one error)."""
    with _open(path) as fh:
        data = fh.read()
    rows: list[tuple[Any, bytes | None]] | None = None
    if _suffixes(path)[-1:] not in ([".jsonl"], [".ndjson"]):
        try:
            doc = orjson.loads(data)
            rows = [(row, None) for row in (doc if isinstance(doc, list) else [doc])]
        except orjson.JSONDecodeError:
            pass  # not one document: JSON lines
    if rows is None:
        rows = []
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                rows.append((orjson.loads(line), line))
            except orjson.JSONDecodeError:
                rows.append((ParseError("malformed_json", "not a JSON value", line), None))
    first = next(
        (r for r, _ in rows if isinstance(r, dict | list) and not isinstance(r, ParseError)),
        None,
    )
    if first is None:
        return iter([r for r, _ in rows if isinstance(r, ParseError)])
    names = FREQTRADE_TRADE_FIELDS if isinstance(first, list) else tuple(first)
    parser = RowParser(detect_layout(names, parse_columns(columns), str(path)), exchange, symbol)
    return _json_rows(rows, parser)


def _json_rows(rows: list[tuple[Any, bytes | None]], parser: RowParser) -> Iterator[Item]:
    for row, line in rows:
        if isinstance(row, ParseError):
            yield row
            continue
        raw = line if line is not None else _dumps(row)
        fields = row
        if isinstance(row, list):
            if len(row) != len(FREQTRADE_TRADE_FIELDS):
                expected = len(FREQTRADE_TRADE_FIELDS)
                yield ParseError("malformed_line", f"{len(row)} fields, expected {expected}", raw)
                continue
            fields = dict(zip(FREQTRADE_TRADE_FIELDS, row, strict=True))
        if not isinstance(fields, dict):
            yield ParseError("malformed_line", f"a {type(row).__name__}, not a row", raw)
            continue
        yield _parse(parser, fields, raw)


def read_parquet(
    path: Path,
    *,
    exchange: str | None,
    symbol: str | None,
    columns: str | Mapping[str, str] | None = None,
) -> Iterator[Item]:
    """Parquet through polars (a dependency of this reader only, imported here)."""
    import polars as pl

    frame = pl.read_parquet(path)
    epochs = [
        pl.col(name).dt.epoch("ns")
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime)
    ]
    if epochs:
        frame = frame.with_columns(epochs)
    parser = RowParser(
        detect_layout(frame.columns, parse_columns(columns), str(path)), exchange, symbol
    )
    return (_parse(parser, row, _dumps(row)) for row in frame.iter_rows(named=True))


__all__ = [
    "FORMATS",
    "Item",
    "Layout",
    "detect_format",
    "read_csv",
    "read_json",
    "read_market_data",
    "read_parquet",
]
