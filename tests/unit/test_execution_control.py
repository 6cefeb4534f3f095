"""Kill switch and cancel-all: every open order gets a CANCELLED report; none trades after."""

from __future__ import annotations

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
from tickpipe.messages import ControlAction, OrderStatus

S = OrderStatus
A = ControlAction
T = f.T0
ETH = "ETH/USDT"


def _resting() -> list:  # type: ignore[type-arg]
    return [
        quote(T, 100.0, 101.0),
        quote(T, 2000.0, 2001.0, ETH),
        limit("b1", T, "buy", "1", "99"),
        limit("s1", T, "sell", "1", "2100", ETH),
    ]


def test_cancel_all_when_orders_rest_cancels_each_and_none_fills_after() -> None:
    h = handler()
    run(h, _resting())

    cancelled = run(h, [command(A.CANCEL_ALL, T + 1)])
    later = run(h, [trade(T + 2, 90.0, 5), trade(T + 2, 2200.0, 5, ETH)])

    assert [(r.client_order_id, r.status, r.reason) for r in cancelled] == [
        ("b1", S.PENDING_CANCEL, "cancel_all"),
        ("b1", S.CANCELLED, "cancel_all"),
        ("s1", S.PENDING_CANCEL, "cancel_all"),
        ("s1", S.CANCELLED, "cancel_all"),
    ]
    assert later == []
    assert h.open_orders() == []


def test_cancel_all_when_targeting_one_instrument_leaves_the_others() -> None:
    h = handler()
    run(h, _resting())

    reports = run(h, [command(A.CANCEL_ALL, T + 1, target=f"binance:{ETH}")])

    assert [(r.client_order_id, r.status) for r in reports] == [
        ("s1", S.PENDING_CANCEL),
        ("s1", S.CANCELLED),
    ]
    assert [o.client_order_id for o in h.open_orders()] == ["b1"]


def test_cancel_all_when_partially_filled_keeps_cum_qty_and_zero_leaves() -> None:
    h = handler()
    run(h, [*_resting(), trade(T + 1, 98.0, 0.25)])

    reports = run(h, [command(A.CANCEL_ALL, T + 2)])

    (b1,) = [r for r in reports if r.client_order_id == "b1" and r.status is S.CANCELLED]
    assert (b1.status, b1.cum_qty, b1.leaves_qty) == (S.CANCELLED, D("0.25"), D(0))


def test_cancel_all_when_order_still_in_flight_cancels_it_too() -> None:
    h = handler(latency_ns=100 * MS)
    run(h, [quote(T, 100.0, 101.0), market("m1", T, "buy", "1")])

    reports = run(h, [command(A.CANCEL_ALL, T + 1)])
    later = run(h, [trade(T + 200 * MS, 100.0, 1)])

    assert [r.status for r in reports] == [S.PENDING_CANCEL, S.CANCELLED]
    assert later == []


def test_kill_switch_when_on_cancels_open_orders_and_rejects_new_until_off() -> None:
    h = handler()
    run(h, _resting())

    cancelled = run(h, [command(A.KILL_SWITCH_ON, T + 1)])
    refused = run(h, [market("m1", T + 2, "buy", "1")])
    run(h, [command(A.KILL_SWITCH_OFF, T + 3)])
    accepted = run(h, [market("m2", T + 4, "buy", "1")])

    assert [r.status for r in cancelled].count(S.CANCELLED) == 2
    assert [(r.status, r.reason) for r in refused] == [(S.REJECTED, "kill_switch")]
    assert [r.status for r in accepted] == [S.ACKNOWLEDGED, S.FILLED]


def test_kill_switch_when_restored_from_snapshot_is_still_on() -> None:
    h = handler()
    run(h, [quote(T, 100.0, 101.0), command(A.KILL_SWITCH_ON, T)])
    restored = handler()
    restored.restore(h.snapshot())

    (report,) = run(restored, [market("m1", T + 1, "buy", "1")])

    assert report.reason == "kill_switch"


def test_control_when_action_unrelated_to_orders_changes_nothing() -> None:
    h = handler()
    run(h, _resting())

    assert run(h, [command(A.PAUSE_SYMBOL, T + 1), command(A.RELOAD_MODEL, T + 1)]) == []
    assert len(h.open_orders()) == 2
