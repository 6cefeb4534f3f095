"""Plain trade and quote tables (issue 22): layouts found from the header, `--columns` for
other names, one clear line for a file that cannot be read, and the whole pipeline over a
plain CSV made from the sample capture giving what the capture gives."""

from __future__ import annotations

import gzip
import json
import re
from itertools import islice
from pathlib import Path

import orjson
import polars as pl
import pytest
from pydantic import ValidationError

from tests.fixtures.paths import SAMPLE
from tickpipe.backtest.config import BacktestConfig
from tickpipe.backtest.engine import run_backtest
from tickpipe.cli import main as cli_main
from tickpipe.marketdata import (
    ParseError,
    QuoteData,
    TradeData,
    format_columns,
    parse_columns,
    read_binance_capture,
    read_market_data,
)
from tickpipe.marketdata.files import Item
from tickpipe_ingest.app import IngestSettings

# 2024-08-08T23:54:15.342Z, the sample's first trade time
T_S = 1_723_161_255
T_NS = 1_723_161_255_342_000_000


def _write(path: Path, text: str) -> Path:
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def _read(path: Path, **kwargs: object) -> list[Item]:
    kwargs.setdefault("exchange", "binance")
    return list(read_market_data(path, **kwargs))  # type: ignore[arg-type]


def _one_trade(path: Path, **kwargs: object) -> TradeData:
    items = _read(path, **kwargs)
    assert len(items) == 1 and isinstance(items[0], TradeData), items
    return items[0]


def _one_quote(path: Path, **kwargs: object) -> QuoteData:
    items = _read(path, **kwargs)
    assert len(items) == 1 and isinstance(items[0], QuoteData), items
    return items[0]


@pytest.mark.parametrize(
    ("column", "value", "ts_event"),
    [
        ("time", str(T_S), T_S * 1_000_000_000),  # seconds
        ("time", f"{T_S}.342", T_NS),  # seconds with a fraction
        ("timestamp_ms", str(T_NS // 1_000_000), T_NS),
        ("ts_us", str(T_NS // 1_000 + 123), T_NS + 123_000),
        ("ts_ns", str(T_NS + 456), T_NS + 456),
        ("datetime", "2024-08-08T23:54:15.342Z", T_NS),
        ("date", "2024-08-08 23:54:15.342", T_NS),  # no zone: UTC
        ("time", "2024-08-09T01:54:15.342+02:00", T_NS),
        ("Timestamp (UTC)", "2024-08-08T23:54:15.342000789Z", T_NS + 789),  # ns kept
    ],
)
def test_plain_trades_when_time_in_any_unit_or_iso_reads_exchange_time(
    tmp_path: Path, column: str, value: str, ts_event: int
) -> None:
    path = _write(tmp_path / "BTCUSDT.csv", f'id,side,price,amount,"{column}"\n7,buy,1,2,{value}\n')

    trade = _one_trade(path)

    assert trade.ts_event == ts_event
    assert (trade.trade_id, trade.side, trade.price, trade.size) == ("7", "buy", 1.0, 2.0)
    assert (trade.exchange, trade.symbol) == ("binance", "BTC/USDT")


def test_plain_trades_when_the_issues_layout_reads_every_row(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "ETHUSDT-trades.csv",
        "timestamp_ms,id,side,price,amount\n"
        "1723161255342,100,buy,2500.5,0.25\n"
        "1723161255343,101,SELL,2500.4,1.5\n",
    )

    trades = _read(path)

    assert [(t.trade_id, t.side, t.price, t.size, t.ts_event) for t in trades] == [  # type: ignore[union-attr]
        ("100", "buy", 2500.5, 0.25, 1_723_161_255_342_000_000),
        ("101", "sell", 2500.4, 1.5, 1_723_161_255_343_000_000),
    ]


@pytest.mark.parametrize(
    ("header", "flags"),
    [
        ("time,price,qty,is_buyer_maker", ("true", "false", "True", "0")),
        ("time,price,quantity,isBuyerMaker", ("1", "0", "TRUE", "False")),
        ("T,p,q,m", ("true", "false", "true", "false")),  # Binance's own letters
    ],
)
def test_plain_trades_when_buyer_maker_flag_the_aggressor_is_the_other_side(
    tmp_path: Path, header: str, flags: tuple[str, ...]
) -> None:
    rows = "".join(f"{T_S + i},10,1,{flag}\n" for i, flag in enumerate(flags))
    path = _write(tmp_path / "BTCUSDT.csv", f"{header}\n{rows}")

    sides = [t.side for t in _read(path)]  # type: ignore[union-attr]

    # The buyer was the maker (resting): the seller crossed the spread, so a sell.
    expected = ["sell" if f.lower() in ("true", "1") else "buy" for f in flags]
    assert sides == expected


@pytest.mark.parametrize(
    "text",
    [
        "Time,Trade ID,Side,Price,Size\n{t},9,Buy,3.5,4\n",  # other case and spaces
        "ts\ttrade_id\tside\tprice\tvolume\n{t}\t9\tbuy\t3.5\t4\n",  # tab separated
        "timestamp;tradeId;side;price;qty\n{t};9;buy;3.5;4\n",  # semicolons
        "\ufefftimestamp,id,side,price,amount\n{t},9,buy,3.5,4\n",  # a byte-order mark
    ],
)
def test_plain_trades_when_names_spelled_otherwise_still_found(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path / "BTCUSDT.csv", text.format(t=T_S))

    trade = _one_trade(path)

    assert (trade.trade_id, trade.side, trade.price, trade.size) == ("9", "buy", 3.5, 4.0)
    assert trade.ts_event == T_S * 1_000_000_000


def test_plain_trades_when_gzipped_reads_as_the_plain_file(tmp_path: Path) -> None:
    text = "timestamp,trade_id,side,price,amount\n" + "".join(
        f"{(T_S + i) * 1000},{i},{'buy' if i % 3 else 'sell'},{100 + i / 10},{i + 1}\n"
        for i in range(50)
    )
    plain = _write(tmp_path / "BTCUSDT-trades.csv", text)
    packed = _write(tmp_path / "BTCUSDT-trades.csv.gz", text)

    assert len(_read(plain)) == 50
    strip = [(t.trade_id, t.side, t.price, t.size, t.ts_event) for t in _read(plain)]  # type: ignore[union-attr]
    assert [(t.trade_id, t.side, t.price, t.size, t.ts_event) for t in _read(packed)] == strip  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "sizes"),
    [
        ("timestamp,bid,ask\n{ms},10.5,10.6\n", (0.0, 0.0)),
        ("time,best_bid,best_bid_size,best_ask,best_ask_size\n{ms},10.5,1,10.6,2\n", (1.0, 2.0)),
        ("ts_ms,bid_price,bid_qty,ask_price,ask_qty\n{ms},10.5,1,10.6,2\n", (1.0, 2.0)),
        ("Time,Bid Price,Bid Size,Ask Price,Ask Size\n{ms},10.5,1,10.6,2\n", (1.0, 2.0)),
    ],
)
def test_plain_quotes_when_bid_and_ask_columns_reads_top_of_book(
    tmp_path: Path, text: str, sizes: tuple[float, float]
) -> None:
    path = _write(tmp_path / "BTCUSDT-quotes.csv.gz", text.format(ms=T_NS // 1_000_000))

    quote = _one_quote(path)

    assert (quote.bid, quote.ask, quote.ts_event) == (10.5, 10.6, T_NS)
    assert (quote.bid_size, quote.ask_size) == sizes


# --columns


def test_columns_when_names_are_unknown_maps_them(tmp_path: Path) -> None:
    path = _write(tmp_path / "BTCUSDT.csv", "when,px,base_qty,aggr,no\n1723161255342,5,6,sell,3\n")

    trade = _one_trade(path, columns="time=when,price=px,amount=base_qty,side=aggr,id=no")

    assert (trade.ts_event, trade.price, trade.size, trade.side, trade.trade_id) == (
        T_NS,
        5.0,
        6.0,
        "sell",
        "3",
    )


def test_columns_when_some_named_finds_the_others_by_name(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "BTCUSDT.csv", "timestamp,px,amount,is_buyer_maker\n1723161255,5,6,1\n"
    )

    trade = _one_trade(path, columns={"price": "px"})

    assert (trade.price, trade.size, trade.side) == (5.0, 6.0, "sell")


def test_columns_when_a_known_column_is_renamed_the_named_one_wins(tmp_path: Path) -> None:
    # Tardis-like: exchange time and local time; take the local one on purpose.
    path = _write(
        tmp_path / "BTCUSDT.csv",
        "timestamp,local_timestamp,price,amount,side\n1723161255000,1723161255342,5,6,buy\n",
    )

    assert _one_trade(path).ts_event == T_S * 1_000_000_000
    assert _one_trade(path, columns="time=local_timestamp").ts_event == T_NS


def test_columns_when_quote_fields_named_reads_quotes(tmp_path: Path) -> None:
    path = _write(tmp_path / "BTCUSDT.csv", "t0,hi_bid,lo_ask,bq,aq\n1723161255342,1,2,3,4\n")

    quote = _one_quote(path, columns="time=t0,bid=hi_bid,ask=lo_ask,bid_size=bq,ask_size=aq")

    assert (quote.bid, quote.ask, quote.bid_size, quote.ask_size, quote.ts_event) == (
        1.0,
        2.0,
        3.0,
        4.0,
        T_NS,
    )


def test_columns_when_headerless_names_positions_from_one(tmp_path: Path) -> None:
    path = _write(tmp_path / "BTCUSDT.csv", "7,1723161255342,5,6,1\n8,1723161255343,5,6,0\n")

    trades = _read(path, columns="id=1,time=2,price=3,amount=4,is_buyer_maker=5")

    assert [(t.trade_id, t.side, t.ts_event) for t in trades] == [  # type: ignore[union-attr]
        ("7", "sell", T_NS),
        ("8", "buy", T_NS + 1_000_000),
    ]


def test_columns_when_json_objects_and_parquet_maps_them_too(tmp_path: Path) -> None:
    rows = [{"when": 1723161255342, "px": 5.0, "q": 6.0, "dir": "buy"}]
    json_file = tmp_path / "BTCUSDT.jsonl"
    json_file.write_bytes(b"\n".join(orjson.dumps(r) for r in rows))
    parquet = tmp_path / "BTCUSDT.parquet"
    pl.DataFrame(rows).write_parquet(parquet)
    columns = "time=when,price=px,side=dir"

    for path in (json_file, parquet):
        trade = _one_trade(path, columns=columns)
        assert (trade.ts_event, trade.price, trade.size, trade.side) == (T_NS, 5.0, 6.0, "buy")


def test_columns_when_naming_trade_and_quote_fields_serves_a_file_of_each(
    tmp_path: Path,
) -> None:
    trades = _write(tmp_path / "BTCUSDT-t.csv", "ms,px,sz\n1723161255342,5,6\n")
    quotes = _write(tmp_path / "BTCUSDT-q.csv", "ms,b0,a0\n1723161255342,1,2\n")
    both = _write(tmp_path / "BTCUSDT-b.csv", "ms,px,sz,b0,a0\n1723161255342,5,6,1,2\n")
    columns = "time=ms,price=px,amount=sz,bid=b0,ask=a0"

    assert _one_trade(trades, columns=columns).price == 5.0
    assert _one_quote(quotes, columns=columns).ask == 2.0
    with pytest.raises(ValueError, match="name both trade and quote fields"):
        _read(both, columns=columns)


def test_parse_columns_when_written_back_round_trips() -> None:
    text = "time=ts_ms,price=px,amount=qty,side=side"
    assert parse_columns(text) == {"time": "ts_ms", "price": "px", "amount": "qty", "side": "side"}
    assert format_columns(parse_columns(text)) == text


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("time=a,prize=b", "unknown field 'prize'; one of time, id, side, is_buyer_maker"),
        ("time", "'time' is not field=column"),
        ("time=a,time=b", "time named twice"),
        ("amount=a,qty=b", "one field named twice"),
    ],
)
def test_parse_columns_when_malformed_says_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_columns(spec)


def test_columns_when_naming_a_column_the_file_lacks_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "BTCUSDT.csv", "ts,px\n1,2\n")

    with pytest.raises(
        ValueError, match=re.escape("columns amount=qty: not in the file's [ts, px]")
    ):
        _read(path, columns="price=px,amount=qty")


# the error for a file that cannot be read


def test_unreadable_file_when_columns_unknown_names_found_and_needed_columns_on_one_line(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path / "trades.csv", "a,b,c\n1,2,3\n")

    with pytest.raises(ValueError) as caught:
        _read(path, symbol="A/B")

    assert str(caught.value) == (
        f"{path}: cannot tell trades or quotes from columns [a, b, c]; a trade file needs "
        "time, price, amount (and side or is_buyer_maker), a quote file time, bid, ask; "
        "name them with --columns time=...,price=...,amount=..."
    )


def test_unreadable_file_when_some_columns_found_says_which_are_missing(tmp_path: Path) -> None:
    path = _write(tmp_path / "trades.csv", "timestamp_ms,px,side\n1,2,buy\n")

    with pytest.raises(ValueError) as caught:
        _read(path, symbol="A/B")

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: cannot tell trades or quotes from columns ")
    assert "(found time=timestamp_ms, price=px, side=side; missing amount)" in message


def test_unreadable_file_when_quote_columns_named_but_incomplete_says_so(tmp_path: Path) -> None:
    path = _write(tmp_path / "q.csv", "x,y\n1,2\n")

    with pytest.raises(
        ValueError, match=r"cannot read quotes .*missing ask \(found time=x, bid=y\)"
    ):
        _read(path, symbol="A/B", columns="time=x,bid=y")


def test_ohlcv_file_when_read_as_market_data_is_refused_not_guessed(tmp_path: Path) -> None:
    path = _write(tmp_path / "BTCUSDT-1m.csv", "date,open,high,low,close,volume\n1,2,3,4,5,6\n")

    with pytest.raises(ValueError, match="cannot tell trades or quotes"):
        _read(path)


# settings and command lines


def test_ingest_settings_when_columns_in_environment_parses_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TICKPIPE_INGEST_COLUMNS", "time=ts_ms,price=px,amount=qty,side=side")

    assert IngestSettings().columns == {
        "time": "ts_ms",
        "price": "px",
        "amount": "qty",
        "side": "side",
    }
    assert IngestSettings(columns={"price": "px"}).columns == {"price": "px"}  # a TOML table
    with pytest.raises(ValidationError, match="unknown field 'prize'"):
        IngestSettings(columns="prize=px")


def test_cli_when_columns_malformed_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("backtest", "dataset", "demo"):
        with pytest.raises(SystemExit) as exited:
            cli_main([command, "--columns", "prize=px"])
        assert exited.value.code == 2
        assert "unknown field 'prize'" in capsys.readouterr().err


# end to end: a plain CSV of the sample's first rows gives what the capture gives

ROWS = 8_000


@pytest.fixture(scope="module")
def sample_as_plain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample's first ROWS lines: as captures (trades only, quotes only) and as plain
    CSVs written from the raw Binance messages (not from the reader's output)."""
    folder = tmp_path_factory.mktemp("plain")
    with gzip.open(SAMPLE, "rb") as fh:
        lines = [line.rstrip(b"\n") for line in islice(fh, ROWS)]
    trade_lines, quote_lines = [], []
    trade_rows = ["time,trade_id,price,qty,is_buyer_maker"]
    quote_rows = ["ts_ns,bid,bid_size,ask,ask_size"]
    for line in lines:
        stamp, _, body = line.partition(b" ")
        msg = json.loads(body)
        stream = msg.get("stream", "") if isinstance(msg, dict) else ""
        if stream.endswith("@trade"):
            d = msg["data"]
            trade_lines.append(line)
            trade_rows.append(f"{d['T']},{d['t']},{d['p']},{d['q']},{str(d['m']).lower()}")
        elif stream.endswith("@bookTicker"):
            d = msg["data"]
            quote_lines.append(line)
            quote_rows.append(f"{int(stamp)},{d['b']},{d['B']},{d['a']},{d['A']}")
    assert len(trade_lines) > 1_000 and len(quote_lines) > 1_000
    out = {
        "trades_capture": folder / "trades.gz",
        "quotes_capture": folder / "quotes.gz",
        "trades_csv": folder / "BTCUSDT-trades.csv",
        "quotes_csv": folder / "BTCUSDT-quotes.csv.gz",
    }
    out["trades_capture"].write_bytes(gzip.compress(b"\n".join(trade_lines) + b"\n"))
    out["quotes_capture"].write_bytes(gzip.compress(b"\n".join(quote_lines) + b"\n"))
    out["trades_csv"].write_text("\n".join(trade_rows) + "\n")
    out["quotes_csv"].write_bytes(gzip.compress(("\n".join(quote_rows) + "\n").encode()))
    return out


def _fields(items: list[Item]) -> list[tuple[object, ...]]:
    assert not any(isinstance(i, ParseError) for i in items)
    return [
        (i.exchange, i.symbol, i.trade_id, i.price, i.size, i.side, i.ts_event)
        if isinstance(i, TradeData)
        else (i.exchange, i.symbol, i.bid, i.bid_size, i.ask, i.ask_size, i.ts_event)
        for i in items
        if not isinstance(i, ParseError)
    ]


def test_plain_csv_of_the_sample_when_read_gives_the_captures_trades_and_quotes(
    sample_as_plain: dict[str, Path],
) -> None:
    for kind in ("trades", "quotes"):
        original = list(read_binance_capture(sample_as_plain[f"{kind}_capture"]))
        plain = _read(sample_as_plain[f"{kind}_csv"])
        assert len(plain) == len(original)
        assert _fields(plain) == _fields(original)


def test_backtest_when_data_is_plain_csv_trades_as_over_the_capture(
    sample_as_plain: dict[str, Path], tmp_path: Path
) -> None:
    captures = (sample_as_plain["trades_capture"], sample_as_plain["quotes_capture"])
    plain = (sample_as_plain["trades_csv"], sample_as_plain["quotes_csv"])

    original = run_backtest(BacktestConfig(data=captures))
    from_csv = run_backtest(
        BacktestConfig(data=plain, settings={"ingest": {"exchange": "binance"}})
    )

    assert from_csv.trades == original.trades == len(list(read_binance_capture(captures[0])))
    assert from_csv.summary.counts == original.summary.counts
    assert from_csv.output_bytes() == original.output_bytes()

    # The command line, with one --columns for renamed copies of both files.
    trades, quotes = tmp_path / "BTCUSDT-trades.csv", tmp_path / "BTCUSDT-quotes.csv"
    trades.write_text(plain[0].read_text().replace("time,trade_id,price,qty", "ms,no,px,sz", 1))
    text = gzip.decompress(plain[1].read_bytes()).decode()
    quotes.write_text(text.replace("ts_ns,bid,bid_size,ask,ask_size", "ms,b0,bq,a0,aq", 1))
    report = tmp_path / "r.json"
    columns = "time=ms,id=no,price=px,amount=sz,bid=b0,bid_size=bq,ask=a0,ask_size=aq"
    code = cli_main(
        [
            "backtest",
            "--data",
            str(trades),
            str(quotes),
            "--columns",
            columns,
            "--set",
            "ingest.exchange=binance",
            "--quiet",
            "--json",
            str(report),
        ]
    )
    assert code == 0
    assert len(original.fills) > 5
    assert json.loads(report.read_text())["fills"] == len(original.fills)
