"""The kill switch across services: risk's own cancel_all, as it puts it on control.v1,
cancels execution's resting orders for that account."""

from __future__ import annotations

from tests.fixtures.execution.scenarios import handler as execution_handler
from tests.fixtures.execution.scenarios import limit, quote, run
from tests.unit import factories as f
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import ControlAction, ControlCommand, OrderStatus
from tickpipe.topics import CONTROL, QUOTES
from tickpipe_risk.domain.checks import Limits
from tickpipe_risk.domain.sizing import SizingConfig
from tickpipe_risk.handlers import RiskHandler


def test_kill_switch_when_risk_emits_cancel_all_then_execution_cancels_the_accounts_orders() -> (
    None
):
    risk = RiskHandler(
        EventIds(SimClock(f.T0), seed=1), MemoryCache(), "paper", SizingConfig(), Limits(), {}
    )
    risk.handle(f.quote(), QUOTES, f.T0)
    execution = execution_handler()
    run(execution, [quote(f.T0, 100.0, 101.0), limit("b1", f.T0, "buy", "1", "99")])

    (emit,) = risk.handle(f.control(ControlAction.KILL_SWITCH_ON), CONTROL, f.T0 + 1)
    assert emit.topic == CONTROL and isinstance(emit.event, ControlCommand)
    reports = run(execution, [emit.event])

    assert [(r.client_order_id, r.status) for r in reports] == [
        ("b1", OrderStatus.PENDING_CANCEL),
        ("b1", OrderStatus.CANCELLED),
    ]
    assert execution.open_orders() == []
