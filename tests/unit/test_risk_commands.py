"""The risk handler's operator and data inputs: kill switch (and cancel_all), pauses, limits,
data-quality halts, the repeated-execution throttle, limit orders and the collar."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.trace import NoOpTracer
from prometheus_client import REGISTRY

from tests.unit import factories as f
from tickpipe.bus.memory import MemoryBus
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.embedded import simulated_context
from tickpipe.ids import EventIds
from tickpipe.messages import (
    ControlAction,
    ControlCommand,
    DataQuality,
    DeadLetter,
    FeedStatus,
    OrderRequest,
    OrderType,
    QualityIssue,
    RiskDecision,
    decode,
)
from tickpipe.runner import StreamRunner, encode_emit
from tickpipe.service import Emit, Rejected
from tickpipe.topics import CONTROL, DLQ, EXECUTIONS, QUALITY, QUOTES, SIGNALS
from tickpipe_risk.domain.controls.circuit import BreakerConfig
from tickpipe_risk.domain.limits import Guards, Limits
from tickpipe_risk.domain.sizing import SizingConfig
from tickpipe_risk.handlers import RiskHandler
from tickpipe_risk.store import controls_key, kill_switch_key

D = Decimal
S = f.SECOND
ETH = "binance:ETH/USDT"
SIZING = SizingConfig(capital=D(10_000))


ETH_TOUCH = {"bid": 3_000.0, "ask": 3_000.5, "price": 3_000.0}


def _handler(
    bus: MemoryBus | None = None,
    limits: Limits | None = None,
    cache: MemoryCache | None = None,
    **kw: Any,
) -> RiskHandler:
    """A started handler: `on_start` rebuilt its state from `bus`'s topics."""
    handler = RiskHandler(
        EventIds(SimClock(f.T0), seed=5),
        cache if cache is not None else MemoryCache(),
        "paper",
        SIZING,
        limits or Limits(),
        {},
        **kw,
    )
    handler.on_start(replace(simulated_context(), bus=bus or MemoryBus()))
    # The touches `f.quote()` and an ETH quote make, through flat signals.
    handler.handle(f.signal(event_id="01FLAT1", direction=0, score=0.0), SIGNALS, f.T0)
    eth = f.signal(event_id="01FLAT2", symbol="ETH/USDT", direction=0, score=0.0, **ETH_TOUCH)
    handler.handle(eth, SIGNALS, f.T0)
    return handler


def _decide(handler: RiskHandler, n: int = 1, at: int = f.T0, **kw: Any) -> RiskDecision:
    emits = handler.handle(f.signal(event_id=f"01SIG{n}", ts_init=at, **kw), SIGNALS, at)
    decision = emits[0].event
    assert isinstance(decision, RiskDecision)
    return decision


def _control(action: ControlAction, **kw: Any) -> ControlCommand:
    return f.control(action, **kw)


def _send(handler: RiskHandler, bus: MemoryBus, event: Any, topic: str) -> Sequence[Emit]:
    """As over Kafka: the record is on its topic, and the handler has processed it."""
    bus.producer("test").send(encode_emit(Emit(topic, event), ()))
    return handler.handle(event, topic, f.T0)


# -- kill switch ----------------------------------------------------------------------------


def test_kill_switch_when_turned_on_emits_cancel_all_for_execution() -> None:
    handler = _handler()
    command = _control(ControlAction.KILL_SWITCH_ON, reason="drill")

    (emit,) = handler.handle(command, CONTROL, f.T0 + S)

    cancel = emit.event
    assert emit.topic == CONTROL
    assert emit.record_key() == "cancel_all:paper"  # never compacts away an operator command
    assert isinstance(cancel, ControlCommand)
    assert (cancel.action, cancel.target, cancel.issued_by) == (
        ControlAction.CANCEL_ALL,
        "paper",
        "risk",
    )
    assert cancel.causation_id == command.event_id
    assert cancel.ts_init == f.T0 + S


def test_kill_switch_when_on_rejects_even_risk_reducing_orders_at_once() -> None:
    handler = _handler()
    assert _decide(handler).approved
    handler.handle(_control(ControlAction.KILL_SWITCH_ON), CONTROL, f.T0)

    decision = _decide(handler, 2, direction=-1, score=-0.5)

    assert (decision.approved, decision.reasons) == (False, ["kill_switch"])


def test_kill_switch_when_restarted_from_snapshot_without_cache_stays_on() -> None:
    handler = _handler()
    handler.handle(_control(ControlAction.KILL_SWITCH_ON), CONTROL, f.T0)

    restarted = _handler()  # an empty cache: only the snapshot knows
    restarted.restore(handler.snapshot())

    assert restarted.kill_switch is True
    assert _decide(restarted).reasons == ["kill_switch"]


@pytest.mark.parametrize(
    "command",
    [
        _control(ControlAction.PAUSE_SYMBOL, target=f.KEY),
        _control(ControlAction.RESUME_SYMBOL, target=f.KEY),
        _control(ControlAction.SET_LIMIT, args={"name": "max_order_qty", "value": "1"}),
        _control(ControlAction.CANCEL_ALL, target="paper"),
        _control(ControlAction.RELOAD_MODEL),
        _control(ControlAction.KILL_SWITCH_OFF, target="other-account"),
    ],
    ids=["pause", "resume", "set_limit", "cancel_all", "reload_model", "off-for-other-account"],
)
def test_kill_switch_when_any_command_but_off_for_this_account_arrives_stays_on(
    command: ControlCommand,
) -> None:
    handler = _handler()
    handler.handle(_control(ControlAction.KILL_SWITCH_ON), CONTROL, f.T0)

    assert handler.handle(command, CONTROL, f.T0) == ()

    assert handler.kill_switch is True
    handler.handle(_control(ControlAction.KILL_SWITCH_OFF, target="paper"), CONTROL, f.T0)
    assert handler.kill_switch is False


def test_kill_switch_when_aimed_at_another_account_is_ignored() -> None:
    handler = _handler()

    assert (
        handler.handle(_control(ControlAction.KILL_SWITCH_ON, target="live"), CONTROL, f.T0) == ()
    )

    assert handler.kill_switch is False
    assert _decide(handler).approved


# -- pause / resume -------------------------------------------------------------------------


def test_pause_symbol_when_paused_rejects_that_symbol_only_until_resumed() -> None:
    bus = MemoryBus()
    handler = _handler(bus)

    _send(handler, bus, _control(ControlAction.PAUSE_SYMBOL, target=f.KEY), CONTROL)

    assert _decide(handler).reasons == ["symbol_paused"]
    assert _decide(handler, 2, symbol="ETH/USDT").approved
    assert _decide(_handler(bus), 3).reasons == ["symbol_paused"]  # rebuilt from control.v1
    handler.handle(_control(ControlAction.RESUME_SYMBOL, target=f.KEY), CONTROL, f.T0)
    assert _decide(handler, 4).approved


@pytest.mark.parametrize("action", [ControlAction.PAUSE_SYMBOL, ControlAction.RESUME_SYMBOL])
def test_pause_symbol_when_target_not_a_symbol_raises_rejected(action: ControlAction) -> None:
    with pytest.raises(Rejected) as err:
        _handler().handle(_control(action, target="*"), CONTROL, f.T0)

    assert err.value.reason == "invalid_target"


# -- set_limit ------------------------------------------------------------------------------


def _set(handler: RiskHandler, name: str, value: str, **args: str) -> None:
    command = _control(ControlAction.SET_LIMIT, args={"name": name, "value": value, **args})
    assert handler.handle(command, CONTROL, f.T0) == ()


def test_set_limit_when_account_limit_lowered_rejects_with_its_reason() -> None:
    handler = _handler()

    _set(handler, "account_max_open_notional", "100")

    assert _decide(handler).reasons == ["account_max_open_notional"]


def test_set_limit_when_for_one_strategy_other_strategies_keep_defaults() -> None:
    handler = _handler()

    _set(handler, "max_open_notional", "100", strategy="baseline")

    assert _decide(handler).reasons == ["max_open_notional"]
    assert _decide(handler, 2, strategy_id="other").approved


def test_set_limit_when_restarted_keeps_the_new_limit_from_topics_and_snapshot() -> None:
    bus, cache = MemoryBus(), MemoryCache()
    handler = _handler(bus, cache=cache)
    command = _control(ControlAction.SET_LIMIT, args={"name": "max_open_notional", "value": "100"})
    assert _send(handler, bus, command, CONTROL) == ()

    from_topics = _handler(bus)  # an empty cache: control.v1 knows
    from_snapshot = _handler()
    from_snapshot.restore(handler.snapshot())

    assert _decide(from_topics).reasons == ["max_open_notional"]
    assert _decide(from_snapshot).reasons == ["max_open_notional"]
    assert cache.get(controls_key("paper")) is not None  # written for operators


def test_set_limit_when_order_size_limit_lowered_slices_orders_to_it() -> None:
    handler = _handler()

    _set(handler, "max_order_qty", "0.01")

    emits = handler.handle(f.signal(), SIGNALS, f.T0)
    order = emits[-1].event
    assert isinstance(order, OrderRequest)
    assert order.quantity == D("0.01")


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ({"name": "max_leverage", "value": "3"}, "unknown_limit"),
        ({"name": "max_order_qty", "value": "lots"}, "invalid_limit_value"),
        ({"name": "max_order_qty", "value": "-1"}, "invalid_limit_value"),
        ({"name": "account_max_drawdown", "value": "1", "strategy": "x"}, "unknown_limit"),
        ({"value": "1"}, "invalid_limit"),
    ],
)
def test_set_limit_when_name_unknown_or_value_bad_raises_rejected_and_changes_nothing(
    args: dict[str, str], reason: str
) -> None:
    handler = _handler()

    with pytest.raises(Rejected) as err:
        handler.handle(_control(ControlAction.SET_LIMIT, args=args), CONTROL, f.T0)

    assert err.value.reason == reason
    assert _decide(handler).approved


def test_set_limit_when_unknown_through_runner_becomes_dead_letter() -> None:
    bus = MemoryBus()
    clock = SimClock(f.T0)
    ids = EventIds(clock, seed=1)
    runner = StreamRunner(
        service="risk",
        group="risk",
        handler=_handler(),
        link=bus.link(group="risk", topics=[CONTROL], client_id="risk-1"),
        clock=clock,
        ids=ids,
        tracer=NoOpTracer(),
    )
    command = _control(ControlAction.SET_LIMIT, args={"name": "max_leverage", "value": "3"})
    bus.producer("ops").send(encode_emit(Emit(CONTROL, command, key="*"), ()))

    runner.step(0.0)

    (record,) = bus.records(DLQ)
    letter = decode(record.value, "dead_letter")
    assert isinstance(letter, DeadLetter)
    assert (letter.reason, letter.causation_id) == ("unknown_limit", command.event_id)


# -- data quality ---------------------------------------------------------------------------


def _quality(status: FeedStatus, stream: str = "trades", symbol: str = "BTC/USDT") -> DataQuality:
    issue = QualityIssue.GAP if status is FeedStatus.DEGRADED else None
    return DataQuality(
        event_id="01QUALITY",
        ts_event=f.T0,
        ts_init=f.T0,
        exchange="binance",
        symbol=symbol,
        source="binance-ws",
        stream=stream,
        status=status,
        issue=issue,
    )


def test_data_quality_when_feed_degraded_halts_symbol_until_healthy() -> None:
    handler = _handler()

    assert handler.handle(_quality(FeedStatus.DEGRADED), QUALITY, f.T0) == ()

    assert _decide(handler).reasons == ["data_quality_halt"]
    assert _decide(handler, 2, symbol="ETH/USDT").approved
    handler.handle(_quality(FeedStatus.HEALTHY, stream="quotes"), QUALITY, f.T0)
    assert _decide(handler, 3).reasons == ["data_quality_halt"]  # trades still degraded
    handler.handle(_quality(FeedStatus.HEALTHY), QUALITY, f.T0)
    assert _decide(handler, 4).approved


def test_data_quality_when_restored_from_snapshot_keeps_the_halt() -> None:
    handler = _handler()
    handler.handle(_quality(FeedStatus.DEGRADED), QUALITY, f.T0)

    restored = _handler()
    restored.restore(handler.snapshot())

    assert _decide(restored).reasons == ["data_quality_halt"]


def test_data_quality_when_status_and_issue_disagree_fails_validation() -> None:
    healthy = _quality(FeedStatus.HEALTHY).model_dump()
    degraded = _quality(FeedStatus.DEGRADED).model_dump()

    with pytest.raises(ValueError, match="degraded"):
        DataQuality(**{**healthy, "issue": "gap"})
    with pytest.raises(ValueError, match="degraded"):
        DataQuality(**{**degraded, "issue": None})


# -- repeated-execution throttle ------------------------------------------------------------


def _fill(n: int, strategy: str = "baseline", account: str = "paper") -> Any:
    return f.execution(
        client_order_id=f"tp{n}",
        trade_id=f"t{n}",
        strategy_id=strategy,
        account=account,
        quantity=D("0.001"),
        cum_qty=D("0.001"),
        last_qty=D("0.001"),
        fee=D(0),
        side="buy" if n % 2 else "sell",
        ts_event=f.T0 + n,
    )


def test_fill_throttle_when_fills_burst_disables_strategy_until_resumed() -> None:
    bus = MemoryBus()
    limits = Limits(guards=replace(Guards(), fill_throttle_count=3))
    handler = _handler(bus, limits)
    for n in range(3):
        _send(handler, bus, _fill(n), EXECUTIONS)

    assert _decide(handler).reasons == ["fill_throttle"]
    assert _decide(handler, 2, strategy_id="other").approved
    # Rebuilt from executions.v1: the same fills trip the throttle again.
    assert _decide(_handler(bus, limits), 3).reasons == ["fill_throttle"]
    resume = _control(ControlAction.RESUME_SYMBOL, target=f.KEY, args={"strategy": "baseline"})
    handler.handle(resume, CONTROL, f.T0)
    assert _decide(handler, 4).approved


def test_execution_when_for_another_account_changes_nothing() -> None:
    handler = _handler()

    handler.handle(_fill(1, account="live"), EXECUTIONS, f.T0)

    assert handler.positions == {}


# -- freshness, volatility, limit orders ----------------------------------------------------


def test_signal_when_older_than_max_age_rejects_with_stale_signal() -> None:
    handler = _handler()

    emits = handler.handle(f.signal(ts_init=f.T0 - 6 * S), SIGNALS, f.T0)

    decision = emits[0].event
    assert isinstance(decision, RiskDecision)
    # Its touch is as old as it is.
    assert decision.reasons == ["stale_signal", "stale_reference_price"]


def test_signal_when_volatility_spikes_opens_circuit_for_the_symbol() -> None:
    handler = _handler(breaker=BreakerConfig(max_volatility=0.002))

    assert _decide(handler, volatility=0.0021).reasons == ["circuit_open"]
    assert _decide(handler, 2, volatility=0.001).reasons == ["circuit_open"]  # still open
    assert _decide(handler, 3, symbol="ETH/USDT", volatility=0.001).approved


def test_signal_when_volatility_spike_delivered_again_keeps_the_first_cooldown() -> None:
    handler = _handler(breaker=BreakerConfig(max_volatility=0.002))  # open for 30 s
    spike = f.signal(event_id="01SPIKE", volatility=0.0021)
    handler.handle(spike, SIGNALS, f.T0)  # opens BTC's breaker at T0
    at = f.T0 + 20 * S
    _decide(handler, 2, at, symbol="ETH/USDT", ts_event=at, **ETH_TOUCH)  # market time +20 s

    # Inference delivers at least once: the copy was decided, it does not trip again.
    assert handler.handle(spike, SIGNALS, at) == ()

    at = f.T0 + 31 * S
    assert _decide(handler, 3, at, ts_event=at).approved  # half-open: a probe


def test_limit_orders_when_configured_price_marketable_toward_reference() -> None:
    handler = _handler(order_type=OrderType.LIMIT, limit_offset_bps=D(5))

    buy = handler.handle(f.signal(), SIGNALS, f.T0)[-1].event
    sell = handler.handle(
        f.signal(event_id="01SIG2", symbol="ETH/USDT", direction=-1, score=-0.5, **ETH_TOUCH),
        SIGNALS,
        f.T0,
    )[-1].event

    assert isinstance(buy, OrderRequest) and isinstance(sell, OrderRequest)
    assert buy.order_type is OrderType.LIMIT
    assert buy.limit_price == D("60030.01")  # 60000.01 × 1.0005 = 60030.010005, rounded down
    assert sell.limit_price == D("2998.75")  # 3000.25 × 0.9995 = 2998.749875, rounded up


def test_limit_orders_when_offset_beyond_collar_rejects_with_price_collar() -> None:
    limits = Limits(guards=replace(Guards(), collar_bps=D(10)))
    handler = _handler(limits=limits, order_type=OrderType.LIMIT, limit_offset_bps=D(20))

    assert _decide(handler).reasons == ["price_collar"]


# -- audit ----------------------------------------------------------------------------------


def _count(reason: str, strategy: str) -> float:
    value = REGISTRY.get_sample_value(
        "tickpipe_risk_decisions_total", {"reason": reason, "strategy": strategy}
    )
    return value or 0.0


def test_decisions_when_rejected_for_several_reasons_counts_each_reason() -> None:
    handler = _handler()
    handler.handle(_control(ControlAction.KILL_SWITCH_ON), CONTROL, f.T0)
    handler.handle(_control(ControlAction.PAUSE_SYMBOL, target=f.KEY), CONTROL, f.T0)
    before = _count("kill_switch", "audit"), _count("symbol_paused", "audit")

    decision = _decide(handler, strategy_id="audit")

    assert decision.reasons == ["kill_switch", "symbol_paused"]
    assert decision.client_order_id is None
    assert (_count("kill_switch", "audit"), _count("symbol_paused", "audit")) == (
        before[0] + 1,
        before[1] + 1,
    )


def test_kill_switch_when_set_writes_flag_for_operators() -> None:
    cache = MemoryCache()
    handler = _handler(cache=cache)

    handler.handle(_control(ControlAction.KILL_SWITCH_ON), CONTROL, f.T0)
    assert cache.get(kill_switch_key("paper")) == b"1"
    handler.handle(_control(ControlAction.KILL_SWITCH_OFF), CONTROL, f.T0)
    assert cache.get(kill_switch_key("paper")) == b"0"


def test_risk_service_when_built_consumes_the_quality_topic() -> None:
    from tickpipe_risk.app import SERVICE

    assert QUALITY in SERVICE.inputs
    assert QUOTES not in SERVICE.inputs  # the touch comes with each signal
