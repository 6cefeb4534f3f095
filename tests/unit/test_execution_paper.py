"""The paper exchange through the handler: resting limits, trade-through fills by volume,
maker/taker fees, latency on market time, and latest-only quotes changing nothing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fixtures.execution.scenarios import MS, D, handler, limit, market, quote, run, trade
from tests.unit import factories as f
from tickpipe.messages import Event, Liquidity, OrderStatus, QuoteTick, TradeTick

S = OrderStatus
T = f.T0


def test_paper_limit_when_market_trades_at_its_price_does_not_fill() -> None:
    h = handler()

    reports = run(
        h, [quote(T, 100.0, 101.0), limit("b1", T, "buy", "1", "99"), trade(T + 1, 99.0, 5)]
    )

    assert [r.status for r in reports] == [S.ACKNOWLEDGED]


def test_paper_limit_when_trades_through_fills_at_limit_by_traded_volume_as_maker() -> None:
    h = handler(maker_fee_bps=D(2))

    reports = run(
        h,
        [
            quote(T, 100.0, 101.0),
            limit("b1", T, "buy", "1", "99"),
            trade(T + 1, 98.5, 0.4),
            trade(T + 2, 98.0, 3.0),
        ],
    )

    ack, part, full = reports
    assert ack.status is S.ACKNOWLEDGED
    assert (part.status, part.last_qty, part.last_price, part.cum_qty, part.leaves_qty) == (
        S.PARTIALLY_FILLED,
        D("0.4"),
        D(99),
        D("0.4"),
        D("0.6"),
    )
    assert (full.status, full.last_qty, full.cum_qty, full.leaves_qty) == (
        S.FILLED,
        D("0.6"),
        D(1),
        D(0),
    )
    assert part.liquidity is full.liquidity is Liquidity.MAKER
    assert part.fee == D("0.00792000")  # 99 * 0.4 * 2 bps
    assert part.trade_id != full.trade_id
    assert h.open_orders() == []


def test_paper_limit_when_sell_and_trade_above_fills() -> None:
    h = handler()

    reports = run(
        h, [quote(T, 100.0, 101.0), limit("s1", T, "sell", "2", "102"), trade(T + 1, 102.5, 9)]
    )

    assert [(r.status, r.last_qty, r.last_price) for r in reports] == [
        (S.ACKNOWLEDGED, D(0), None),
        (S.FILLED, D(2), D(102)),
    ]


def test_paper_limits_when_one_print_crosses_several_share_its_volume_in_arrival_order() -> None:
    h = handler()

    reports = run(
        h,
        [
            quote(T, 100.0, 101.0),
            limit("b1", T, "buy", "1", "99"),
            limit("b2", T, "buy", "1", "99.5"),
            trade(T + 1, 98.0, 1.5),
        ],
    )

    fills = [(r.client_order_id, r.last_qty) for r in reports if r.is_fill]
    assert fills == [("b1", D(1)), ("b2", D("0.5"))]
    assert sum(q for _, q in fills) == D("1.5")  # never more than traded


def test_paper_limit_when_marketable_on_arrival_fills_as_taker_capped_at_limit() -> None:
    h = handler(slippage_bps=D(100), taker_fee_bps=D(10))

    reports = run(h, [quote(T, 100.0, 101.0), limit("b1", T, "buy", "1", "101.5")])

    _, fill = reports
    # ask 101 * 1.01 = 102.01 would exceed the limit: a limit order never pays above it.
    assert (fill.status, fill.last_price, fill.liquidity) == (S.FILLED, D("101.5"), Liquidity.TAKER)
    assert fill.fee == D("0.10150000")


def test_paper_market_when_latency_set_acks_and_fills_only_after_it_at_the_then_touch() -> None:
    h = handler(latency_ns=50 * MS, slippage_bps=D(0))

    early = run(
        h, [quote(T, 100.0, 101.0), market("m1", T, "buy", "1"), trade(T + 49 * MS, 100.5, 1)]
    )
    late = run(h, [quote(T + 60 * MS, 104.0, 105.0), trade(T + 61 * MS, 104.5, 1)])

    assert [r.status for r in early] == [S.SUBMITTED]
    assert [(r.status, r.last_price) for r in late] == [(S.ACKNOWLEDGED, None), (S.FILLED, D(105))]


def test_paper_limit_when_latency_pending_a_crossing_trade_does_not_fill_it() -> None:
    h = handler(latency_ns=10 * MS)

    reports = run(
        h,
        [
            quote(T, 100.0, 101.0),
            limit("b1", T, "buy", "1", "99"),
            trade(T + 5 * MS, 98.0, 1),  # before the order reached the exchange
            trade(T + 10 * MS, 100.0, 1),  # activates it; not through its price
        ],
    )

    assert [r.status for r in reports] == [S.SUBMITTED, S.ACKNOWLEDGED]


def test_paper_market_when_no_market_data_for_symbol_rejects() -> None:
    h = handler()

    (report,) = run(h, [quote(T, 100.0, 101.0), market("m1", T, "buy", "1", symbol="ETH/USDT")])

    assert (report.status, report.reason) == (S.REJECTED, "no_market_data")


# -- Determinism and latest-only quotes -------------------------------------------------------

PRICES = st.sampled_from([98.0, 99.0, 99.5, 100.0, 100.5, 101.0, 102.0])


@st.composite
def streams(draw: st.DrawFn) -> list[Event]:
    events: list[Event] = [quote(T, 100.0, 100.5)]
    ts = T
    for i in range(draw(st.integers(5, 40))):
        ts += draw(st.integers(0, 20)) * MS
        kind = draw(st.sampled_from(["quote", "quote", "trade", "limit", "market"]))
        px = draw(PRICES)
        if kind == "quote":
            events.append(quote(ts, px, px + 0.5))
        elif kind == "trade":
            events.append(trade(ts, px, draw(st.sampled_from([0.1, 0.5, 2.0]))))
        else:
            side = draw(st.sampled_from(["buy", "sell"]))
            qty = draw(st.sampled_from(["0.3", "1"]))
            if kind == "limit":
                events.append(limit(f"c{i}", ts, side, qty, str(px)))
            else:
                events.append(market(f"c{i}", ts, side, qty))
    return events


def _without_superseded_quotes(events: list[Event]) -> list[Event]:
    """What the runner does for a latest-only topic: drop a quote the next record replaces."""
    keep = []
    for i, e in enumerate(events):
        nxt = events[i + 1] if i + 1 < len(events) else None
        if isinstance(e, QuoteTick) and isinstance(nxt, QuoteTick) and nxt.key == e.key:
            continue
        keep.append(e)
    return keep


@settings(max_examples=60, deadline=None)
@given(streams(), st.sampled_from([0, 5 * MS]))
def test_paper_exchange_when_superseded_quotes_skipped_outputs_are_identical(
    events: list[Event], latency: int
) -> None:
    full = run(handler(latency_ns=latency), events)
    skipped = run(handler(latency_ns=latency), _without_superseded_quotes(events))

    assert [r.model_dump() for r in skipped] == [r.model_dump() for r in full]


@settings(max_examples=30, deadline=None)
@given(streams())
def test_paper_exchange_when_run_twice_on_simulated_clock_outputs_are_identical(
    events: list[Event],
) -> None:
    assert run(handler(latency_ns=3 * MS), events) == run(handler(latency_ns=3 * MS), events)


@settings(max_examples=60, deadline=None)
@given(streams())
def test_paper_exchange_when_limits_fill_never_more_than_traded_through(
    events: list[Event],
) -> None:
    reports = run(handler(), events)

    maker = sum(r.last_qty for r in reports if r.liquidity is Liquidity.MAKER)
    traded = sum((D(str(e.size)) for e in events if isinstance(e, TradeTick)), D(0))
    assert maker <= traded
    for r in reports:
        assert r.cum_qty + r.leaves_qty == r.quantity or r.leaves_qty == 0
