"""Readers of recorded market data (pure parsing; used by ingest, training and backtests)."""

from tickpipe.marketdata.records import ParseError, QuoteData, TradeData
from tickpipe.marketdata.recorded import read_binance_capture, unified_symbol

__all__ = ["ParseError", "QuoteData", "TradeData", "read_binance_capture", "unified_symbol"]
