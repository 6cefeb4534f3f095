"""Gap detection at the edge: numeric trade ids and quote sequence numbers."""

from __future__ import annotations

import dataclasses
from typing import Any

from tickpipe.marketdata import QuoteData, TradeData
from tickpipe_ingest.domain.quality import CollectingQuality, Gap
from tickpipe_ingest.domain.validation import Validator

S = 1_000_000_000
NOW = 1_795_000_000 * S
TRADE = TradeData("binance", "BTC/USDT", "100", 60_000.0, 0.1, "buy", NOW - S)
QUOTE = QuoteData("binance", "BTC/USDT", 60_000.0, 1.0, 60_000.01, 1.0, NOW - S, sequence=10)


def _trade(trade_id: str, **kw: Any) -> TradeData:
    return dataclasses.replace(TRADE, trade_id=trade_id, **kw)


def _quote(sequence: int | None, **kw: Any) -> QuoteData:
    return dataclasses.replace(QUOTE, sequence=sequence, **kw)


def _validator() -> tuple[Validator, CollectingQuality]:
    quality = CollectingQuality()
    return Validator(quality=quality), quality


def test_validator_when_trade_ids_skip_reports_gap_and_accepts_the_trade() -> None:
    v, quality = _validator()
    assert v.trade(_trade("100"), NOW) is None
    assert v.trade(_trade("101"), NOW) is None

    assert v.trade(_trade("105"), NOW) is None

    (gap,) = quality.events
    assert gap == Gap("binance", "BTC/USDT", "trades", "trade_id", 102, 105, TRADE.ts_event)
    assert isinstance(gap, Gap) and gap.missing == 3


def test_validator_when_late_trade_fills_in_reports_no_second_gap() -> None:
    v, quality = _validator()
    for tid in ("100", "103", "101", "102", "104"):
        assert v.trade(_trade(tid), NOW) is None

    assert [(g.expected, g.received) for g in quality.events if isinstance(g, Gap)] == [(101, 103)]


def test_validator_when_ids_not_numeric_checks_no_gaps() -> None:
    v, quality = _validator()

    for tid in ("ccc3c1fa-212c", "b46c84da-6942", "row1", "row9", "100-1", "105-1"):
        assert v.trade(_trade(tid), NOW) is None

    assert list(quality.events) == []


def test_validator_when_gap_trade_rejected_reports_nothing_for_it() -> None:
    v, quality = _validator()
    assert v.trade(_trade("100"), NOW) is None

    assert v.trade(_trade("110", price=-1.0), NOW) == "invalid_price"
    assert v.trade(_trade("111", ts_event=NOW + 60 * S), NOW) == "timestamp_in_future"

    assert list(quality.events) == []


def test_validator_when_instruments_differ_tracks_ids_separately() -> None:
    v, quality = _validator()

    assert v.trade(_trade("100"), NOW) is None
    assert v.trade(_trade("500", symbol="ETH/USDT"), NOW) is None
    assert v.trade(_trade("101"), NOW) is None

    assert list(quality.events) == []


def test_validator_when_quote_sequence_skips_reports_gap() -> None:
    v, quality = _validator()
    assert v.quote(_quote(10), NOW) is None

    assert v.quote(_quote(11), NOW) is None
    assert v.quote(_quote(15), NOW) is None

    (gap,) = quality.events
    assert isinstance(gap, Gap)
    assert (gap.stream, gap.field, gap.expected, gap.received, gap.missing) == (
        "quotes",
        "sequence",
        12,
        15,
        3,
    )


def test_validator_when_quote_sequence_repeats_or_goes_back_rejects_it() -> None:
    v, _ = _validator()
    assert v.quote(_quote(10), NOW) is None

    assert v.quote(_quote(10), NOW) == "duplicate_quote"
    assert v.quote(_quote(9), NOW) == "sequence_backwards"
    assert v.quote(_quote(11), NOW) is None


def test_validator_when_quote_has_no_sequence_checks_none() -> None:
    v, quality = _validator()

    assert v.quote(_quote(None), NOW) is None
    assert v.quote(_quote(None), NOW) is None

    assert list(quality.events) == []


def test_validator_when_quote_rejected_for_time_does_not_advance_sequence() -> None:
    v, quality = _validator()
    assert v.quote(_quote(10), NOW) is None

    assert v.quote(_quote(11, ts_event=NOW + 60 * S), NOW) == "timestamp_in_future"
    assert v.quote(_quote(11), NOW) is None

    assert list(quality.events) == []


def test_collecting_quality_when_limited_keeps_the_latest_events() -> None:
    quality = CollectingQuality(limit=2)
    v = Validator(quality=quality)
    for tid in ("1", "3", "5", "7"):
        v.trade(_trade(tid), NOW)

    assert [g.received for g in quality.events if isinstance(g, Gap)] == [5, 7]
