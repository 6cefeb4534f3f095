"""Kafka is the source of truth: risk and execution rebuilt from the topics alone (an empty
cache, no snapshot) hold the state of the instances that ran, to the decimal."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import orjson
import pytest
from opentelemetry.trace import NoOpTracer

from tests.unit import factories as f
from tickpipe.app import load_specs
from tickpipe.backtest.config import BacktestConfig
from tickpipe.bus.memory import MemoryBus
from tickpipe.cache.memory import MemoryCache
from tickpipe.embedded import EmbeddedPipeline, simulated_context
from tickpipe.messages import ControlAction, OrderStatus, OrderType
from tickpipe.runner import encode_emit
from tickpipe.service import Emit
from tickpipe.topics import CONTROL, EXECUTIONS, ORDERS
from tickpipe_execution.domain.paper import PaperExchange
from tickpipe_execution.handlers import ExecutionHandler
from tickpipe_risk.handlers import RiskHandler

LIMIT = 12_000


def _pipeline(risk: dict[str, Any]) -> EmbeddedPipeline:
    config = BacktestConfig(data=(f.SAMPLE,)).with_settings(
        {"ingest.limit": LIMIT, **{f"risk.{k}": v for k, v in risk.items()}}
    )
    specs = load_specs()
    pipeline = EmbeddedPipeline(
        list(specs.values()),
        tracer_factory=lambda _: NoOpTracer(),
        service_settings=config.service_settings(specs),
    )
    pipeline.run()
    return pipeline


def _fresh(name: str, bus: MemoryBus, settings: Any) -> Any:
    """A new instance of `name` started over `bus` with an empty cache and no snapshot."""
    spec = load_specs()[name]
    ctx = replace(simulated_context(), bus=bus, cache=MemoryCache())
    handler = spec.build(ctx, settings)
    handler.on_start(ctx)
    return handler


@pytest.fixture(scope="module", params=["market", "limit"])
def ran(request: pytest.FixtureRequest) -> tuple[EmbeddedPipeline, dict[str, Any]]:
    # Limit orders at the mid rest at the paper exchange until a print trades through them:
    # open orders to rebuild.
    risk = {"order_type": request.param, "limit_offset_bps": 0}
    pipeline = _pipeline(risk)
    # Another account's order far below the market: it rests at the paper exchange.
    resting = f.order(
        client_order_id="tp-resting",
        account="other",
        order_type=OrderType.LIMIT,
        limit_price=Decimal(1000),
        ts_init=f.T0,
    )
    pipeline.bus.producer("test").send(encode_emit(Emit(ORDERS, resting), ()))
    pipeline.pump()
    settings = BacktestConfig(data=(f.SAMPLE,)).with_settings(
        {f"risk.{k}": v for k, v in risk.items()}
    )
    return pipeline, settings.service_settings(load_specs())


def test_risk_when_rebuilt_from_topics_holds_the_same_books_and_open_orders(
    ran: tuple[EmbeddedPipeline, dict[str, Any]],
) -> None:
    pipeline, settings = ran
    before = pipeline.handlers["risk"]
    assert isinstance(before, RiskHandler)
    assert before.positions, "the run traded"

    after = _fresh("risk", pipeline.bus, settings["risk"])

    assert {k: p.as_dict(None) for k, p in after.positions.items()} == {
        k: p.as_dict(None) for k, p in before.positions.items()
    }
    st_before, st_after = before.engine.state, after.engine.state
    # Marked at the same prices (marks are market data: the next signal brings them).
    assert st_after.books.pnl(st_before.mark) == st_before.books.pnl(st_before.mark)
    assert {k: (o.leaves, o.key) for k, o in st_after.open_orders.by_id.items()} == {
        k: (o.leaves, o.key) for k, o in st_before.open_orders.by_id.items()
    }


def test_execution_when_rebuilt_from_topics_holds_the_same_orders_and_resting_book(
    ran: tuple[EmbeddedPipeline, dict[str, Any]],
) -> None:
    pipeline, settings = ran
    before = pipeline.handlers["execution"]
    assert isinstance(before, ExecutionHandler)

    after = _fresh("execution", pipeline.bus, settings["execution"])

    def view(h: ExecutionHandler) -> dict[str, Any]:
        return {c: (o.status, o.cum_qty, o.fees, o.trade_ids) for c, o in h.orders.items()}

    assert view(after) == view(before)
    assert "tp-resting" in {o.client_order_id for o in before._exchange.open_orders()}
    assert isinstance(before._exchange, PaperExchange)
    assert isinstance(after._exchange, PaperExchange)
    assert {(o.client_order_id, o.leaves) for o in after._exchange.open_orders()} == {
        (o.client_order_id, o.leaves) for o in before._exchange.open_orders()
    }


def test_kill_switch_when_cache_emptied_is_rebuilt_from_control_for_risk_and_execution(
    ran: tuple[EmbeddedPipeline, dict[str, Any]],
) -> None:
    pipeline, settings = ran
    bus = pipeline.bus
    on = f.control(ControlAction.KILL_SWITCH_ON, event_id="01KILL")
    bus.producer("api").send(encode_emit(Emit(CONTROL, on, key=on.compaction_key), ()))
    try:
        risk = _fresh("risk", bus, settings["risk"])
        execution = _fresh("execution", bus, settings["execution"])

        assert risk.kill_switch and execution.kill_switch
        decision = risk.handle(f.signal(event_id="01AFTER"), "signals.v1", f.T0)[0].event
        assert decision.reasons[:1] == ["kill_switch"]
    finally:
        off = f.control(ControlAction.KILL_SWITCH_OFF, event_id="01UNKILL")
        bus.producer("api").send(encode_emit(Emit(CONTROL, off, key=off.compaction_key), ()))
    assert not _fresh("risk", bus, settings["risk"]).kill_switch


def test_risk_open_orders_when_rebuilt_are_the_orders_without_a_final_report() -> None:
    handler = _fresh("risk", MemoryBus(), load_specs()["risk"].settings_from())
    q = Decimal("0.5")
    orders = [f.order(client_order_id=c, event_id=f"01{c}") for c in ("A", "B", "C", "D")]
    reports = [
        f.execution(client_order_id="A", trade_id="tA"),  # filled
        f.execution(
            client_order_id="B",
            trade_id="tB",
            status=OrderStatus.PARTIALLY_FILLED,
            last_qty=Decimal("0.2"),
            cum_qty=Decimal("0.2"),
            leaves_qty=Decimal("0.3"),
        ),
        f.execution(
            client_order_id="C",
            status=OrderStatus.CANCELLED,
            last_qty=Decimal(0),
            cum_qty=Decimal(0),
            leaves_qty=q,
            last_price=None,
            fee=Decimal(0),
        ),
    ]  # D: no report yet

    handler.rebuild({ORDERS: orders, EXECUTIONS: reports}, f.T0)

    open_orders = handler.engine.state.open_orders.by_id
    assert {c: o.leaves for c, o in open_orders.items()} == {"B": Decimal("0.3"), "D": q}
    assert handler.positions[f.KEY].qty == Decimal("0.7")
    assert handler.engine.state.duplicates.check("D", ("", "", "", ""), f.T0, 0) == [
        "duplicate_order"
    ]  # a signal delivered again maps to an id already issued: refused, never sent twice


def test_risk_when_a_signal_is_delivered_again_decides_it_once() -> None:
    handler = _fresh("risk", MemoryBus(), load_specs()["risk"].settings_from())
    flat = f.signal(event_id="01FLAT", direction=0, score=0.0)
    handler.handle(flat, "signals.v1", f.T0)  # the touch
    signal = f.signal(event_id="01TWICE")

    first = handler.handle(signal, "signals.v1", f.T0)
    again = handler.handle(signal, "signals.v1", f.T0)

    assert [e.topic for e in first] == ["risk.decisions.v1", ORDERS]
    assert again == ()
    restored = _fresh("risk", MemoryBus(), load_specs()["risk"].settings_from())
    restored.restore(handler.snapshot())
    assert restored.handle(signal, "signals.v1", f.T0) == ()  # the snapshot remembers


def test_risk_snapshot_when_of_version_one_is_migrated_and_restored() -> None:
    spec = load_specs()["risk"]
    handler = _fresh("risk", MemoryBus(), spec.settings_from())
    state = orjson.loads(handler.snapshot())
    del state["signals"]  # what version 1 wrote
    v1 = orjson.dumps(state)

    migrated = spec.snapshots.upgrade("risk", 1, v1)

    restored = _fresh("risk", MemoryBus(), spec.settings_from())
    restored.restore(migrated)
    assert spec.snapshots.version == 2
    assert orjson.loads(migrated)["signals"] == []
