"""Start-up reconciliation: the exchange's view wins; missed fills apply exactly once and
before the order's end; nothing new is placed before it is done."""

from __future__ import annotations

from decimal import Decimal

from tests.fixtures.execution.scenarios import handler, limit, market, quote, run
from tests.unit import factories as f
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import Liquidity, OrderStatus
from tickpipe_execution.domain.events import Acked, Cancelled, Filled, Refused, VenueUnavailable
from tickpipe_execution.domain.orders import Order
from tickpipe_execution.domain.paper import PaperExchange
from tickpipe_execution.domain.reconcile import ExchangeOrder, ExchangeState, reconcile
from tickpipe_execution.handlers import ExecutionHandler

D = Decimal
S = OrderStatus
T = f.T0


def _order(coid: str, status: S, trade_ids: list[str] | None = None) -> Order:
    cum = D("0.1") * len(trade_ids or [])
    return Order(coid, D(1), status, cum, trade_ids=list(trade_ids or []))


def _fill(coid: str, trade_id: str, qty: str = "0.1") -> Filled:
    return Filled(coid, D(qty), D(100), D(0), "USDT", Liquidity.MAKER, trade_id, f"x-{coid}")


def test_reconcile_when_fills_missed_applies_each_new_trade_id_once() -> None:
    order = _order("a", S.PARTIALLY_FILLED, ["t1"])
    state = ExchangeState(
        {"a": ExchangeOrder("a", "x-a", "open")},
        fills=(_fill("a", "t1"), _fill("a", "t2"), _fill("a", "t2"), _fill("zz", "t9")),
    )

    result = reconcile([order], state)

    assert result.events == [Acked("a", "x-a"), _fill("a", "t2")]


def test_reconcile_when_cancelled_at_exchange_applies_fills_before_the_cancel() -> None:
    state = ExchangeState({"a": ExchangeOrder("a", "x-a", "canceled")}, fills=(_fill("a", "t1"),))

    events = reconcile([_order("a", S.ACKNOWLEDGED)], state).events

    assert events == [Acked("a", "x-a"), _fill("a", "t1"), Cancelled("a", "canceled_at_exchange")]


def test_reconcile_when_submitted_order_unknown_at_exchange_refuses_it() -> None:
    state = ExchangeState({"a": None, "b": ExchangeOrder("b", "x-b", "open")})

    events = reconcile([_order("a", S.SUBMITTED), _order("b", S.SUBMITTED)], state).events

    assert events == [Refused("a", "not_found_at_exchange"), Acked("b", "x-b")]


def test_reconcile_when_order_not_looked_up_decides_nothing_about_it() -> None:
    assert reconcile([_order("a", S.SUBMITTED)], ExchangeState({})).events == []


def test_reconcile_when_exchange_holds_unknown_open_orders_reports_them_as_orphans() -> None:
    mine, stranger = ExchangeOrder("a", "x-a", "open"), ExchangeOrder("manual-1", "x-m", "open")

    result = reconcile([_order("a", S.ACKNOWLEDGED)], ExchangeState({"a": mine}, (mine, stranger)))

    assert result.orphans == [stranger]


class _AwayExchange(PaperExchange):
    """A venue where an order filled while the service was down."""

    def exchange_state(self, open_orders: list[Order]) -> ExchangeState:
        coids = {
            o.client_order_id: ExchangeOrder(o.client_order_id, "x", "closed") for o in open_orders
        }
        fills = tuple(_fill(c, f"away-{c}", "1") for c in coids)
        return ExchangeState(coids, fills=fills)


def test_execution_handler_when_restarted_reconciles_before_placing_a_new_order() -> None:
    before = handler()
    run(before, [quote(T, 100.0, 101.0), limit("r1", T, "buy", "1", "99")])
    restarted = ExecutionHandler(EventIds(SimClock(T), seed=8), _AwayExchange())
    restarted.restore(before.snapshot())

    out = run(restarted, [market("n1", T + 5, "buy", "1")])
    again = restarted.reconcile(T + 6)

    assert [(r.client_order_id, r.status, r.trade_id) for r in out] == [
        ("r1", S.FILLED, "away-r1"),  # the fill missed while down comes first
        ("n1", S.ACKNOWLEDGED, None),
        ("n1", S.FILLED, "paper-n1-1"),
    ]
    assert again == []  # ...and only once


def test_execution_handler_when_paper_restored_reconciliation_changes_nothing() -> None:
    before = handler()
    run(before, [quote(T, 100.0, 101.0), limit("r1", T, "buy", "1", "99")])
    restored = handler()
    restored.restore(before.snapshot())

    assert restored.reconcile(T + 1) == []
    assert restored.orders == before.orders


class _Unreachable(PaperExchange):
    def __init__(self) -> None:
        super().__init__()
        self.down = True

    def exchange_state(self, open_orders: list[Order]) -> ExchangeState:
        if self.down:
            raise VenueUnavailable("NetworkError")
        return super().exchange_state(open_orders)


def test_execution_handler_when_venue_unreachable_at_start_refuses_orders_until_reconciled() -> (
    None
):
    venue = _Unreachable()
    h = ExecutionHandler(EventIds(SimClock(T), seed=8), venue)

    refused = run(h, [quote(T, 100.0, 101.0), market("n1", T, "buy", "1")])
    venue.down = False
    placed = run(h, [market("n2", T + 1, "buy", "1")])

    assert [(r.client_order_id, r.status, r.reason) for r in refused] == [
        ("n1", S.REJECTED, "not_reconciled")
    ]
    assert [r.status for r in placed] == [S.ACKNOWLEDGED, S.FILLED]
