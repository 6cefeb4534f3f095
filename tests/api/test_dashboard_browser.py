"""The dashboard in real headless Chromium: log in with a token, watch fills, PnL and
signals arrive live over SSE, press the kill switch, confirm, and see the command published
and the next order rejected by a real risk handler.

The risk handler is the risk service's own (built by its composition root) and runs in
process, fed by the same in-memory control publisher the API publishes to: the browser path
(click -> API -> ControlCommand -> risk -> rejection -> SSE -> page) is exercised whole and
deterministically in seconds. The Kafka leg of control.v1 is covered on the real broker by
test_examples_kafka.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.api.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, serving
from tests.api.conftest import Api, build_api, token
from tests.api.factories import IDS, signal
from tests.brokers import unavailable
from tickpipe.clock import LiveClock
from tickpipe.messages import (
    ControlAction,
    ControlCommand,
    ExecutionReport,
    OrderRequest,
    OrderStatus,
    RiskDecision,
)
from tickpipe.service import Handler, ServiceContext
from tickpipe.settings import PlatformSettings
from tickpipe.topics import CONTROL, EXECUTIONS, SIGNALS
from tickpipe_api.auth import Role

if not CHROMIUM.exists():
    unavailable("Chromium missing: apt-get install -y chromium", module=True)

KEY = "binance:BTC/USDT"


class Pipeline:
    """Stands in for inference and execution around a real risk handler."""

    def __init__(self, api: Api) -> None:
        from tickpipe.bus.memory import MemoryBus
        from tickpipe_risk.app import SERVICE

        ctx = ServiceContext(PlatformSettings(), MemoryBus(), api.cache, LiveClock(), IDS)
        self.risk: Handler = SERVICE.build(ctx, SERVICE.settings_from())
        self.api = api
        self.decisions: list[RiskDecision] = []
        api.control.subscribe(self._control)

    def _control(self, command: ControlCommand) -> None:
        self.risk.handle(command, CONTROL, time.time_ns())

    def signal(self, probability: float, price: float) -> None:
        """Inference's output, risk's decision and, for an order, execution's fill."""
        s = signal(probability=probability, price=price)
        self.api.cache.set(f"signals:{KEY}", s.model_dump_json().encode())
        self.api.feed.on_event(s)
        for emit in self.risk.handle(s, SIGNALS, time.time_ns()):
            self.api.feed.on_event(emit.event)
            if isinstance(emit.event, RiskDecision):
                self.decisions.append(emit.event)
            if isinstance(emit.event, OrderRequest):
                self._fill(emit.event, Decimal(str(price)))

    def _fill(self, order: OrderRequest, price: Decimal) -> None:
        now = time.time_ns()
        report = ExecutionReport(
            event_id=IDS.new(),
            ts_event=now,
            ts_init=now,
            exchange=order.exchange,
            symbol=order.symbol,
            client_order_id=order.client_order_id,
            account=order.account,
            strategy_id=order.strategy_id,
            side=order.side,
            status=OrderStatus.FILLED,
            quantity=order.quantity,
            cum_qty=order.quantity,
            leaves_qty=Decimal(0),
            last_qty=order.quantity,
            last_price=price,
            fee=(order.quantity * price * Decimal("0.00075")).quantize(Decimal("0.00000001")),
        )
        self.risk.handle(report, EXECUTIONS, now)
        self.api.feed.on_event(report)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_dashboard_when_operator_confirms_kill_switch_publishes_and_risk_rejects(
    browser: Browser,
) -> None:
    api = build_api()
    pipeline = Pipeline(api)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with serving(api.app) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url)

        page.fill("#token", token("alice", Role.OPERATOR))
        page.click("#login-form button[type=submit]")
        expect(page.get_by_test_id("connection")).to_have_text("live")
        expect(page.get_by_test_id("who")).to_have_text("alice (operator)")
        expect(page.get_by_test_id("kill-state")).to_have_text("released")

        # Data changes while the page is open: a long, then a short, each filled.
        pipeline.signal(probability=0.9, price=60_000.0)
        expect(page.get_by_test_id("fills").locator("tr")).to_have_count(1)
        pipeline.signal(probability=0.1, price=60_150.0)
        expect(page.get_by_test_id("fills").locator("tr")).to_have_count(2)
        expect(page.get_by_test_id("positions").locator("tr")).to_have_count(1)
        expect(page.get_by_test_id("signals")).to_contain_text("short")
        expect(page.get_by_test_id("pnl-net")).not_to_have_text("–")
        page.screenshot(path=str(ARTIFACTS / "01-live.png"), full_page=True)

        # Cancel first: nothing may be published.
        page.get_by_test_id("kill-button").click()
        expect(page.get_by_test_id("confirm-dialog")).to_be_visible()
        page.get_by_test_id("confirm-cancel").click()
        expect(page.get_by_test_id("confirm-dialog")).to_be_hidden()
        assert api.control.published == []

        page.get_by_test_id("kill-button").click()
        page.screenshot(path=str(ARTIFACTS / "02-confirm.png"))
        page.get_by_test_id("confirm-ok").click()
        expect(page.get_by_test_id("control-result")).to_contain_text("kill_switch_on sent")
        expect(page.get_by_test_id("kill-state")).to_contain_text("ENGAGED")

        [command] = api.control.published
        assert (command.action, command.target) == (ControlAction.KILL_SWITCH_ON, "*")
        assert command.issued_by == "alice"
        audit = page.request.get(
            f"{url}/audit", headers={"Authorization": f"Bearer {token('alice')}"}
        ).json()
        assert audit[0]["command"]["event_id"] == command.event_id

        # The next signal that would trade is refused by risk, and the page shows why.
        pipeline.signal(probability=0.95, price=60_100.0)
        assert pipeline.decisions[-1].approved is False
        assert "kill_switch" in pipeline.decisions[-1].reasons
        expect(page.locator('[data-reason="kill_switch"]')).to_have_text("kill_switch: 1")
        expect(page.get_by_test_id("fills").locator("tr")).to_have_count(2)
        page.screenshot(path=str(ARTIFACTS / "03-killed.png"), full_page=True)
        page.close()
    assert errors == []


def test_dashboard_when_viewer_presses_kill_switch_is_refused(
    browser: Browser,
) -> None:
    api = build_api()
    with serving(api.app) as url:
        page = browser.new_page()
        page.goto(url)
        page.fill("#token", token("victor", Role.VIEWER))
        page.click("#login-form button[type=submit]")
        expect(page.get_by_test_id("connection")).to_have_text("live")
        page.get_by_test_id("kill-button").click()
        page.get_by_test_id("confirm-ok").click()
        expect(page.get_by_test_id("control-result")).to_contain_text("refused: 403")
        page.screenshot(path=str(ARTIFACTS / "04-viewer-refused.png"))
        page.close()
    assert api.control.published == []


def test_dashboard_when_token_invalid_stays_on_login(browser: Browser) -> None:
    api = build_api()
    with serving(api.app) as url:
        page = browser.new_page()
        page.goto(url)
        page.fill("#token", token("x")[:-3] + "abc")
        page.click("#login-form button[type=submit]")
        expect(page.locator("#login-error")).to_have_text("That token was not accepted.")
        expect(page.get_by_test_id("login")).to_be_visible()
        page.close()
