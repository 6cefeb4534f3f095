"""Time bars from hand-made trades: OHLCV, the watermark, lateness and empty intervals."""

from __future__ import annotations

import math

import pytest

from tickpipe_quant.bars import Bar, LateTrade, TimeBarBuilder

S = 1_000_000_000
MS = 1_000_000
T = 1_723_161_255 * S  # an aligned second


def _bar(
    start: int,
    ohlc: tuple[float, float, float, float],
    volume: float = 0.0,
    notional: float = 0.0,
    count: int = 0,
    buy_volume: float = 0.0,
    sell_volume: float = 0.0,
) -> Bar:
    return Bar(start, start + S, *ohlc, volume, notional, count, buy_volume, sell_volume)


def test_time_bar_builder_when_interval_not_positive_raises() -> None:
    with pytest.raises(ValueError, match="positive"):
        TimeBarBuilder(0)


def test_time_bar_builder_when_lateness_negative_raises() -> None:
    with pytest.raises(ValueError, match="lateness"):
        TimeBarBuilder(S, -1)


def test_time_bar_builder_when_trades_in_one_interval_returns_no_bar_yet() -> None:
    bars = TimeBarBuilder(S)

    results = [bars.add(T + i * 100 * MS, 100.0 + i, 1.0, True) for i in range(10)]

    assert results == [[]] * 10


def test_time_bar_builder_when_later_trade_arrives_closes_bar_with_ohlcv() -> None:
    bars = TimeBarBuilder(S)
    trades = [  # (offset ns, price, size, buyer aggressor)
        (0, 100.0, 1.0, True),
        (200 * MS, 104.0, 0.5, False),
        (400 * MS, 98.0, 2.0, False),
        (S - 1, 101.0, 1.5, True),
    ]
    for offset, price, size, is_buy in trades:
        assert bars.add(T + offset, price, size, is_buy) == []

    (bar,) = bars.add(T + S, 102.0, 3.0, True)

    assert bar == Bar(
        start=T,
        end=T + S,
        open=100.0,
        high=104.0,
        low=98.0,
        close=101.0,
        volume=5.0,
        notional=100.0 + 52.0 + 196.0 + 151.5,
        count=4,
        buy_volume=2.5,
        sell_volume=2.5,
    )
    assert bar.vwap == pytest.approx(499.5 / 5.0)
    assert not bar.empty


def test_time_bar_builder_when_bar_closed_starts_next_bar_from_closing_trade() -> None:
    bars = TimeBarBuilder(S)
    bars.add(T, 100.0, 1.0, True)
    bars.add(T + S + 1, 102.0, 3.0, False)  # closes the first bar, opens the second

    (second,) = bars.add(T + 2 * S, 103.0, 1.0, True)

    assert second == _bar(T + S, (102.0,) * 4, volume=3.0, notional=306.0, count=1, sell_volume=3.0)


def test_time_bar_builder_when_intervals_skipped_emits_flagged_empty_bars_at_previous_close() -> (
    None
):
    bars = TimeBarBuilder(S)
    bars.add(T + 10, 100.0, 1.0, True)
    bars.add(T + 500 * MS, 99.0, 1.0, False)

    closed = bars.add(T + 4 * S + 10, 90.0, 1.0, False)

    assert [b.start for b in closed] == [T, T + S, T + 2 * S, T + 3 * S]
    assert [b.empty for b in closed] == [False, True, True, True]
    assert closed[1:] == [_bar(T + k * S, (99.0,) * 4) for k in (1, 2, 3)]
    assert all(b.vwap == 99.0 for b in closed[1:])


def test_time_bar_builder_when_bars_aligned_to_epoch_start_on_interval_multiple() -> None:
    bars = TimeBarBuilder(60 * S)
    bars.add(T + 7 * S, 100.0, 1.0, True)

    closed = bars.add(T + 120 * S, 100.0, 1.0, True)

    assert closed[0].start % (60 * S) == 0
    assert closed[0].start <= T + 7 * S < closed[0].end
    assert [b.end - b.start for b in closed] == [60 * S] * len(closed)


def test_time_bar_builder_when_trade_too_late_raises_counts_and_changes_nothing() -> None:
    bars = TimeBarBuilder(S)
    bars.add(T, 100.0, 1.0, True)
    bars.add(T + S, 110.0, 1.0, True)  # emits [T, T+S): watermark T+S

    with pytest.raises(LateTrade) as err:
        bars.add(T + S - 1, 108.0, 2.0, False)
    (closed,) = bars.add(T + 2 * S, 111.0, 1.0, True)

    assert bars.late == 1
    assert (err.value.ts, err.value.bar_start, err.value.watermark) == (T + S - 1, T, T + S)
    assert closed == _bar(T + S, (110.0,) * 4, volume=1.0, notional=110.0, count=1, buy_volume=1.0)


def test_time_bar_builder_when_lateness_allowed_emits_bar_once_watermark_reaches_end() -> None:
    bars = TimeBarBuilder(S, allowed_lateness_ns=300 * MS)
    bars.add(T, 100.0, 1.0, True)

    before = bars.add(T + S + 300 * MS - 1, 101.0, 1.0, True)  # watermark 1 ns short of T+S
    at = bars.add(T + S + 300 * MS, 102.0, 1.0, True)

    assert before == []
    assert [b.start for b in at] == [T]
    assert bars.watermark == T + S


def test_time_bar_builder_when_trade_within_lateness_joins_its_open_bar_by_event_time() -> None:
    bars = TimeBarBuilder(S, allowed_lateness_ns=500 * MS)
    bars.add(T + 100 * MS, 100.0, 1.0, True)
    bars.add(T + 900 * MS, 104.0, 1.0, True)
    bars.add(T + S + 200 * MS, 200.0, 1.0, True)  # next bar; watermark T + 700 ms

    assert bars.add(T + 50 * MS, 99.0, 2.0, False) == []  # earlier than the bar's open
    assert bars.add(T + 400 * MS, 101.0, 1.0, False) == []  # between: neither open nor close
    (first,) = bars.add(T + S + 500 * MS, 201.0, 1.0, True)

    assert first == _bar(
        T,
        (99.0, 104.0, 99.0, 104.0),
        volume=5.0,
        notional=100.0 + 104.0 + 198.0 + 101.0,
        count=4,
        buy_volume=2.0,
        sell_volume=3.0,
    )
    assert bars.late == 0


def test_time_bar_builder_when_trades_share_a_time_open_is_first_and_close_last_to_arrive() -> None:
    bars = TimeBarBuilder(S)
    for price in (10.0, 11.0, 12.0):
        bars.add(T + 5, price, 1.0, True)

    (bar,) = bars.add(T + S, 13.0, 1.0, True)

    assert (bar.open, bar.close) == (10.0, 12.0)


def test_time_bar_builder_when_late_trade_arrives_watermark_does_not_move() -> None:
    bars = TimeBarBuilder(S, allowed_lateness_ns=2 * S)
    bars.add(T + 5 * S, 100.0, 1.0, True)

    bars.add(T + 4 * S, 99.0, 1.0, True)  # out of order, within lateness

    assert bars.watermark == T + 3 * S


def test_time_bar_builder_when_first_trades_out_of_order_grid_starts_at_earliest_bar() -> None:
    bars = TimeBarBuilder(S, allowed_lateness_ns=S)
    bars.add(T + S + 500 * MS, 100.0, 1.0, True)
    bars.add(T + 800 * MS, 99.0, 1.0, True)  # its bar is still open: watermark T + 500 ms

    closed = bars.add(T + 3 * S, 101.0, 1.0, True)

    assert [(b.start, b.close) for b in closed] == [(T, 99.0), (T + S, 100.0)]


def test_time_bar_builder_when_trade_follows_gap_its_bar_opens_at_its_own_price() -> None:
    bars = TimeBarBuilder(S)
    bars.add(T, 100.0, 1.0, True)
    bars.add(T + 3 * S, 103.0, 1.0, True)

    closed = bars.add(T + 4 * S, 104.0, 1.0, True)

    assert [(b.start, b.open, b.close, b.empty) for b in closed] == [
        (T + 3 * S, 103.0, 103.0, False)
    ]


def test_bar_vwap_when_volume_zero_returns_close() -> None:
    bar = Bar(T, T + S, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0, 0.0, 0.0)

    assert bar.vwap == 1.0
    assert bar.empty


def test_time_bar_builder_when_state_loaded_into_fresh_builder_continues_identically() -> None:
    a = TimeBarBuilder(S, allowed_lateness_ns=400 * MS)
    # Every third trade arrives 10 ms behind the one before it (within the lateness).
    trades = [
        (T + i * 170 * MS + (i % 3) * 90 * MS, 100.0 + math.sin(i), 0.1 * (i % 5 + 1), i % 2 == 0)
        for i in range(60)
    ]
    for trade in trades[:30]:
        a.add(*trade)
    b = TimeBarBuilder(S, allowed_lateness_ns=400 * MS)

    b.load(a.state())

    assert b.state() == a.state()
    assert [b.add(*t) for t in trades[30:]] == [a.add(*t) for t in trades[30:]]
