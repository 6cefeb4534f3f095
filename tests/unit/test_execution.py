"""Execution: the order state machine, the paper exchange, and the handler."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest

from tests.unit import factories as f
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import ControlAction, ExecutionReport, Liquidity, OrderStatus, OrderType
from tickpipe.topics import EXECUTIONS, ORDERS, QUOTES
from tickpipe_execution.domain.orders import TRANSITIONS, InvalidTransition, Order
from tickpipe_execution.domain.paper import PaperConfig, PaperExchange
from tickpipe_execution.handlers import ExecutionHandler

D = Decimal
S = OrderStatus
TERMINAL = {S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED}
LEGAL = [(a, b) for a, targets in TRANSITIONS.items() for b in sorted(targets)]
ILLEGAL = [(a, b) for a, b in itertools.product(S, S) if b not in TRANSITIONS[a]]

# -- State machine ----------------------------------------------------------------------------


def test_transitions_when_listed_cover_every_status() -> None:
    assert set(TRANSITIONS) == set(S)


@pytest.mark.parametrize(("start", "to"), LEGAL, ids=[f"{a}->{b}" for a, b in LEGAL])
def test_order_when_transition_legal_moves_and_records_history(start: S, to: S) -> None:
    order = Order("c1", D(1), status=start)

    order.transition(to)

    assert order.status is to
    assert order.history == [start]


@pytest.mark.parametrize(("start", "to"), ILLEGAL, ids=[f"{a}->{b}" for a, b in ILLEGAL])
def test_order_when_transition_illegal_raises_and_keeps_state(start: S, to: S) -> None:
    order = Order("c1", D(1), status=start)

    with pytest.raises(InvalidTransition):
        order.transition(to)

    assert order.status is start
    assert order.history == []


def test_transitions_when_spot_checked_refuse_known_illegal_moves() -> None:
    for start, to in [
        (S.NEW, S.FILLED),
        (S.NEW, S.ACKNOWLEDGED),
        (S.FILLED, S.CANCELLED),
        (S.CANCELLED, S.FILLED),
        (S.REJECTED, S.SUBMITTED),
        (S.ACKNOWLEDGED, S.SUBMITTED),
        (S.PENDING_CANCEL, S.ACKNOWLEDGED),
    ]:
        assert (start, to) in ILLEGAL


@pytest.mark.parametrize("status", list(S))
def test_order_when_status_terminal_has_no_leaves(status: S) -> None:
    order = Order("c1", D(2), status=status, cum_qty=D("0.5"))

    assert order.is_terminal is (status in TERMINAL)
    assert order.leaves_qty == (D(0) if status in TERMINAL else D("1.5"))


def test_order_when_filled_in_parts_tracks_cum_and_leaves() -> None:
    order = Order("c1", D(1), status=S.ACKNOWLEDGED)

    order.fill(D("0.6"))
    assert (order.status, order.cum_qty, order.leaves_qty) == (
        S.PARTIALLY_FILLED,
        D("0.6"),
        D("0.4"),
    )
    order.fill(D("0.4"))

    assert (order.status, order.cum_qty, order.leaves_qty) == (S.FILLED, D(1), D(0))
    assert order.history == [S.ACKNOWLEDGED, S.PARTIALLY_FILLED]


@pytest.mark.parametrize("qty", [D("0.5"), D(0), D("-0.1")])
def test_order_when_fill_exceeds_or_is_not_positive_refuses_it(qty: Decimal) -> None:
    order = Order("c1", D(1), status=S.PARTIALLY_FILLED, cum_qty=D("0.6"))

    with pytest.raises(InvalidTransition):
        order.fill(qty)

    assert (order.status, order.cum_qty) == (S.PARTIALLY_FILLED, D("0.6"))


@pytest.mark.parametrize("status", [S.NEW, S.CANCELLED, S.REJECTED, S.EXPIRED])
def test_order_when_filled_in_state_that_forbids_it_changes_nothing(status: S) -> None:
    order = Order("c1", D(1), status=status)

    with pytest.raises(InvalidTransition):
        order.fill(D("0.5"))

    assert (order.status, order.cum_qty) == (status, D(0))


# -- Paper exchange ---------------------------------------------------------------------------


def _exchange(**cfg: Any) -> PaperExchange:
    ex = PaperExchange(PaperConfig(**cfg))
    ex.on_quote(f.KEY, 60_000.00, 60_000.01, f.T0)
    return ex


def test_paper_exchange_when_buying_fills_at_ask_plus_slippage_on_tick() -> None:
    fill = _exchange().market_fill(f.KEY, "buy", D("0.5"))

    # 60000.01 * 1.0001 = 60006.011001 -> 60006.01; fee 7.5 bps of 30003.005.
    assert fill is not None
    assert (fill.price, fill.qty, fill.fee) == (D("60006.01"), D("0.5"), D("22.50225375"))


def test_paper_exchange_when_selling_fills_at_bid_minus_slippage() -> None:
    fill = _exchange().market_fill(f.KEY, "sell", D("0.5"))

    assert fill is not None
    assert (fill.price, fill.fee) == (D("59994.00"), D("22.49775"))


def test_paper_exchange_when_slippage_and_fees_zero_fills_at_touch() -> None:
    fill = _exchange(slippage_bps=D(0), taker_fee_bps=D(0)).market_fill(f.KEY, "buy", D(1))

    assert fill is not None
    assert (fill.price, fill.fee) == (D("60000.01"), D(0))


def test_paper_exchange_when_coarser_tick_rounds_price_to_it() -> None:
    fill = _exchange(tick_size=D(1), slippage_bps=D(10)).market_fill(f.KEY, "buy", D(1))

    # 60000.01 * 1.001 = 60060.07001 -> 60060
    assert fill is not None
    assert fill.price == D(60_060)


def test_paper_exchange_when_no_quote_returns_none() -> None:
    ex = PaperExchange()
    ex.on_quote("binance:ETH/USDT", 3_000.0, 3_000.01, f.T0)

    assert ex.market_fill(f.KEY, "buy", D(1)) is None


# -- Handler ----------------------------------------------------------------------------------


def _handler(quote: bool = True) -> ExecutionHandler:
    handler = ExecutionHandler(EventIds(SimClock(f.T0), seed=5), PaperExchange())
    if quote:
        assert handler.handle(f.quote(bid=60_000.00, ask=60_000.01), QUOTES, f.T0) == ()
    return handler


def _reports(handler: ExecutionHandler, **order_fields: object) -> list[ExecutionReport]:
    out = []
    for emit in handler.handle(f.order(**order_fields), ORDERS, f.T0 + 7):
        assert emit.topic == EXECUTIONS
        assert isinstance(emit.event, ExecutionReport)
        out.append(emit.event)
    return out


def test_execution_handler_when_market_order_with_quote_acks_then_fills() -> None:
    handler = _handler()

    ack, fill = _reports(handler)

    order = f.order()
    assert (ack.status, ack.cum_qty, ack.leaves_qty, ack.is_fill) == (
        S.ACKNOWLEDGED,
        D(0),
        D("0.5"),
        False,
    )
    assert (fill.status, fill.cum_qty, fill.leaves_qty, fill.last_qty) == (
        S.FILLED,
        D("0.5"),
        D(0),
        D("0.5"),
    )
    assert (fill.last_price, fill.fee, fill.fee_currency) == (
        D("60006.01"),
        D("22.50225375"),
        "USDT",
    )
    assert fill.liquidity is Liquidity.TAKER
    assert fill.trade_id == f"paper-{order.client_order_id}-1"
    assert {ack.exchange_order_id, fill.exchange_order_id} == {f"paper-{order.client_order_id}"}
    assert ack.causation_id == fill.causation_id == order.event_id
    # Stamped with the exchange's clock (the paper's market time), processed at T0 + 7.
    assert (fill.ts_event, fill.ts_init) == (f.T0, f.T0 + 7)
    assert handler.orders[order.client_order_id].history == [S.NEW, S.SUBMITTED, S.ACKNOWLEDGED]


def test_execution_handler_when_same_order_arrives_twice_places_it_once() -> None:
    handler = _handler()
    assert len(_reports(handler)) == 2

    assert _reports(handler) == []
    assert len(handler.orders) == 1


def test_execution_handler_when_no_quote_rejects_with_no_market_data() -> None:
    handler = _handler(quote=False)

    (report,) = _reports(handler)

    assert report.status is S.REJECTED
    assert report.reason == "no_market_data"
    assert (report.cum_qty, report.last_qty, report.last_price) == (D(0), D(0), None)
    assert not report.is_fill


def test_execution_handler_when_order_rejected_does_not_retry_on_redelivery() -> None:
    handler = _handler(quote=False)
    _reports(handler)
    handler.handle(f.quote(), QUOTES, f.T0)

    assert _reports(handler) == []


def test_execution_handler_when_limit_order_not_marketable_acks_and_rests() -> None:
    handler = _handler()

    (report,) = _reports(handler, order_type=OrderType.LIMIT, limit_price=D(59_000))

    assert (report.status, report.leaves_qty) == (S.ACKNOWLEDGED, D("0.5"))
    assert [o.client_order_id for o in handler.open_orders()] == ["tp-1"]


def test_execution_handler_when_event_is_unrelated_ignores_it() -> None:
    handler = _handler()

    assert handler.handle(f.signal(), "signals.v1", f.T0) == ()
    assert handler.handle(f.control(ControlAction.PAUSE_SYMBOL), "control.v1", f.T0) == ()
