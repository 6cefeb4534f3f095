"""File readers on real data: every format ingest replays, with known first records and counts.

Expected values are read off the files themselves (first row, row count) or off
../shared/data/SOURCES.md (beside the project), independently of the readers.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from tests.fixtures.paths import BAD_INPUTS, SAMPLE, shared_data
from tickpipe.marketdata import (
    ParseError,
    QuoteData,
    TradeData,
    detect_format,
    normalize_symbol,
    read_market_data,
    symbol_from_filename,
)
from tickpipe.marketdata.files import Item

MS = 1_000_000
US = 1_000


def _kinds(items: list[Item]) -> Counter[str]:
    return Counter(type(i).__name__ for i in items)


def _trades(items: list[Item]) -> list[TradeData]:
    return [i for i in items if isinstance(i, TradeData)]


def _quotes(items: list[Item]) -> list[QuoteData]:
    return [i for i in items if isinstance(i, QuoteData)]


def test_read_csv_when_freqtrade_trades_with_index_column_yields_all_trades() -> None:
    path = shared_data("freqtrade/tests/testdata/orderflow/public_trades_list.csv")

    items = list(read_market_data(path, exchange="binance", symbol="ETH/USDT"))

    assert _kinds(items) == {"TradeData": 1000}
    first = _trades(items)[0]
    # Row 0: 1675329600138,1206419187,,buy,1666.8,26.062
    assert (first.trade_id, first.price, first.size, first.side) == (
        "1206419187",
        1666.8,
        26.062,
        "buy",
    )
    assert first.ts_event == 1_675_329_600_138 * MS
    assert (first.exchange, first.symbol) == ("binance", "ETH/USDT")


def test_read_csv_when_kraken_headerless_history_reads_seconds_and_infers_sides() -> None:
    path = shared_data("freqtrade/tests/testdata/kraken/trades_csv/BCHEUR.csv")

    trades = _trades(list(read_market_data(path, exchange="kraken")))

    assert len(trades) == 148
    assert trades[0].symbol == "BCH/EUR"  # from the file name
    assert (trades[0].ts_event, trades[0].price, trades[0].size) == (
        1_672_531_436 * 1_000_000_000,
        90.54,
        1.1044842,
    )
    # No aggressor in Kraken's CSV: the tick rule. 90.54 -> 90.45 -> 90.36 are down-ticks.
    assert [t.side for t in trades[1:3]] == ["sell", "sell"]
    assert trades[0].trade_id == "row1"


def test_read_csv_when_tardis_trades_keeps_exchange_symbol_and_microseconds() -> None:
    path = shared_data("nautilus_trader/tests/test_data/tardis/bitmex_trades_XBTUSD.csv")

    trades = _trades(list(read_market_data(path)))

    assert len(trades) == 10
    first = trades[0]
    assert (first.exchange, first.symbol) == ("bitmex", "XBT/USD")
    assert first.trade_id == "ccc3c1fa-212c-e8b0-1706-9b9c4f3d5ecf"
    assert (first.side, first.price, first.size) == ("sell", 8531.5, 2152.0)
    assert first.ts_event == 1_583_020_803_145_000 * US  # exchange time, not local_timestamp


def test_read_csv_when_tardis_quotes_maps_bid_and_ask_columns() -> None:
    path = shared_data("nautilus_trader/tests/test_data/tardis/huobi-dm-swap_quotes_BTC-USD.csv")

    quotes = _quotes(list(read_market_data(path)))

    assert len(quotes) == 10
    q = quotes[0]
    # huobi-dm-swap,BTC-USD,1588291201099000,...,5494,8629.3,8629.2,806
    assert (q.exchange, q.symbol) == ("huobi-dm-swap", "BTC/USD")
    assert (q.bid, q.bid_size, q.ask, q.ask_size) == (8629.2, 806.0, 8629.3, 5494.0)
    assert q.ts_event == 1_588_291_201_099_000 * US


def test_read_json_when_freqtrade_trade_arrays_gz_yields_documented_counts() -> None:
    path = shared_data("freqtrade/tests/testdata/XRP_ETH-trades.json.gz")

    trades = _trades(list(read_market_data(path, exchange="binance")))

    assert len(trades) == 12_477
    assert Counter(t.side for t in trades) == {"buy": 6_524, "sell": 5_953}
    assert trades[0].symbol == "XRP/ETH"
    assert (trades[0].trade_id, trades[0].price, trades[0].size) == ("13519807", 0.00141342, 23.0)
    assert trades[0].ts_event == 1_570_752_011_620 * MS
    assert trades[-1].ts_event == 1_570_965_568_844 * MS  # 2019-10-13 11:19:28.844


def test_read_json_when_ccxt_unified_trades_matches_the_array_layout_of_the_same_trades() -> None:
    arrays = _trades(
        list(
            read_market_data(
                shared_data("freqtrade/tests/testdata/XRP_ETH-trades.json.gz"), exchange="binance"
            )
        )
    )
    unified = _trades(
        list(
            read_market_data(
                shared_data("freqtrade/tests/testdata/XRP_OLD-trades.json.gz"), exchange="binance"
            )
        )
    )

    assert len(unified) == len(arrays)
    strip = [(t.trade_id, t.price, t.size, t.side, t.ts_event, t.symbol) for t in unified]
    assert strip == [(t.trade_id, t.price, t.size, t.side, t.ts_event, t.symbol) for t in arrays]


def test_read_parquet_when_nautilus_trades_yields_contiguous_ids_and_aggressor_sides() -> None:
    path = shared_data("nautilus_trader/tests/test_data/binance/btcusdt-trades.parquet")

    trades = _trades(list(read_market_data(path, exchange="binance")))

    assert len(trades) == 2_001
    ids = [int(t.trade_id) for t in trades]
    assert ids == list(range(ids[0], ids[0] + 2_001))
    first = trades[0]
    # 2021-01-08 00:00:00.278, 553287559, 39432.48, 0.000263, buyer_maker "True"
    assert (first.trade_id, first.price, first.size, first.side) == (
        "553287559",
        39432.48,
        0.000263,
        "sell",
    )
    assert first.ts_event == 1_610_064_000_278 * MS
    assert trades[1].side == "buy"
    assert first.symbol == "BTC/USDT"


def test_read_parquet_when_nautilus_quotes_yields_top_of_book() -> None:
    path = shared_data("nautilus_trader/tests/test_data/binance/btcusdt-quotes.parquet")

    quotes = _quotes(list(read_market_data(path, exchange="binance")))

    assert len(quotes) == 451
    q = quotes[0]
    assert (q.symbol, q.bid, q.bid_size, q.ask, q.ask_size) == (
        "BTC/USDT",
        39432.99,
        0.0031,
        39433.62,
        0.066851,
    )
    assert q.ts_event == 1_610_064_001_076 * MS


def test_read_market_data_when_binance_capture_defaults_exchange_to_binance() -> None:
    items = list(read_market_data(SAMPLE))

    assert _kinds(items) == {"TradeData": 9_757, "QuoteData": 28_040}
    assert {i.exchange for i in items if not isinstance(i, ParseError)} == {"binance"}


@pytest.mark.parametrize(
    ("relative", "fmt"),
    [
        ("freqtrade/tests/testdata/orderflow/public_trades_list.csv", "csv"),
        ("freqtrade/tests/testdata/XRP_ETH-trades.json.gz", "json"),
        ("nautilus_trader/tests/test_data/binance/btcusdt-trades.parquet", "parquet"),
        ("nautilus_trader/crates/adapters/kraken/test_data/http_trades.json", "json"),
    ],
)
def test_detect_format_when_extension_known_uses_it(relative: str, fmt: str) -> None:
    assert detect_format(shared_data(relative)) == fmt


def test_detect_format_when_extension_says_nothing_sniffs_the_content(tmp_path: Path) -> None:
    capture, json_file, csv_file = tmp_path / "a.gz", tmp_path / "b.dat", tmp_path / "c.dat"
    capture.write_bytes(SAMPLE.read_bytes())  # gzip: sniffed after decompression
    json_file.write_text('[[1,"1",null,"buy",1.0,1.0,1.0]]')
    csv_file.write_text("timestamp,price,amount\n1,2,3\n")

    assert detect_format(SAMPLE) == "binance_capture"
    assert detect_format(capture) == "binance_capture"
    assert detect_format(json_file) == "json"
    assert detect_format(csv_file) == "csv"


def test_read_market_data_when_format_forced_overrides_the_extension(tmp_path: Path) -> None:
    path = tmp_path / "trades.txt"
    path.write_text("timestamp,id,side,price,amount\n1700000000000,5,buy,10.5,2\n")

    (trade,) = read_market_data(path, "csv", exchange="x", symbol="A/B")

    assert isinstance(trade, TradeData)
    assert (trade.trade_id, trade.price, trade.size) == ("5", 10.5, 2.0)


def test_read_market_data_when_timestamps_are_iso_strings_reads_them_as_utc(tmp_path: Path) -> None:
    path = tmp_path / "ETHUSDT-trades.csv"
    path.write_text(
        "date,price,amount,side\n"
        "2023-02-02 09:20:00.138000+00:00,1666.8,1,buy\n"
        "2023-02-02T09:20:01Z,1666.9,1,sell\n"
    )

    trades = _trades(list(read_market_data(path, exchange="x")))

    assert [t.ts_event for t in trades] == [1_675_329_600_138 * MS, 1_675_329_601_000 * MS]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,b,c\n1,2,3\n", "cannot tell trades or quotes from columns"),
        ("1,2,3,4\n", "headerless CSV with 4 columns"),
    ],
)
def test_read_market_data_when_layout_unknown_raises_before_reading(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "BTCUSDT.csv"
    path.write_text(content)

    with pytest.raises(ValueError, match=message):
        read_market_data(path, exchange="x")


def test_read_market_data_when_symbol_unknowable_asks_for_it(tmp_path: Path) -> None:
    path = tmp_path / "public_trades_list.csv"
    path.write_text("timestamp,price,amount\n1,2,3\n")

    with pytest.raises(ValueError, match="set the symbol"):
        read_market_data(path, exchange="x")
    with pytest.raises(ValueError, match="set the exchange"):
        read_market_data(path, symbol="A/B")


def test_read_market_data_when_unknown_format_name_raises() -> None:
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        read_market_data(SAMPLE, "xml")


def test_read_json_when_jsonl_lines_break_yields_one_error_per_broken_line() -> None:
    items = list(read_market_data(BAD_INPUTS / "BTCUSDT-trades.jsonl", exchange="binance"))

    assert len(items) == len((BAD_INPUTS / "BTCUSDT-trades.jsonl").read_text().splitlines())
    assert [i.reason for i in items if isinstance(i, ParseError)][:3] == [
        "malformed_json",
        "malformed_line",
        "malformed_line",
    ]


def test_read_parquet_when_columns_typed_reads_ints_and_datetimes(tmp_path: Path) -> None:
    path = tmp_path / "SOLUSDT-quotes.parquet"
    pl.DataFrame(
        {"ts": [1_700_000_000_000_000_000], "bid": [10.0], "ask": [10.5], "sequence": [7]}
    ).write_parquet(path)

    (quote,) = read_market_data(path, exchange="x")

    assert isinstance(quote, QuoteData)
    assert (quote.symbol, quote.ts_event, quote.sequence) == (
        "SOL/USDT",
        1_700_000_000_000_000_000,
        7,
    )
    assert (quote.bid_size, quote.ask_size) == (0.0, 0.0)  # sizes absent from the file


@pytest.mark.parametrize(
    ("name", "symbol"),
    [
        ("XRP_ETH-trades.json.gz", "XRP/ETH"),
        ("btcusdt-trades.parquet", "BTC/USDT"),
        ("BCHEUR.csv", "BCH/EUR"),
        ("BTC-USD.csv", "BTC/USD"),
        ("public_trades_list.csv", None),
    ],
)
def test_symbol_from_filename_when_name_starts_with_a_pair_returns_it(
    name: str, symbol: str | None
) -> None:
    assert symbol_from_filename(Path(name)) == symbol


@pytest.mark.parametrize(
    ("raw", "unified"),
    [
        ("BTC-USD", "BTC/USD"),
        ("xrp_eth", "XRP/ETH"),
        ("BTCUSDT", "BTC/USDT"),
        ("XBTUSD", "XBT/USD"),
        ("ETH/BTC", "ETH/BTC"),
    ],
)
def test_normalize_symbol_when_exchange_spelling_returns_unified(raw: str, unified: str) -> None:
    assert normalize_symbol(raw) == unified
