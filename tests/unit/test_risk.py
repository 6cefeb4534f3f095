"""Risk: positions and PnL in exact decimals, sizing, exchange precision, and the handler."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from decimal import ROUND_DOWN, ROUND_UP, Decimal

import orjson
import pytest

from tests.unit import factories as f
from tickpipe.bus.memory import MemoryBus
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.embedded import simulated_context
from tickpipe.ids import EventIds
from tickpipe.messages import (
    ControlAction,
    ControlCommand,
    ExecutionReport,
    OrderRequest,
    OrderStatus,
    RiskDecision,
)
from tickpipe.runner import encode_emit
from tickpipe.service import Emit
from tickpipe.topics import CONTROL, EXECUTIONS, ORDERS, RISK_DECISIONS, SIGNALS
from tickpipe_risk.domain.checks import Limits
from tickpipe_risk.domain.market import MarketRules, load_binance_exchange_info
from tickpipe_risk.domain.positions import Position, fmt
from tickpipe_risk.domain.sizing import SizingConfig, order_qty, target_qty, tradable
from tickpipe_risk.handlers import RiskHandler, client_order_id
from tickpipe_risk.store import kill_switch_key

D = Decimal
S = f.SECOND

# -- Position ---------------------------------------------------------------------------------


def test_position_when_adding_to_long_averages_cost() -> None:
    pos = Position()

    pos.apply_fill(D(2), D(100), D("0.1"))
    pos.apply_fill(D(1), D(130), D("0.05"))

    assert (pos.qty, pos.avg_price, pos.realized, pos.fees) == (D(3), D(110), D(0), D("0.15"))


def test_position_when_partially_closed_realizes_pnl_and_keeps_average() -> None:
    pos = Position(qty=D(3), avg_price=D(110))

    pos.apply_fill(D(-1), D(120), D(0))

    assert (pos.qty, pos.avg_price, pos.realized) == (D(2), D(110), D(10))


def test_position_when_fill_flips_side_realizes_closed_part_and_reopens_at_price() -> None:
    pos = Position(qty=D(2), avg_price=D(110), realized=D(10))

    pos.apply_fill(D(-3), D(90), D(0))

    assert (pos.qty, pos.avg_price, pos.realized) == (D(-1), D(90), D(10) + D(-40))


def test_position_when_short_closed_at_lower_price_gains() -> None:
    pos = Position(qty=D(-1), avg_price=D(90), realized=D(-30))

    pos.apply_fill(D(1), D(80), D(0))

    assert (pos.qty, pos.avg_price, pos.realized) == (D(0), D(0), D(-20))


def test_position_when_fills_are_fractional_stays_exact() -> None:
    pos = Position()

    pos.apply_fill(D("0.1"), D("0.3"), D(0))
    pos.apply_fill(D("0.2"), D("0.6"), D(0))
    pos.apply_fill(D("-0.15"), D("0.7"), D(0))

    assert pos.avg_price == D("0.5")
    assert pos.qty == D("0.15")
    assert pos.realized == D("0.030")
    assert pos.unrealized(D("0.4")) == D("-0.015")


def test_position_when_short_marked_down_shows_unrealized_gain() -> None:
    pos = Position()
    pos.apply_fill(D(-2), D(100), D(0))

    assert pos.unrealized(D(95)) == D(10)
    assert pos.unrealized() == D(0)  # marked at its own last fill price
    assert pos.as_dict(D(95)) == {
        "qty": "-2",
        "avg_price": "100.00000000",
        "realized": "0.00000000",
        "unrealized": "10.00000000",
        "fees": "0.00000000",
    }


# -- Sizing -----------------------------------------------------------------------------------

CFG = SizingConfig(capital=D(10_000), vol_target=0.0005, max_position_notional=D(50_000))


def test_target_qty_when_flat_signal_or_bad_price_returns_zero() -> None:
    assert target_qty(0, 0.9, D(50_000), 0.001, CFG) == 0
    assert target_qty(1, 0.9, D(0), 0.001, CFG) == 0


@pytest.mark.parametrize(
    ("direction", "score", "vol", "expected"),
    [
        (1, 0.5, 0.001, D("0.1")),  # 10,000 * 0.5 * 1.0 / 50,000
        (-1, 0.5, 0.001, D("-0.1")),
        (1, 0.2, 0.001, D("0.04")),  # strength 0.4
        (1, 0.5, 0.0005, D("0.2")),  # half the vol: twice the size
        (1, 0.9, None, D(1)),  # vol floor 1e-5: 500,000 notional, capped at 50,000
        (-1, 0.9, 1e-9, D(-1)),
    ],
)
def test_target_qty_when_sized_scales_with_vol_and_score(
    direction: int, score: float, vol: float | None, expected: Decimal
) -> None:
    assert target_qty(direction, score, D(50_000), vol, CFG) == expected


@pytest.mark.parametrize(
    ("target", "exposure", "price", "expected"),
    [
        (D("0.3"), D(0), D(50_000), D("0.3")),
        (D(1), D("0.2"), D(50_000), D("0.5")),  # 25,000 notional per order
        (D(-1), D("0.2"), D(50_000), D("-0.5")),
        (D(10), D(0), D(1_000), D(5)),  # max 5 per order binds before notional (25)
        (D("0.1"), D("0.1"), D(50_000), D(0)),
    ],
)
def test_order_qty_when_target_far_slices_to_per_order_caps(
    target: Decimal, exposure: Decimal, price: Decimal, expected: Decimal
) -> None:
    assert order_qty(target, exposure, price, D(25_000), D(5)) == expected


def test_target_qty_when_limit_cap_below_sizing_cap_caps_at_the_limit() -> None:
    assert target_qty(1, 0.9, D(50_000), None, CFG, cap=D(5_000)) == D("0.1")
    assert target_qty(-1, 0.9, D(50_000), None, CFG, cap=D(5_000)) == D("-0.1")
    assert target_qty(1, 0.5, D(50_000), 0.001, CFG, cap=D(10**9)) == D("0.1")  # not raised


def test_order_qty_when_target_across_zero_orders_through_zero_sliced() -> None:
    assert order_qty(D("-0.5"), D("0.5"), D(50_000), D(25_000), D(5)) == D("-0.5")
    assert order_qty(D("-0.2"), D("0.1"), D(50_000), D(25_000), D(5)) == D("-0.3")


def test_order_qty_when_limits_off_orders_whole_difference() -> None:
    assert order_qty(D(100), D(0), D(50_000), None, None) == D(100)
    assert order_qty(D(100), D(0), D(50_000), None, D(2)) == D(2)
    assert order_qty(D(100), D(0), D(0), D(1), D(1)) == 0  # no price: nothing


@pytest.mark.parametrize(
    ("qty", "price", "expected"),
    [
        (D("0.123456789"), D(60_000), D("0.12345")),  # toward zero, to the step
        (D("-0.123456789"), D(60_000), D("-0.12345")),
        (D("0.000009"), D(60_000), D(0)),  # under one step
        (D("0.00016"), D(60_000), D(0)),  # 9.60 notional: under the 10 minimum
        (D("0.00017"), D(60_000), D("0.00017")),  # 10.20
        (D("-0.00016"), D(62_500), D("-0.00016")),  # exactly 10.00 passes
    ],
)
def test_tradable_when_rounded_respects_step_and_exchange_minimums(
    qty: Decimal, price: Decimal, expected: Decimal
) -> None:
    rules = MarketRules(D("0.01"), D("0.00001"), D("0.00001"), D(10))

    assert tradable(qty, price, rules) == expected


def test_tradable_when_below_min_qty_returns_zero() -> None:
    rules = MarketRules(D("0.01"), D("0.001"), D("0.01"), D(0))

    assert tradable(D("0.009"), D(100), rules) == 0
    assert tradable(D("0.0109"), D(100), rules) == D("0.010")


def test_market_rules_when_rounding_qty_rounds_toward_zero_to_step() -> None:
    rules = MarketRules(D("0.01"), D("0.00001"), D("0.00001"), D(10))

    assert rules.round_qty(D("0.123456789")) == D("0.12345")
    assert rules.round_qty(D("-0.123456789")) == D("-0.12345")
    assert rules.round_qty(D("0.000009")) == 0
    assert rules.round_price(D("60000.014")) == D("60000.01")
    assert rules.round_price(D("60000.019"), ROUND_DOWN) == D("60000.01")
    assert rules.round_price(D("60000.011"), ROUND_UP) == D("60000.02")


def test_load_binance_exchange_info_when_reading_sample_returns_btcusdt_filters() -> None:
    rules = load_binance_exchange_info(f.EXCHANGE_INFO)

    btc = rules["BTCUSDT"]
    assert (btc.tick_size, btc.step_size, btc.min_qty) == (D("0.01"), D("0.00001"), D("0.00001"))
    assert btc.min_notional == D(10)


# -- Handler ----------------------------------------------------------------------------------

SIZING = SizingConfig(capital=D(10_000))  # 5,000 notional for score 0.5 at vol 0.001
MID = D("60000.01")  # (60000.00 + 60000.02) / 2
EXPECTED_QTY = (D(5_000) / MID).quantize(D("0.00001"), rounding=ROUND_DOWN)


def _handler(
    cache: MemoryCache | None = None, bus: MemoryBus | None = None
) -> tuple[RiskHandler, MemoryCache]:
    """A started handler: `on_start` rebuilt its state from `bus`'s topics."""
    clock = SimClock(f.T0)
    cache = cache or MemoryCache(clock)
    rules = load_binance_exchange_info(f.EXCHANGE_INFO)
    handler = RiskHandler(EventIds(clock, seed=3), cache, "paper", SIZING, Limits(), rules)
    handler.on_start(replace(simulated_context(), bus=bus or MemoryBus()))
    return handler, cache


def _quoted(
    cache: MemoryCache | None = None, bus: MemoryBus | None = None
) -> tuple[RiskHandler, MemoryCache]:
    """A handler that has seen the touch `f.quote()` makes, through a flat signal."""
    handler, cache = _handler(cache, bus)
    flat = f.signal(event_id="01FLAT", direction=0, score=0.0)
    assert handler.handle(flat, SIGNALS, f.T0) == ()
    return handler, cache


def test_risk_handler_when_signal_has_quote_emits_approved_decision_and_order() -> None:
    handler, _ = _quoted()
    sig = f.signal()

    emits = handler.handle(sig, SIGNALS, f.T0 + S)

    assert [e.topic for e in emits] == [RISK_DECISIONS, ORDERS]
    decision, order = emits[0].event, emits[1].event
    assert isinstance(decision, RiskDecision)
    assert isinstance(order, OrderRequest)
    assert decision.approved and decision.reasons == []
    assert order.side == "buy"
    assert order.quantity == EXPECTED_QTY == D("0.08333")
    assert order.reference_price == MID
    assert decision.client_order_id == order.client_order_id
    assert order.causation_id == decision.causation_id == sig.event_id
    assert (order.account, order.strategy_id, order.key) == ("paper", "baseline", f.KEY)


def test_risk_handler_when_signal_short_emits_sell_order() -> None:
    handler, _ = _quoted()

    emits = handler.handle(f.signal(direction=-1, score=-0.5), SIGNALS, f.T0 + S)

    order = emits[-1].event
    assert isinstance(order, OrderRequest)
    assert (order.side, order.quantity) == ("sell", EXPECTED_QTY)


def test_client_order_id_when_derived_is_deterministic_hash_of_strategy_and_signal() -> None:
    a, _ = _quoted()
    b, _ = _quoted()
    sig = f.signal()

    order_a = a.handle(sig, SIGNALS, f.T0 + S)[-1].event
    order_b = b.handle(sig, SIGNALS, f.T0 + 2 * S)[-1].event

    expected = "tp" + hashlib.sha256(b"baseline|01SIGNAL").hexdigest()[:30]
    assert isinstance(order_a, OrderRequest) and isinstance(order_b, OrderRequest)
    assert order_a.client_order_id == order_b.client_order_id == expected
    assert client_order_id("baseline", "01SIGNAL") == expected
    assert client_order_id("baseline", "01OTHER") != expected
    assert len(expected) <= 36


def test_risk_handler_when_no_quote_rejects_with_no_reference_price() -> None:
    handler, _ = _handler()

    emits = handler.handle(f.signal(bid=None, ask=None), SIGNALS, f.T0 + S)

    assert [e.topic for e in emits] == [RISK_DECISIONS]
    decision = emits[0].event
    assert isinstance(decision, RiskDecision)
    assert not decision.approved
    assert decision.reasons == ["no_reference_price"]
    assert decision.client_order_id is None


def test_risk_handler_when_quote_stale_rejects_with_stale_reference_price() -> None:
    handler, _ = _quoted()  # the touch arrived at T0, with a signal
    fresh_signal = f.signal(ts_init=f.T0 + 6 * S, bid=None, ask=None)  # a bar without quotes

    emits = handler.handle(fresh_signal, SIGNALS, f.T0 + 6 * S)

    decision = emits[0].event
    assert isinstance(decision, RiskDecision)
    assert decision.reasons == ["stale_reference_price"]


def test_risk_handler_when_signal_flat_emits_nothing() -> None:
    handler, _ = _quoted()

    assert handler.handle(f.signal(direction=0, score=0.0), SIGNALS, f.T0 + S) == ()


def test_risk_handler_when_kill_switch_on_rejects_and_survives_an_empty_cache() -> None:
    bus = MemoryBus()
    handler, cache = _quoted(bus=bus)
    command = f.control(ControlAction.KILL_SWITCH_ON)
    bus.producer("api").send(encode_emit(Emit(CONTROL, command), ()))  # on control.v1

    (cancel,) = handler.handle(command, CONTROL, f.T0)
    emits = handler.handle(f.signal(), SIGNALS, f.T0 + S)

    assert cancel.topic == CONTROL
    assert isinstance(cancel.event, ControlCommand)
    assert cancel.event.action is ControlAction.CANCEL_ALL

    assert [e.topic for e in emits] == [RISK_DECISIONS]
    decision = emits[0].event
    assert isinstance(decision, RiskDecision)
    assert (decision.approved, decision.reasons) == (False, ["kill_switch"])
    assert cache.get(kill_switch_key("paper")) == b"1"  # written for operators
    restarted, _ = _quoted(bus=bus)  # a new, empty cache: rebuilt from control.v1
    assert restarted.kill_switch is True
    (after_restart,) = restarted.handle(f.signal(), SIGNALS, f.T0 + S)
    assert isinstance(after_restart.event, RiskDecision)
    assert after_restart.event.reasons == ["kill_switch"]


def test_risk_handler_when_kill_switch_off_approves_again() -> None:
    handler, cache = _quoted()
    handler.handle(f.control(ControlAction.KILL_SWITCH_ON), CONTROL, f.T0)

    handler.handle(f.control(ControlAction.KILL_SWITCH_OFF), CONTROL, f.T0)

    assert cache.get(kill_switch_key("paper")) == b"0"
    assert [e.topic for e in handler.handle(f.signal(), SIGNALS, f.T0 + S)] == [
        RISK_DECISIONS,
        ORDERS,
    ]


def test_risk_handler_when_fills_arrive_updates_position_and_pnl_cache() -> None:
    handler, cache = _quoted()
    ack = f.execution(
        status=OrderStatus.ACKNOWLEDGED,
        cum_qty=D(0),
        leaves_qty=D("0.08333"),
        last_qty=D(0),
        last_price=None,
        fee=D(0),
        quantity=D("0.08333"),
    )
    buy = f.execution(quantity=D("0.08333"), cum_qty=D("0.08333"), last_qty=D("0.08333"),
                      last_price=D("60006.01"), fee=D("3.75"))  # fmt: skip
    sell = f.execution(side="sell", quantity=D("0.05"), cum_qty=D("0.05"), last_qty=D("0.05"),
                       last_price=D("60010.01"), fee=D(1))  # fmt: skip

    handler.handle(ack, EXECUTIONS, f.T0)
    assert cache.get("pnl:paper") is None
    handler.handle(buy, EXECUTIONS, f.T0)
    after_buy = orjson.loads(cache.get("pnl:paper") or b"null")
    handler.handle(sell, EXECUTIONS, f.T0)
    after_sell = orjson.loads(cache.get("pnl:paper") or b"null")

    # Marked at the quote's mid, 60000.01: 6.00 under the 60006.01 average.
    assert after_buy == {
        "realized": "0.00000000",
        "unrealized": "-0.49998000",
        "fees": "3.75000000",
        "net": "-4.24998000",
    }
    # Sold 0.05 at 4.00 over average: 0.2 realized; 0.03333 left, 6.00 under.
    assert after_sell == {
        "realized": "0.20000000",
        "unrealized": "-0.19998000",
        "fees": "4.75000000",
        "net": "-4.74998000",
    }
    pos = handler.positions[f.KEY]
    assert (pos.qty, pos.avg_price) == (D("0.03333"), D("60006.01"))
    assert orjson.loads(cache.get(f"positions:paper:{f.KEY}") or b"null")["qty"] == "0.03333"


def test_risk_handler_when_order_filled_counts_position_not_open_qty() -> None:
    handler, _ = _quoted()
    order = handler.handle(f.signal(), SIGNALS, f.T0 + S)[-1].event
    assert isinstance(order, OrderRequest)
    fill = f.execution(client_order_id=order.client_order_id, quantity=order.quantity,
                       cum_qty=order.quantity, last_qty=order.quantity)  # fmt: skip
    handler.handle(fill, EXECUTIONS, f.T0 + S)

    # At target already (position 0.08333): a repeat of the same signal orders nothing.
    assert handler.handle(f.signal(event_id="01SIGNAL2"), SIGNALS, f.T0 + 2 * S) == ()


def test_risk_handler_when_order_open_counts_it_toward_exposure() -> None:
    handler, _ = _quoted()
    handler.handle(f.signal(), SIGNALS, f.T0 + S)

    assert handler.handle(f.signal(event_id="01SIGNAL2"), SIGNALS, f.T0 + 2 * S) == ()


def test_risk_handler_when_open_order_cancelled_releases_its_quantity() -> None:
    handler, _ = _quoted()
    order = handler.handle(f.signal(), SIGNALS, f.T0 + S)[-1].event
    assert isinstance(order, OrderRequest)
    cancelled = f.execution(status=OrderStatus.CANCELLED, quantity=order.quantity, cum_qty=D(0),
                            leaves_qty=order.quantity, last_qty=D(0), last_price=None,
                            client_order_id=order.client_order_id)  # fmt: skip
    handler.handle(cancelled, EXECUTIONS, f.T0 + S)

    later = f.signal(event_id="01SIGNAL2", ts_event=f.T0 + S)  # past the duplicate window
    again = handler.handle(later, SIGNALS, f.T0 + 2 * S)

    assert [e.topic for e in again] == [RISK_DECISIONS, ORDERS]


def test_risk_handler_when_order_rejected_by_execution_releases_its_quantity() -> None:
    from tickpipe_execution.domain.paper import PaperExchange
    from tickpipe_execution.handlers import ExecutionHandler

    handler, _ = _quoted()
    order = handler.handle(f.signal(), SIGNALS, f.T0 + S)[-1].event
    execution = ExecutionHandler(EventIds(SimClock(f.T0), seed=4), PaperExchange())
    (rejected,) = execution.handle(order, ORDERS, f.T0 + S)  # no quote there: rejected
    assert isinstance(rejected.event, ExecutionReport)
    assert rejected.event.status is OrderStatus.REJECTED
    handler.handle(rejected.event, EXECUTIONS, f.T0 + S)

    later = f.signal(event_id="01SIGNAL2", ts_event=f.T0 + S)  # past the duplicate window
    again = handler.handle(later, SIGNALS, f.T0 + 2 * S)

    assert [e.topic for e in again] == [RISK_DECISIONS, ORDERS]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (D(0), "0.00000000"),
        (D("-0.000000001"), "0.00000000"),
        (D("1E+3"), "1000.00000000"),
        (D("-4.249980004"), "-4.24998000"),
    ],
)
def test_fmt_when_formatting_amounts_prints_fixed_point(value: Decimal, text: str) -> None:
    assert fmt(value) == text
