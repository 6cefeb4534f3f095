"""ccxt's unified structures -> TradeData / QuoteData, on ccxt's own recorded outputs.

`tests/fixtures/exchanges/*/ccxt_static_response.json` hold real Binance, Kraken and Coinbase
REST responses with ccxt's parsed output (MIT, from ccxt's static tests).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from tests.fixtures.paths import EXCHANGES
from tickpipe.marketdata import (
    ParseError,
    quote_from_order_book,
    quote_from_ticker,
    trade_from_ccxt,
)

MS = 1_000_000
RECV = 1_795_000_000_000_000_000


def _case(exchange: str, method: str) -> dict[str, Any]:
    data = json.loads((EXCHANGES / exchange / "ccxt_static_response.json").read_text())
    case: dict[str, Any] = data["methods"][method][0]
    return case


@pytest.mark.parametrize(
    ("exchange", "trade_id", "price", "size", "side", "ts_ms"),
    [
        ("binance", "2913537567", 73238.7, 0.00109, "buy", 1_710_327_661_939),  # m=false
        ("kraken", "6324366", 73324.4, 0.010309, "buy", 1_710_327_959_173),  # "b"
        # Coinbase reports the maker's side ("sell"): the taker bought, as ccxt parses it.
        ("coinbaseexchange", "18502034", 73271.63, 0.00007448, "buy", 1_710_327_617_710),
    ],
)
def test_trade_from_ccxt_when_recorded_response_yields_trade_with_raw_payload(
    exchange: str, trade_id: str, price: float, size: float, side: str, ts_ms: int
) -> None:
    (parsed,) = _case(exchange, "fetchTrades")["parsedResponse"]

    trade = trade_from_ccxt(exchange, parsed)

    assert (trade.exchange, trade.symbol, trade.trade_id) == (exchange, "BTC/USDT", trade_id)
    assert (trade.price, trade.size, trade.side, trade.ts_event) == (price, size, side, ts_ms * MS)
    assert orjson.loads(trade.raw) == parsed["info"]


@pytest.mark.parametrize(
    ("exchange", "bid", "bid_size", "ask", "ask_size", "ts_ms"),
    [
        ("binance", 73369.83, 6.27086, 73369.84, 0.03321, 1_710_328_245_391),
        ("kraken", 73380.6, 0.0, 73380.7, 0.0, None),  # no time, no sizes in ccxt's ticker
        ("coinbaseexchange", 73360.34, 0.0, 73369.19, 0.0, 1_710_328_241_270),
    ],
)
def test_quote_from_ticker_when_recorded_ticker_yields_top_of_book(
    exchange: str, bid: float, bid_size: float, ask: float, ask_size: float, ts_ms: int | None
) -> None:
    parsed = _case(exchange, "fetchTicker")["parsedResponse"]

    quote = quote_from_ticker(exchange, parsed, RECV)

    assert (quote.bid, quote.bid_size, quote.ask, quote.ask_size) == (bid, bid_size, ask, ask_size)
    assert quote.ts_event == (RECV if ts_ms is None else ts_ms * MS)
    assert orjson.loads(quote.raw) == parsed["info"]


def test_quote_from_order_book_when_recorded_book_takes_the_first_levels() -> None:
    parsed = _case("binance", "fetchOrderBook")["parsedResponse"]

    quote = quote_from_order_book("binance", "BTC/USDT", parsed, RECV, depth=1)

    assert (quote.bid, quote.bid_size, quote.ask, quote.ask_size) == (
        42574.3,
        0.0107,
        42574.31,
        0.0087,
    )
    assert quote.ts_event == RECV  # Binance's REST depth has no time
    raw = orjson.loads(quote.raw)
    assert (raw["bids"], raw["asks"], raw["nonce"]) == (
        [[42574.3, 0.0107]],
        [[42574.31, 0.0087]],
        25445101,
    )


@pytest.mark.parametrize(
    ("book", "reason"),
    [
        ({"bids": [], "asks": [[1.0, 1.0]]}, "missing_field"),
        ({"bids": [[1.0, 1.0]]}, "missing_field"),
        ({"bids": [["x", 1.0]], "asks": [[1.0, 1.0]]}, "invalid_number"),
        ({"bids": [[1.0]], "asks": [[1.0, 1.0]]}, "missing_field"),
    ],
)
def test_quote_from_order_book_when_side_empty_or_broken_raises_parse_error(
    book: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ParseError) as err:
        quote_from_order_book("binance", "BTC/USDT", book, RECV)

    assert err.value.reason == reason


def test_quote_from_ticker_when_bid_missing_raises_missing_field() -> None:
    parsed = {**_case("binance", "fetchTicker")["parsedResponse"], "bid": None}

    with pytest.raises(ParseError) as err:
        quote_from_ticker("binance", parsed, RECV)

    assert (err.value.reason, err.value.detail) == ("missing_field", "bid is missing")
    assert orjson.loads(err.value.raw) == parsed["info"]
