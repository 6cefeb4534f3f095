"""Ingest: edge validation, capture parsing, and the replay source with its normalizer."""

from __future__ import annotations

import base64
import dataclasses
import math
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.unit.factories import SAMPLE
from tickpipe.clock import LiveClock, SimClock
from tickpipe.ids import EventIds
from tickpipe.marketdata import (
    ParseError,
    QuoteData,
    TradeData,
    read_binance_capture,
    unified_symbol,
)
from tickpipe.messages import DeadLetter, QuoteTick, TradeTick
from tickpipe.topics import DLQ, QUOTES, TRADES
from tickpipe_ingest.domain.validation import ValidationLimits, Validator
from tickpipe_ingest.normalize import Normalizer
from tickpipe_ingest.replay import FileReplaySource

S = 1_000_000_000
NOW = 1_723_161_300 * S
RECV = 1_723_161_254_087_891_268  # local receive time of the capture's first quote
TRADE_MS = 1_723_161_255_342  # exchange time of its first trade


GOOD_TRADE = TradeData("binance", "BTC/USDT", "1", 60_000.0, 0.1, "buy", NOW - S)
GOOD_QUOTE = QuoteData("binance", "BTC/USDT", 60_000.0, 1.0, 60_000.01, 1.0, NOW - S)


def _trade(**kw: Any) -> TradeData:
    return dataclasses.replace(GOOD_TRADE, **kw)


def _quote(**kw: Any) -> QuoteData:
    return dataclasses.replace(GOOD_QUOTE, **kw)


# -- Validator ---------------------------------------------------------------------------------


def test_validator_when_trade_and_quote_valid_returns_none() -> None:
    v = Validator()

    assert v.trade(_trade(), NOW) is None
    assert v.quote(_quote(), NOW) is None


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"price": math.nan}, "non_finite"),
        ({"size": math.inf}, "non_finite"),
        ({"price": -math.inf}, "non_finite"),
        ({"price": 0.0}, "invalid_price"),
        ({"price": -1.0}, "invalid_price"),
        ({"size": 0.0}, "invalid_size"),
        ({"size": -0.5}, "invalid_size"),
        ({"size": 1e6 + 1}, "size_above_bound"),
        ({"ts_event": NOW + 5 * S + 1}, "timestamp_in_future"),
    ],
)
def test_validator_when_trade_bad_returns_reason(fields: dict[str, Any], reason: str) -> None:
    assert Validator().trade(_trade(**fields), NOW) == reason


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"bid": math.nan}, "non_finite"),
        ({"ask_size": math.inf}, "non_finite"),
        ({"bid": 0.0}, "invalid_price"),
        ({"ask": -1.0}, "invalid_price"),
        ({"bid_size": -1.0}, "invalid_size"),
        ({"bid": 60_000.02}, "crossed_quote"),
        ({"bid": 60_000.01}, "crossed_quote"),
        ({"ts_event": NOW + 6 * S}, "timestamp_in_future"),
    ],
)
def test_validator_when_quote_bad_returns_reason(fields: dict[str, Any], reason: str) -> None:
    assert Validator().quote(_quote(**fields), NOW) == reason


def test_validator_when_values_at_bounds_accepts_them() -> None:
    v = Validator()

    assert v.trade(_trade(size=1e6, ts_event=NOW + 5 * S), NOW) is None
    assert v.quote(_quote(bid_size=0.0, ask_size=0.0), NOW) is None


def test_validator_when_trade_id_repeats_returns_duplicate_trade() -> None:
    v = Validator()
    assert v.trade(_trade(trade_id="7"), NOW) is None

    assert v.trade(_trade(trade_id="7", ts_event=NOW - S + 1), NOW) == "duplicate_trade"
    assert v.trade(_trade(trade_id="7", symbol="ETH/USDT"), NOW) is None


def test_validator_when_dedupe_window_full_forgets_oldest_trade_id() -> None:
    v = Validator(ValidationLimits(dedupe_window=2))
    for tid in ("1", "2", "3"):
        assert v.trade(_trade(trade_id=tid), NOW) is None

    assert v.trade(_trade(trade_id="1"), NOW) is None
    assert v.trade(_trade(trade_id="3"), NOW) == "duplicate_trade"


def test_validator_when_trade_rejected_for_time_does_not_remember_its_id() -> None:
    v = Validator()
    assert v.trade(_trade(trade_id="9", ts_event=NOW + 60 * S), NOW) == "timestamp_in_future"

    assert v.trade(_trade(trade_id="9"), NOW) is None


def test_validator_when_timestamp_far_behind_last_returns_timestamp_backwards() -> None:
    v = Validator()
    assert v.trade(_trade(trade_id="1", ts_event=NOW), NOW) is None

    assert v.trade(_trade(trade_id="2", ts_event=NOW - 30 * S), NOW) is None  # tolerated
    assert v.trade(_trade(trade_id="3", ts_event=NOW - 60 * S - 1), NOW) == "timestamp_backwards"
    assert v.trade(_trade(trade_id="4", ts_event=NOW - 10 * S, symbol="ETH/USDT"), NOW) is None


def test_validator_when_quote_far_behind_last_quote_returns_timestamp_backwards() -> None:
    v = Validator()
    assert v.quote(_quote(ts_event=NOW), NOW) is None

    assert v.quote(_quote(ts_event=NOW - 61 * S), NOW) == "timestamp_backwards"
    # Trades and quotes keep separate clocks: a trade that old is fine.
    assert v.trade(_trade(ts_event=NOW - 61 * S), NOW) is None


# -- Capture parsing -----------------------------------------------------------------------------


def test_read_binance_capture_when_reading_sample_yields_documented_counts() -> None:
    counts: Counter[str] = Counter()
    symbols: set[str] = set()
    trade_ids: list[str] = []
    first_trade: TradeData | None = None
    for item in read_binance_capture(SAMPLE):
        counts[type(item).__name__] += 1
        if isinstance(item, TradeData):
            trade_ids.append(item.trade_id)
            first_trade = first_trade or item
        if not isinstance(item, ParseError):
            symbols.add(item.symbol)

    assert counts == {"TradeData": 9_757, "QuoteData": 28_040}
    assert symbols == {"BTC/USDT"}
    assert len(set(trade_ids)) == len(trade_ids)
    assert first_trade is not None
    # From the capture's first @trade line: t 3735683259, p 61837.63, q 0.02, m true.
    assert first_trade.trade_id == "3735683259"
    assert (first_trade.price, first_trade.size) == (61_837.63, 0.02)
    assert first_trade.side == "sell"
    assert first_trade.ts_event == TRADE_MS * 1_000_000


def _trade_line(tid: int, price: str = "61837.63", qty: str = "0.02", dt_ms: int = 0) -> bytes:
    data = {
        "e": "trade",
        "s": "BTCUSDT",
        "t": tid,
        "p": price,
        "q": qty,
        "T": TRADE_MS + dt_ms,
        "m": tid % 2 == 0,
    }
    body = orjson.dumps({"stream": "btcusdt@trade", "data": data})
    return f"{RECV + dt_ms * 1_000_000} ".encode() + body


def _quote_line(bid: str, ask: str, dt_ms: int = 0) -> bytes:
    data = {"u": 1, "s": "BTCUSDT", "b": bid, "B": "1.5", "a": ask, "A": "2.5"}
    body = orjson.dumps({"stream": "btcusdt@bookTicker", "data": data})
    return f"{RECV + dt_ms * 1_000_000} ".encode() + body


# Each line with what ingest must make of it.
CAPTURE: list[tuple[bytes, str]] = [
    (_quote_line("61837.63", "61837.64"), "quote"),
    (_trade_line(1), "trade"),
    (b'1 {"stream":"btcusdt@depth@100ms","data":{"b":[],"a":[]}}', "skipped"),
    (b'2 {"lastUpdateId":5,"bids":[],"asks":[]}', "skipped"),
    (b"", "skipped"),
    (b"no-separator-here", "malformed_line"),
    (b"123 {not json", "malformed_json"),
    (b"abc {}", "malformed_json"),
    (b'3 {"stream":"btcusdt@trade","data":{"s":"BTCUSDT","t":5}}', "missing_field"),
    (_trade_line(3, price="NaN", dt_ms=10), "non_finite"),
    (_trade_line(1, dt_ms=20), "duplicate_trade"),
    (_quote_line("61840.00", "61839.99", dt_ms=30), "crossed_quote"),
    (_trade_line(4, qty="0", dt_ms=40), "invalid_size"),
    (_trade_line(2, price="61838.00", dt_ms=50), "trade"),
]
BAD = [outcome for _, outcome in CAPTURE if outcome not in ("trade", "quote", "skipped")]


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    path = tmp_path / "capture.txt"
    path.write_bytes(b"\n".join(line for line, _ in CAPTURE) + b"\n")
    return path


def test_read_binance_capture_when_lines_malformed_yields_parse_errors(capture: Path) -> None:
    items = list(read_binance_capture(capture))

    errors = [i for i in items if isinstance(i, ParseError)]
    assert [e.reason for e in errors] == [
        "malformed_line",
        "malformed_json",
        "malformed_json",
        "missing_field",
    ]
    assert errors[0].raw == b"no-separator-here"
    assert sum(isinstance(i, TradeData) for i in items) == 5
    assert sum(isinstance(i, QuoteData) for i in items) == 2


def test_unified_symbol_when_known_quote_suffix_splits_it() -> None:
    assert unified_symbol("BTCUSDT") == "BTC/USDT"
    assert unified_symbol("ethbtc") == "ETH/BTC"
    assert unified_symbol("BTCFDUSD") == "BTC/FDUSD"
    assert unified_symbol("BTCTUSD") == "BTC/TUSD"
    assert unified_symbol("USDT") == "USDT"


# -- Replay + normalizer -----------------------------------------------------------------------


def _source(path: Path, **kw: Any) -> tuple[FileReplaySource, Normalizer, SimClock]:
    clock = SimClock()
    normalizer = Normalizer(clock, EventIds(clock, seed=1), "file:capture.txt", Validator())
    return FileReplaySource(path, normalizer, clock, **kw), normalizer, clock


def test_file_replay_when_lines_bad_emits_dead_letters_with_reasons(capture: Path) -> None:
    source, normalizer, _ = _source(capture)

    emits = list(source)

    by_topic = Counter(e.topic for e in emits)
    read = len(list(read_binance_capture(capture)))
    assert by_topic == {TRADES: 2, QUOTES: 1, DLQ: len(BAD)}
    assert by_topic[TRADES] + by_topic[QUOTES] + by_topic[DLQ] == read
    assert normalizer.counts == {"trades": 2, "quotes": 1, "dead_letters": len(BAD)}
    letters = [e.event for e in emits if e.topic == DLQ]
    assert all(isinstance(d, DeadLetter) for d in letters)
    assert [d.reason for d in letters if isinstance(d, DeadLetter)] == BAD
    assert all(e.key == "file:capture.txt" for e in emits if e.topic == DLQ)


def test_file_replay_when_line_dead_lettered_keeps_original_bytes(capture: Path) -> None:
    source, _, _ = _source(capture)

    letters = [e.event for e in source if e.topic == DLQ]

    payloads = [base64.b64decode(d.payload_b64) for d in letters if isinstance(d, DeadLetter)]
    assert payloads[0] == b"no-separator-here"
    assert payloads[1] == b"123 {not json"
    crossed = _quote_line("61840.00", "61839.99", dt_ms=30).partition(b" ")[2]
    assert crossed in payloads


def test_file_replay_when_valid_lines_emits_ticks_in_file_order(capture: Path) -> None:
    source, _, clock = _source(capture)

    emits = [e for e in source if e.topic != DLQ]

    events = [e.event for e in emits]
    assert isinstance(events[0], QuoteTick)
    assert (events[0].bid, events[0].ask, events[0].ts_event) == (61_837.63, 61_837.64, RECV)
    trades = [e for e in events if isinstance(e, TradeTick)]
    assert [(t.trade_id, t.price, t.side) for t in trades] == [
        ("1", 61_837.63, "buy"),
        ("2", 61_838.0, "sell"),
    ]
    assert all(e.key == "binance:BTC/USDT" for e in events if isinstance(e, TradeTick))
    # Under a SimClock the clock follows the data.
    assert clock.now_ns() == (TRADE_MS + 50) * 1_000_000
    assert trades[-1].ts_init == clock.now_ns()


def test_file_replay_when_looping_twice_shifts_times_and_trade_ids(capture: Path) -> None:
    once, _, _ = _source(capture)
    twice, normalizer, _ = _source(capture, loops=2)

    first = list(once)
    both = list(twice)

    assert len(both) == 2 * len(first)
    assert Counter(e.topic for e in both)[DLQ] == 2 * len(BAD)
    loop1, loop2 = both[: len(first)], both[len(first) :]
    trades1 = [e.event for e in loop1 if isinstance(e.event, TradeTick)]
    trades2 = [e.event for e in loop2 if isinstance(e.event, TradeTick)]
    assert [t.trade_id for t in trades2] == [f"{t.trade_id}-1" for t in trades1]
    ticks1 = [e.event for e in loop1 if e.topic in (TRADES, QUOTES)]
    ticks2 = [e.event for e in loop2 if e.topic in (TRADES, QUOTES)]
    shifts = {b.ts_event - a.ts_event for a, b in zip(ticks1, ticks2, strict=True)}
    assert len(shifts) == 1
    assert min(t.ts_event for t in ticks2) > max(t.ts_event for t in ticks1)
    assert normalizer.counts["trades"] == 4


def test_file_replay_when_limited_stops_after_limit(capture: Path) -> None:
    source, _, _ = _source(capture, limit=3)

    assert len(list(source)) == 3


def test_file_replay_when_rate_set_paces_with_injected_sleep(capture: Path) -> None:
    clock = LiveClock()
    normalizer = Normalizer(clock, EventIds(clock), "file:capture.txt", Validator())
    delays: list[float] = []
    source = FileReplaySource(capture, normalizer, clock, rate=100.0, sleep=delays.append)

    n = len(list(source))

    assert n == len(list(read_binance_capture(capture)))
    assert delays
    assert all(0 < d <= (n - 1) / 100.0 for d in delays)
