"""OMS state is a fold over executions.v1: replaying the ledger equals the live state, and a
snapshot/restore anywhere mid-stream continues exactly like an uninterrupted run."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fixtures.execution.scenarios import (
    MS,
    D,
    command,
    handler,
    limit,
    market,
    quote,
    run,
    trade,
)
from tests.unit import factories as f
from tickpipe.messages import ControlAction, Event, OrderStatus
from tickpipe_execution.domain.ledger import LedgerMismatch, replay
from tickpipe_execution.domain.orders import InvalidTransition

S = OrderStatus
T = f.T0
PRICES = st.sampled_from([98.0, 99.0, 100.0, 101.0, 102.0])


@st.composite
def streams(draw: st.DrawFn) -> list[Event]:
    events: list[Event] = [quote(T, 100.0, 100.5), quote(T, 2000.0, 2000.5, symbol="ETH/USDT")]
    ts = T
    for _ in range(draw(st.integers(5, 50))):
        ts += draw(st.integers(0, 10)) * MS
        symbol = draw(st.sampled_from(["BTC/USDT", "ETH/USDT"]))
        scale = 1.0 if symbol == "BTC/USDT" else 20.0
        px = draw(PRICES) * scale
        kind = draw(st.sampled_from(["quote", "trade", "trade", "limit", "limit", "market", "ctl"]))
        if kind == "quote":
            events.append(quote(ts, px, px + 0.5, symbol))
        elif kind == "trade":
            events.append(trade(ts, px, draw(st.sampled_from([0.2, 0.7, 3.0])), symbol))
        elif kind == "ctl":
            action = draw(st.sampled_from(list(ControlAction)))
            target = draw(st.sampled_from(["*", f"binance:{symbol}"]))
            events.append(command(action, ts, target))
        else:
            side = draw(st.sampled_from(["buy", "sell"]))
            qty = draw(st.sampled_from(["0.5", "1"]))
            coid = f"c{draw(st.integers(0, 60))}"  # collisions: redeliveries of one order
            if kind == "limit":
                events.append(limit(coid, ts, side, qty, str(px), symbol))
            else:
                events.append(market(coid, ts, side, qty, symbol))
    return events


@settings(max_examples=80, deadline=None)
@given(streams(), st.sampled_from([0, 4 * MS]))
def test_ledger_replay_when_folding_every_report_equals_live_oms_state(
    events: list[Event], latency: int
) -> None:
    h = handler(latency_ns=latency)

    reports = run(h, events)

    assert replay(reports) == h.orders


@settings(max_examples=60, deadline=None)
@given(streams(), st.data())
def test_execution_handler_when_restored_mid_stream_continues_like_uninterrupted_run(
    events: list[Event], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(events)))
    whole = run(handler(latency_ns=2 * MS), events)
    first = handler(latency_ns=2 * MS)
    before = run(first, events[:cut])
    restored = handler(seed=99, latency_ns=2 * MS)
    restored.restore(first.snapshot())

    after = run(restored, events[cut:])

    dump = [r.model_dump(exclude={"event_id"}) for r in before + after]
    assert dump == [r.model_dump(exclude={"event_id"}) for r in whole]
    assert restored.orders == replay(before + after)


def test_ledger_replay_when_a_fill_report_is_delivered_twice_counts_it_once() -> None:
    reports = run(
        handler(),
        [quote(T, 100.0, 101.0), limit("b1", T, "buy", "1", "99"), trade(T + 1, 98.0, 0.4)],
    )

    orders = replay([*reports, reports[-1]])

    assert (orders["b1"].cum_qty, orders["b1"].trade_ids) == (D("0.4"), [reports[-1].trade_id])


def test_ledger_replay_when_cum_qty_disagrees_raises_mismatch() -> None:
    ack, fill = run(handler(), [quote(T, 100.0, 101.0), market("m1", T, "buy", "1")])

    with pytest.raises(LedgerMismatch):
        replay([ack, fill.model_copy(update={"cum_qty": D(2)})])


def test_ledger_replay_when_report_moves_a_filled_order_raises() -> None:
    ack, fill = run(handler(), [quote(T, 100.0, 101.0), market("m1", T, "buy", "1")])

    with pytest.raises(InvalidTransition):
        replay([ack, fill, ack.model_copy(update={"status": S.CANCELLED})])
