"""Time bars from hand-made trades."""

from __future__ import annotations

import pytest

from tickpipe_quant.bars import Bar, TimeBarBuilder

S = 1_000_000_000
T = 1_723_161_255 * S  # an aligned second


def test_time_bar_builder_when_interval_not_positive_raises() -> None:
    with pytest.raises(ValueError, match="positive"):
        TimeBarBuilder(0)


def test_time_bar_builder_when_trades_in_one_interval_returns_no_bar_yet() -> None:
    bars = TimeBarBuilder(S)

    results = [bars.add(T + i * 100_000_000, 100.0 + i, 1.0, True) for i in range(10)]

    assert results == [None] * 10


def test_time_bar_builder_when_later_trade_arrives_closes_bar_with_ohlcv() -> None:
    bars = TimeBarBuilder(S)
    trades = [  # (offset ns, price, size, buyer aggressor)
        (0, 100.0, 1.0, True),
        (200_000_000, 104.0, 0.5, False),
        (400_000_000, 98.0, 2.0, False),
        (999_999_999, 101.0, 1.5, True),
    ]
    for offset, price, size, is_buy in trades:
        assert bars.add(T + offset, price, size, is_buy) is None

    bar = bars.add(T + S, 102.0, 3.0, True)

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


def test_time_bar_builder_when_bar_closed_starts_next_bar_from_closing_trade() -> None:
    bars = TimeBarBuilder(S)
    bars.add(T, 100.0, 1.0, True)
    bars.add(T + S + 1, 102.0, 3.0, False)  # closes the first bar, opens the second

    second = bars.add(T + 2 * S, 103.0, 1.0, True)

    assert second is not None
    assert (second.start, second.end) == (T + S, T + 2 * S)
    assert (second.open, second.high, second.low, second.close) == (102.0, 102.0, 102.0, 102.0)
    assert (second.volume, second.count, second.buy_volume, second.sell_volume) == (
        3.0,
        1,
        0.0,
        3.0,
    )


def test_time_bar_builder_when_intervals_skipped_emits_no_empty_bars() -> None:
    bars = TimeBarBuilder(S)
    bars.add(T + 10, 100.0, 1.0, True)

    closed = bars.add(T + 5 * S + 10, 90.0, 1.0, False)
    after = bars.add(T + 6 * S, 91.0, 1.0, False)

    assert closed is not None and closed.start == T
    assert after is not None and after.start == T + 5 * S


def test_time_bar_builder_when_bars_aligned_to_epoch_start_on_interval_multiple() -> None:
    bars = TimeBarBuilder(60 * S)
    bars.add(T + 7 * S, 100.0, 1.0, True)

    bar = bars.add(T + 120 * S, 100.0, 1.0, True)

    assert bar is not None
    assert bar.start % (60 * S) == 0
    assert bar.start <= T + 7 * S < bar.end


def test_time_bar_builder_when_trade_is_late_folds_it_in_but_keeps_close() -> None:
    bars = TimeBarBuilder(S)
    bars.add(T, 100.0, 1.0, True)
    bars.add(T + S, 110.0, 1.0, True)  # second bar open

    assert bars.add(T + S - 1, 108.0, 2.0, False) is None  # late: belongs to the first bar
    closed = bars.add(T + 2 * S, 111.0, 1.0, True)

    assert bars.late == 1
    assert closed is not None
    assert closed.start == T + S
    assert closed.count == 2
    assert closed.volume == 3.0
    assert closed.sell_volume == 2.0
    assert closed.low == 108.0
    assert (closed.open, closed.close) == (110.0, 110.0)  # a late price is not the last price


def test_bar_vwap_when_volume_zero_returns_close() -> None:
    bar = Bar(T, T + S, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0, 0.0, 0.0)

    assert bar.vwap == 1.0
