"""Risk and execution state survives snapshot/restore: a restored handler continues exactly
as the original would have."""

from __future__ import annotations

from decimal import Decimal

from tests.unit import factories as f
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import ExecutionReport, OrderRequest, OrderStatus
from tickpipe.topics import EXECUTIONS, ORDERS, QUOTES, SIGNALS
from tickpipe_execution.domain.paper import PaperExchange
from tickpipe_execution.handlers import ExecutionHandler
from tickpipe_risk.domain.checks import Limits
from tickpipe_risk.domain.sizing import SizingConfig
from tickpipe_risk.handlers import RiskHandler

S = f.SECOND


def _risk() -> RiskHandler:
    return RiskHandler(
        EventIds(SimClock(), seed=3), MemoryCache(), "paper", SizingConfig(), Limits(), {}
    )


def _execution() -> ExecutionHandler:
    return ExecutionHandler(EventIds(SimClock(), seed=4), PaperExchange())


def test_risk_handler_when_restored_then_positions_and_next_decisions_match() -> None:
    original, execution = _risk(), _execution()
    for h in (original, execution):
        h.handle(f.quote(bid=60_000.0, ask=60_001.0), QUOTES, f.T0)
    order = original.handle(f.signal(), SIGNALS, f.T0 + S)[-1].event
    assert isinstance(order, OrderRequest)
    for emit in execution.handle(order, ORDERS, f.T0 + S):
        original.handle(emit.event, EXECUTIONS, f.T0 + S)
    restored = _risk()
    restored.restore(original.snapshot())

    assert restored.positions == original.positions
    assert restored.pnl() == original.pnl()
    assert restored.positions[f.KEY].qty != Decimal(0)
    nxt = f.signal(event_id="01SIGNAL2", direction=-1, probability=0.1, score=-0.8)
    a = original.handle(nxt, SIGNALS, f.T0 + 2 * S)
    b = restored.handle(nxt, SIGNALS, f.T0 + 2 * S)
    assert [e.event.model_dump(exclude={"event_id"}) for e in a] == [
        e.event.model_dump(exclude={"event_id"}) for e in b
    ]


def test_execution_handler_when_restored_then_a_seen_order_is_not_placed_again() -> None:
    original = _execution()
    original.handle(f.quote(bid=60_000.0, ask=60_001.0), QUOTES, f.T0)
    order = f.order()
    reports = original.handle(order, ORDERS, f.T0)
    assert [r.event.status for r in reports if isinstance(r.event, ExecutionReport)] == [
        OrderStatus.ACKNOWLEDGED,
        OrderStatus.FILLED,
    ]
    restored = _execution()
    restored.restore(original.snapshot())

    assert restored.handle(order, ORDERS, f.T0 + S) == ()
    again = restored.handle(f.order(client_order_id="tp-other", event_id="01ORDER2"), ORDERS, f.T0)
    assert [r.event.status for r in again if isinstance(r.event, ExecutionReport)][-1] == (
        OrderStatus.FILLED
    )  # the restored touch still prices new orders
