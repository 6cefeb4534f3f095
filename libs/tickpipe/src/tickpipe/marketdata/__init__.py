"""Readers of recorded market data (pure parsing; used by ingest, training and backtests)."""

from tickpipe.marketdata.recorded import read_binance_capture, unified_symbol
from tickpipe.marketdata.records import ParseError, QuoteData, TradeData

__all__ = ["ParseError", "QuoteData", "TradeData", "read_binance_capture", "unified_symbol"]
