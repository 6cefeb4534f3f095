"""The circuit breaker: a state machine on injected time, and its place in the engine."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tickpipe_risk.domain.books import Fill
from tickpipe_risk.domain.checks import Intent
from tickpipe_risk.domain.controls.circuit import (
    TRANSITIONS,
    BreakerConfig,
    CircuitBreaker,
    IllegalTransition,
    State,
    Trigger,
)
from tickpipe_risk.domain.engine import RiskEngine
from tickpipe_risk.domain.limits import Limits

S = 1_000_000_000
T0 = 1_723_161_254 * S
CFG = BreakerConfig(window=4, min_calls=4, failure_rate=0.5, slow_ns=S, open_ns=10 * S, probes=2)
BTC = "binance:BTC/USDT"


def _tripped(at: int = T0) -> CircuitBreaker:
    b = CircuitBreaker()
    for failed in (True, True, False, False):
        b.outcome(failed, at, CFG)
    assert b.state is State.OPEN
    return b


def test_breaker_when_failure_rate_reaches_threshold_opens() -> None:
    b = CircuitBreaker()
    for failed in (True, False, True):
        b.outcome(failed, T0, CFG)
    assert b.check(T0, CFG) == []  # 3 calls: below the minimum

    b.outcome(False, T0, CFG)  # 2 of 4 failed: 50%

    assert b.state is State.OPEN
    assert b.check(T0, CFG) == ["circuit_open"]


def test_breaker_when_failures_are_rare_stays_closed() -> None:
    b = CircuitBreaker()
    for i in range(40):
        b.outcome(i % 4 == 0, T0 + i, CFG)  # 25%

    assert b.state is State.CLOSED


def test_breaker_when_old_failures_leave_the_window_forgets_them() -> None:
    b = CircuitBreaker()
    for failed in (True, False, False, False, False, True):
        b.outcome(failed, T0, CFG)  # window of 4 holds F F F T: 25%

    assert b.state is State.CLOSED


def test_breaker_when_volatility_spikes_opens_in_any_state() -> None:
    closed, half_open = CircuitBreaker(), _tripped()
    half_open.check(T0 + 10 * S, CFG)
    assert half_open.state is State.HALF_OPEN

    closed.volatility(0.0051, T0, CFG)
    half_open.volatility(0.0051, T0 + 10 * S, CFG)

    assert closed.state is half_open.state is State.OPEN
    quiet = CircuitBreaker()
    quiet.volatility(0.005, T0, CFG)
    quiet.volatility(None, T0, CFG)
    assert quiet.state is State.CLOSED


def test_breaker_when_cooldown_passes_lets_probes_through_then_holds() -> None:
    b = _tripped()
    assert b.check(T0 + 10 * S - 1, CFG) == ["circuit_open"]

    assert b.check(T0 + 10 * S, CFG) == []
    assert b.state is State.HALF_OPEN
    b.sent()
    b.sent()
    assert b.check(T0 + 10 * S, CFG) == ["circuit_half_open"]  # both probe slots used


def test_breaker_when_probes_pass_closes_with_a_fresh_window() -> None:
    b = _tripped()
    b.check(T0 + 10 * S, CFG)
    b.sent()
    b.sent()

    b.outcome(False, T0 + 11 * S, CFG)
    assert b.state is State.HALF_OPEN
    b.outcome(False, T0 + 11 * S, CFG)

    assert b.state is State.CLOSED
    assert list(b.outcomes) == []
    assert b.check(T0 + 11 * S, CFG) == []


def test_breaker_when_a_probe_fails_reopens_and_restarts_cooldown() -> None:
    b = _tripped()
    b.check(T0 + 10 * S, CFG)
    b.sent()

    b.outcome(True, T0 + 12 * S, CFG)

    assert b.state is State.OPEN
    assert b.check(T0 + 21 * S, CFG) == ["circuit_open"]
    assert b.check(T0 + 22 * S, CFG) == []


def test_breaker_when_open_ignores_late_answers() -> None:
    b = _tripped()

    b.outcome(False, T0 + S, CFG)

    assert b.state is State.OPEN
    assert b.opened_at == T0


@pytest.mark.parametrize(
    ("state", "trigger"),
    [
        (State.CLOSED, Trigger.COOLDOWN),
        (State.CLOSED, Trigger.PROBES_PASSED),
        (State.CLOSED, Trigger.PROBE_FAILED),
        (State.OPEN, Trigger.PROBES_PASSED),
        (State.HALF_OPEN, Trigger.COOLDOWN),
    ],
)
def test_breaker_when_transition_not_in_table_raises(state: State, trigger: Trigger) -> None:
    assert (state, trigger) not in TRANSITIONS

    with pytest.raises(IllegalTransition):
        CircuitBreaker(state=state)._fire(trigger, T0)


def test_breaker_when_dumped_and_loaded_continues_identically() -> None:
    b = _tripped()
    b.check(T0 + 10 * S, CFG)
    b.sent()

    c = CircuitBreaker.load(b.dump())

    assert c == b


# -- in the engine --------------------------------------------------------------------------


def _intent(coid: str) -> Intent:
    return Intent("a", BTC, Decimal("0.01"), None, T0, coid)


def test_engine_when_execution_rejects_orders_opens_breaker_for_that_symbol() -> None:
    engine = RiskEngine(Limits(), breaker=CFG)
    engine.quote(BTC, Decimal(60_000), T0)
    engine.quote("binance:ETH/USDT", Decimal(3_000), T0)
    for i in range(4):
        engine.accept(_intent(f"tp{i}"), Decimal(60_000), T0 + i)
        engine.answered(f"tp{i}", failed=i < 2, ts=T0 + i, market_ns=T0 + i)
        engine.closed(f"tp{i}")

    assert engine.decide(_intent("tp9"), T0 + S) == ["circuit_open"]
    eth = Intent("a", "binance:ETH/USDT", Decimal("0.01"), None, T0, "tp10")
    assert engine.decide(eth, T0 + S) == []


def test_engine_when_answers_are_slow_counts_them_as_failures() -> None:
    engine = RiskEngine(Limits(), breaker=CFG)
    engine.quote(BTC, Decimal(60_000), T0)
    for i in range(4):
        engine.accept(_intent(f"tp{i}"), Decimal(60_000), T0)
        engine.answered(f"tp{i}", failed=False, ts=T0 + (2 * S if i < 2 else 0), market_ns=T0)

    assert engine.state.breaker(BTC).state is State.OPEN


def test_engine_when_order_answered_twice_counts_first_answer_only() -> None:
    engine = RiskEngine(Limits(), breaker=CFG)
    engine.quote(BTC, Decimal(60_000), T0)
    engine.accept(_intent("tp0"), Decimal(60_000), T0)
    for _ in range(4):
        engine.answered("tp0", failed=True, ts=T0, market_ns=T0)
    engine.fill(Fill("tp0", "t", "a", BTC, Decimal("0.01"), Decimal(60_000), Decimal(0), T0), T0)

    assert list(engine.state.breaker(BTC).outcomes) == [True]
