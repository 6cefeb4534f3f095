"""A replay's later loops: `_shifted` copies every field of a record, moving only time,
trade id and sequence (it builds the records directly, not with `dataclasses.replace`)."""

from __future__ import annotations

import dataclasses

import pytest

from tickpipe.marketdata import ParseError, QuoteData, TradeData
from tickpipe_ingest.replay import _shifted

TRADE = TradeData("binance", "BTC/USDT", "42", 61000.5, 0.25, "sell", 1_000, b"raw trade")
QUOTES = [
    QuoteData("binance", "BTC/USDT", 61000.0, 1.5, 61000.5, 2.0, 2_000, b"raw quote", 7),
    QuoteData("binance", "BTC/USDT", 61000.0, 1.5, 61000.5, 2.0, 2_000, b"raw quote"),
]


def test_shifted_when_trade_moves_time_and_id_and_keeps_every_other_field() -> None:
    assert _shifted(TRADE, 2, 500, 9) == dataclasses.replace(TRADE, ts_event=1_500, trade_id="42-2")


@pytest.mark.parametrize("quote", QUOTES)
def test_shifted_when_quote_moves_time_and_sequence_and_keeps_every_other_field(
    quote: QuoteData,
) -> None:
    seq = None if quote.sequence is None else quote.sequence + 9
    assert _shifted(quote, 2, 500, 9) == dataclasses.replace(quote, ts_event=2_500, sequence=seq)


def test_shifted_covers_every_field_of_the_records() -> None:
    # A field added to TradeData or QuoteData must be added to `_shifted` too: this fails
    # until then (the fixtures above would not set it).
    assert [f.name for f in dataclasses.fields(TradeData)] == [
        "exchange",
        "symbol",
        "trade_id",
        "price",
        "size",
        "side",
        "ts_event",
        "raw",
    ]
    assert [f.name for f in dataclasses.fields(QuoteData)] == [
        "exchange",
        "symbol",
        "bid",
        "bid_size",
        "ask",
        "ask_size",
        "ts_event",
        "raw",
        "sequence",
    ]


def test_shifted_when_parse_error_returns_it() -> None:
    error = ParseError("bad", "detail", b"x")
    assert _shifted(error, 1, 5, 5) is error
