"""The paper exchange fills an order at the point of the market stream it was decided at,
however late the order reaches execution and however its topics interleave: so a Kafka
deployment and a backtest fill alike."""

from __future__ import annotations

import random
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fixtures.execution.scenarios import handler
from tests.unit import factories as f
from tickpipe.messages import (
    Event,
    ExecutionReport,
    OrderRequest,
    OrderStatus,
    OrderType,
    QuoteTick,
    TradeTick,
)
from tickpipe_execution.domain.paper import PaperExchange


def _market() -> list[QuoteTick | TradeTick]:
    return f.sample_market(2_000, seed=2)


def _orders(market: list[QuoteTick | TradeTick], rng: random.Random) -> list[tuple[int, Event]]:
    """(index of the deciding trade, order) for a few market orders and one resting limit."""
    trades = [i for i, e in enumerate(market) if isinstance(e, TradeTick)]
    out: list[tuple[int, Event]] = []
    for n, i in enumerate(sorted(rng.sample(trades[10:-200], 6))):
        t = market[i]
        assert isinstance(t, TradeTick)
        limit = n == 5
        out.append(
            (
                i,
                f.order(
                    event_id=f"01ORD{n}",
                    client_order_id=f"tp-{n}",
                    side="buy" if n % 2 else "sell",
                    quantity=Decimal("0.01"),
                    order_type=OrderType.LIMIT if limit else OrderType.MARKET,
                    limit_price=Decimal(str(t.price)) - 1 if limit else None,
                    market_seq=t.ingest_seq,
                    ts_event=t.ts_event,
                ),
            )
        )
    return out


def _fills(events: list[Event], latency_ms: int = 0) -> list[tuple[object, ...]]:
    h = handler(latency_ns=latency_ms * 1_000_000)
    out = []
    for e in events:
        topic = "orders.v1" if isinstance(e, OrderRequest) else "md"
        for emit in h.handle(e, topic, 0):
            r = emit.event
            assert isinstance(r, ExecutionReport)
            if r.status is not OrderStatus.SUBMITTED:  # in flight: when depends on arrival
                out.append((r.client_order_id, r.status, r.last_qty, r.last_price, r.ts_event))
    return out


def _interleave(market: list[QuoteTick | TradeTick], rng: random.Random) -> list[Event]:
    trades = [e for e in market if isinstance(e, TradeTick)]
    quotes = [e for e in market if isinstance(e, QuoteTick)]
    out: list[Event] = []
    while trades or quotes:
        src = trades if (trades and (not quotes or rng.random() < 0.5)) else quotes
        out.append(src.pop(0))
    return out


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from([0, 0, 250]))
def test_paper_when_orders_arrive_late_and_topics_interleave_fills_as_at_their_point(
    seed: int, latency_ms: int
) -> None:
    rng = random.Random(seed)
    market = _market()
    orders = _orders(market, rng)
    # In order: each order right after the trade it was decided on.
    prompt: list[Event] = []
    pending = list(orders)
    for i, e in enumerate(market):
        prompt.append(e)
        while pending and pending[0][0] == i:
            prompt.append(pending.pop(0)[1])
    # Late and shuffled: the topics interleave at random, each order comes 0-150 records late.
    shuffled = _interleave(market, rng)
    position = {id(e): k for k, e in enumerate(shuffled)}
    # Orders keep their own order (one key, one partition): insertion points never decrease.
    points, floor = [], 0
    for i, _ in orders:
        floor = max(floor, position[id(market[i])] + 1 + rng.randrange(150))
        points.append(floor)
    late: list[Event] = list(shuffled)
    for at, (_, order) in reversed(list(zip(points, orders, strict=True))):
        late.insert(min(at, len(late)), order)
    expected = _fills(prompt, latency_ms)
    assert sum(1 for r in expected if r[2]) >= 5  # the market orders filled
    assert _fills(late, latency_ms) == expected


def test_paper_without_market_seq_fills_at_the_touch_when_it_arrives() -> None:
    # The guard above matters: an order that does not say where it was decided trades at
    # whatever touch it finds, so a late arrival gets another price.
    market = _market()
    orders = [
        (i, o.model_copy(update={"market_seq": None})) for i, o in _orders(market, random.Random(1))
    ]
    i, order = orders[0]
    on_time = _fills([*market[: i + 1], order])
    much_later = _fills([*market[: i + 400], order])
    assert on_time[-1][3] != much_later[-1][3]


def test_paper_when_the_point_left_the_history_trades_now_and_counts_it() -> None:
    market = _market()
    (i, order), *_ = _orders(market, random.Random(3))
    h = handler(history=50)
    for e in market[: i + 500]:
        h.handle(e, "md", 0)
    h.handle(order, "orders.v1", 0)
    venue = h._exchange  # the counter is the venue's
    assert isinstance(venue, PaperExchange)
    assert venue.late_beyond_history == 1


def _fills_across_restart(
    events: list[Event], restart_at: int, **cfg: object
) -> list[tuple[object, ...]]:
    """As `_fills`, with execution restarted from its snapshot before `events[restart_at]`."""
    h = handler(**cfg)
    out = []
    for k, e in enumerate(events):
        if k == restart_at:
            again = handler(**cfg)
            again.restore(h.snapshot())
            h = again
        topic = "orders.v1" if isinstance(e, OrderRequest) else "md"
        for emit in h.handle(e, topic, 0):
            r = emit.event
            assert isinstance(r, ExecutionReport)
            if r.status is not OrderStatus.SUBMITTED:
                out.append((r.client_order_id, r.status, r.last_qty, r.last_price, r.ts_event))
    return out


def test_paper_when_restarted_with_an_order_in_flight_still_fills_it_at_its_point() -> None:
    market = _market()
    orders = _orders(market, random.Random(4))
    i, order = orders[0]
    # The order comes 300 market events after its point; execution restarts in between.
    late: list[Event] = [*market[: i + 300], order, *market[i + 300 : i + 400]]
    expected = _fills([*market[: i + 1], order, *market[i + 1 : i + 400]])
    assert expected and expected[-1][2]  # it filled
    assert _fills_across_restart(late, restart_at=i + 200) == expected
    # What the snapshot keeps is what makes it so: with too short a kept history the
    # order arrives "now" and fills at another touch.
    assert _fills_across_restart(late, restart_at=i + 200, snapshot_history=50) != expected
