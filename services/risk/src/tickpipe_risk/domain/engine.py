"""The risk engine: state, the events that change it, and the checks that read it."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tickpipe_risk.domain.books import Fill
from tickpipe_risk.domain.checks import Intent, PreTradeChecks
from tickpipe_risk.domain.controls.circuit import BreakerConfig
from tickpipe_risk.domain.controls.correlation import CorrelationModel
from tickpipe_risk.domain.limits import ACCOUNT_NAMES, Limits
from tickpipe_risk.domain.orders import OpenOrder
from tickpipe_risk.domain.state import Reference, RiskState


@dataclass(frozen=True, slots=True)
class FillResult:
    booked: bool  # False: a duplicate, ignored
    disabled: bool  # this fill tripped the repeated-execution throttle


class RiskEngine:
    def __init__(
        self,
        limits: Limits,
        correlation: CorrelationModel | None = None,
        breaker: BreakerConfig | None = None,
    ) -> None:
        self.state = RiskState(limits)
        self.checks = PreTradeChecks(correlation or CorrelationModel(), breaker or BreakerConfig())

    # -- market data ----------------------------------------------------------------------

    def quote(self, key: str, price: Decimal, ts: int) -> None:
        self.state.refs[key] = Reference(price, ts)

    def feed(self, key: str, stream: str, issue: str | None) -> None:
        self.state.halts.feed(key, stream, issue)

    def volatility(self, key: str, vol: float | None, now_ns: int) -> None:
        self.state.breaker(key).volatility(vol, now_ns, self.checks.breaker)

    # -- orders ---------------------------------------------------------------------------

    def decide(self, o: Intent, now_ns: int, market_ns: int | None = None) -> list[str]:
        """Every failing reason code for `o` (empty: approve). Nothing about `o` is recorded
        until `accept`; equity is observed and the breaker's clock advances.

        `now_ns` (processing time) judges staleness; `market_ns` (market time, default
        `now_ns`) runs the windows: throttles, duplicates, breaker, loss."""
        market = now_ns if market_ns is None else market_ns
        self._observe(o.strategy_id, market)
        return self.checks.run(o, self.state, now_ns, market)

    def accept(self, o: Intent, price: Decimal, now_ns: int, market_ns: int | None = None) -> None:
        """Records an approved order: it is open, counted by throttles, a probe if half-open.
        Its `now_ns` is the start of its response time (see `answered`)."""
        market = now_ns if market_ns is None else market_ns
        st = self.state
        st.open_orders.add(o.client_order_id, OpenOrder(o.strategy_id, o.key, o.qty, price, now_ns))
        st.order_throttle.record(o.key, market)
        st.duplicates.record(o.client_order_id, o.fingerprint, market)
        st.breaker(o.key).sent()

    def answered(self, client_order_id: str, failed: bool, ts: int, market_ns: int) -> None:
        """Execution reported on an order. Its first answer is an outcome for the breaker:
        failed when rejected or slower than the breaker's limit (order to report, both in
        processing time), recorded at `market_ns`."""
        o = self.state.open_orders.get(client_order_id)
        if o is None or o.answered:
            return
        o.answered = True
        slow = ts - o.ts > self.checks.breaker.slow_ns
        self.state.breaker(o.key).outcome(failed or slow, market_ns, self.checks.breaker)

    def fill(self, f: Fill, now_ns: int) -> FillResult:
        st = self.state
        if not st.books.apply(f):
            return FillResult(booked=False, disabled=False)
        st.open_orders.filled(f.client_order_id, abs(f.signed_qty))
        g = st.limits.guards
        tripped = st.fill_throttle.record(
            f.strategy_id, f.key, f.ts, g.fill_throttle_count, g.fill_throttle_window_ns
        )
        self._observe(f.strategy_id, now_ns)
        return FillResult(booked=True, disabled=tripped)

    def closed(self, client_order_id: str) -> None:
        """The order ended (cancelled, rejected, expired): what never filled is released."""
        self.state.open_orders.close(client_order_id)

    def _observe(self, strategy_id: str, now_ns: int) -> None:
        st = self.state
        sl, al = st.strategy_limits(strategy_id), st.limits.account
        st.loss_guard(strategy_id).observe(
            st.equity(strategy_id), now_ns, sl.max_daily_loss, sl.max_drawdown
        )
        st.account_loss.observe(st.equity(), now_ns, al.max_daily_loss, al.max_drawdown)

    # -- operator -------------------------------------------------------------------------

    def set_kill_switch(self, on: bool) -> None:
        self.state.halts.kill_switch = on

    def pause(self, key: str) -> None:
        self.state.halts.paused.add(key)

    def resume(self, key: str, strategy_id: str | None = None) -> None:
        """Lifts an operator pause and re-enables trading the throttle disabled."""
        self.state.halts.paused.discard(key)
        self.state.fill_throttle.enable(key, strategy_id)

    def set_limit(self, name: str, value: str, strategy_id: str | None = None) -> None:
        """Raises `UnknownLimit` for an unknown name or a bad value. Setting a loss limit
        again re-arms it (see `controls.loss`)."""
        st = self.state
        st.set_limit(name, value, strategy_id)
        base = ACCOUNT_NAMES.get(name, name)
        guards = (
            [st.account_loss]
            if name in ACCOUNT_NAMES
            else [st.loss_guard(strategy_id)]
            if strategy_id is not None
            else list(st.loss.values())
        )
        for guard in guards:
            if base == "max_daily_loss":
                guard.rearm_daily()
            elif base == "max_drawdown":
                guard.rearm_drawdown()

    # -- snapshot -------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        return self.state.dump()

    def load(self, d: Any) -> None:
        self.state.load(d)
