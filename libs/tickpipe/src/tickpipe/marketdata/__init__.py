"""Market data readers and builders (pure parsing; used by ingest, training and backtests)."""

from tickpipe.marketdata.files import (
    FORMATS,
    detect_format,
    read_csv,
    read_json,
    read_market_data,
    read_parquet,
)
from tickpipe.marketdata.recorded import read_binance_capture, unified_symbol
from tickpipe.marketdata.records import ParseError, QuoteData, TradeData
from tickpipe.marketdata.synthetic import SyntheticConfig, SyntheticMarket
from tickpipe.marketdata.tabular import (
    COLUMN_FIELDS,
    format_columns,
    normalize_symbol,
    parse_columns,
    symbol_from_filename,
)
from tickpipe.marketdata.unified import (
    quote_from_order_book,
    quote_from_ticker,
    trade_from_ccxt,
)

__all__ = [
    "COLUMN_FIELDS",
    "FORMATS",
    "ParseError",
    "QuoteData",
    "SyntheticConfig",
    "SyntheticMarket",
    "TradeData",
    "detect_format",
    "format_columns",
    "normalize_symbol",
    "parse_columns",
    "quote_from_order_book",
    "quote_from_ticker",
    "read_binance_capture",
    "read_csv",
    "read_json",
    "read_market_data",
    "read_parquet",
    "symbol_from_filename",
    "trade_from_ccxt",
    "unified_symbol",
]
