"""Signals -> sized, checked orders; executions -> books; quality and control -> halts.

The handler turns messages into engine calls and engine results into messages; the rules
live in `domain/`.

Two clocks. Market time (the latest `ts_event` of a signal or an execution report: the
paper exchange stamps its reports with its market time, a live venue with the exchange's)
runs the controls that count over time: throttles, duplicate windows, the breaker, loss
windows. Processing time (`now_ns`) judges staleness: a signal or price that waited too
long in the pipeline. The reference price is the touch the signal carries (the latest
quote when its bar closed, in ingest's arrival order), not whichever quote this consumer
happened to read last: so a Kafka deployment and a backtest on the same data make the
same decisions.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping, Sequence
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

import orjson

from tickpipe.bus.history import events_by_topic
from tickpipe.cache.base import Cache
from tickpipe.ids import EventIds
from tickpipe.messages import (
    ControlAction,
    ControlCommand,
    DataQuality,
    Event,
    ExecutionReport,
    FeedStatus,
    OrderRequest,
    OrderStatus,
    OrderType,
    RiskDecision,
    Signal,
)
from tickpipe.service import Emit, Rejected, ServiceContext
from tickpipe.telemetry.metrics import DUPLICATES, ERRORS, child
from tickpipe.topics import CONTROL, EXECUTIONS, ORDERS, RISK_DECISIONS, SIGNALS
from tickpipe_risk.domain.books import Fill
from tickpipe_risk.domain.checks import Intent
from tickpipe_risk.domain.controls.circuit import BreakerConfig, State
from tickpipe_risk.domain.controls.collar import BPS
from tickpipe_risk.domain.controls.correlation import CorrelationModel
from tickpipe_risk.domain.engine import RiskEngine
from tickpipe_risk.domain.limits import Limits, UnknownLimit
from tickpipe_risk.domain.market import DEFAULT_RULES, MarketRules
from tickpipe_risk.domain.orders import OpenOrder
from tickpipe_risk.domain.positions import Position
from tickpipe_risk.domain.sizing import SizingConfig, order_qty, target_qty, tradable
from tickpipe_risk.metrics import (
    CIRCUIT,
    DECISIONS,
    DUPLICATE_FILLS,
    HALTS,
    KILL_SWITCH,
    PNL,
    POSITION,
    REBUILT,
)
from tickpipe_risk.store import RiskStore, pnl_dict

ENDED = {OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.EXPIRED}
CIRCUIT_LEVEL = {State.CLOSED: 0, State.HALF_OPEN: 1, State.OPEN: 2}


def client_order_id(strategy_id: str, signal_event_id: str) -> str:
    """Deterministic per signal: a replayed signal maps to the same exchange order id."""
    return "tp" + hashlib.sha256(f"{strategy_id}|{signal_event_id}".encode()).hexdigest()[:30]


class RiskHandler:
    def __init__(
        self,
        ids: EventIds,
        cache: Cache,
        account: str,
        sizing: SizingConfig,
        limits: Limits,
        rules: dict[str, MarketRules],
        *,
        correlation: CorrelationModel | None = None,
        breaker: BreakerConfig | None = None,
        order_type: OrderType = OrderType.MARKET,
        limit_offset_bps: Decimal = Decimal(0),
    ) -> None:
        self._ids = ids
        self._store = RiskStore(cache, account)
        self._account = account
        self._sizing = sizing
        self._rules = rules
        self._order_type = order_type
        self._limit_offset = limit_offset_bps / BPS
        self.engine = RiskEngine(limits, correlation, breaker)
        self._circuit_levels: dict[str, int] = {}  # as last exported, per key
        self._restored = False
        self._halt_gauges()
        self.market_ns = 0  # the latest signal's or report's ts_event (see the module doc)

    def on_start(self, ctx: ServiceContext) -> Sequence[Emit]:
        """State that matters is rebuilt from Kafka, the source of truth (the cache may have
        come back empty): operator state from `control.v1` read from the beginning, always;
        positions, PnL and open orders from `orders.v1` and `executions.v1` when no snapshot
        was restored. Records consumed again afterwards change nothing twice (fills are
        booked once by fill id, commands set state)."""
        topics = (CONTROL,) if self._restored else (CONTROL, RISK_DECISIONS, ORDERS, EXECUTIONS)
        history = events_by_topic(ctx.bus, topics, f"risk-rebuild-{self._account}", ctx.stop)
        self.rebuild(history, ctx.clock.now_ns())
        return ()

    def rebuild(self, history: Mapping[str, Sequence[Event]], now_ns: int) -> None:
        """Applies the topics' history as the handler would have, publishing nothing."""
        for c in history.get(CONTROL, ()):
            if isinstance(c, ControlCommand):
                with contextlib.suppress(Rejected):  # refused then, refused now
                    self._on_control(c, now_ns)
        for d in history.get(RISK_DECISIONS, ()):
            if isinstance(d, RiskDecision) and d.account == self._account and d.causation_id:
                self.engine.state.signals.add(d.causation_id)  # decided before: not again
        for o in history.get(ORDERS, ()):
            if isinstance(o, OrderRequest) and o.account == self._account:
                # A signal delivered again (same id, same client order id) stays refused.
                self.engine.state.duplicates.issued(o.client_order_id)
                sign = Decimal(1) if o.side == "buy" else Decimal(-1)
                price = o.limit_price if o.limit_price is not None else o.reference_price
                self.engine.state.open_orders.add(
                    o.client_order_id,
                    OpenOrder(o.strategy_id, o.key, sign * o.quantity, price, o.ts_init),
                )
        for r in history.get(EXECUTIONS, ()):
            if isinstance(r, ExecutionReport):
                self._on_execution(r, r.ts_init)
        self._halt_gauges()
        books = self.engine.state.books.account
        REBUILT.labels(self._account).set(len(books))

    # -- views ----------------------------------------------------------------------------

    @property
    def positions(self) -> dict[str, Position]:
        """The account's positions by `exchange:symbol`."""
        return self.engine.state.books.account

    @property
    def kill_switch(self) -> bool:
        return self.engine.state.halts.kill_switch

    def pnl(self, strategy_id: str | None = None) -> dict[str, str]:
        return pnl_dict(self.engine.state.books.pnl(self.engine.state.mark, strategy_id))

    # -- events ---------------------------------------------------------------------------

    def handle(self, event: Event, topic: str, now_ns: int) -> Sequence[Emit]:
        if isinstance(event, Signal):
            return self._on_signal(event, now_ns)
        if isinstance(event, ExecutionReport):
            self._on_execution(event, now_ns)
            return ()
        if isinstance(event, DataQuality):
            healthy = event.status is FeedStatus.HEALTHY
            self.engine.feed(event.key, event.stream, None if healthy else str(event.issue))
            halted = event.key in self.engine.state.halts.degraded
            HALTS.labels(event.key, "data_quality").set(int(halted))
            return ()
        if isinstance(event, ControlCommand):
            return self._on_control(event, now_ns)
        return ()

    def _rules_for(self, symbol: str) -> MarketRules:
        return self._rules.get(symbol.replace("/", ""), DEFAULT_RULES)

    def _on_signal(self, s: Signal, now_ns: int) -> Sequence[Emit]:
        engine, key = self.engine, s.key
        if s.event_id in engine.state.signals:
            # Delivered again (inference is at least once; its ids are derived): decided
            # once, the first copy wins.
            DUPLICATES.labels("risk", SIGNALS).inc()
            return ()
        engine.state.signals.add(s.event_id)
        self.market_ns = market_ns = max(self.market_ns, s.ts_event)
        if not self._store.available():
            # Fail closed: books that cannot be published or snapshotted must not grow.
            return (self._decision(s, now_ns, ["state_unavailable"]),)
        if s.bid is not None and s.ask is not None:
            # Fresh as of the signal's arrival: a dead quote feed is data quality's to report.
            mid = (Decimal(str(s.bid)) + Decimal(str(s.ask))) / 2
            engine.quote(key, mid, s.ts_init)
        engine.volatility(key, s.volatility, market_ns)
        ref = engine.state.refs.get(key)
        price = ref.price if ref else Decimal(str(s.price))
        rules = self._rules_for(s.symbol)
        qty = self._size(s, key, price, rules)
        if qty == 0:
            return ()  # at target already (within one lot / the exchange minimums)
        side = "buy" if qty > 0 else "sell"
        limit_price = self._limit_price(side, price, rules) if ref else None
        if limit_price is not None:
            # Sized again at the price it commits, so the per-order limits hold at that price.
            qty = self._size(s, key, limit_price, rules)
            if qty == 0 or (qty > 0) != (side == "buy"):
                return ()
        coid = client_order_id(s.strategy_id, s.event_id)
        intent = Intent(s.strategy_id, key, qty, limit_price, s.ts_init, coid)
        reasons = engine.decide(intent, now_ns, market_ns)
        self._circuit_gauge(key)
        ref_price = rules.round_price(price)
        decision = self._decision(
            s,
            now_ns,
            reasons,
            client_order_id=None if reasons else coid,
            side=side,
            quantity=abs(qty),
            reference_price=ref_price,
        )
        if reasons:
            return (decision,)
        engine.accept(intent, limit_price if limit_price is not None else price, now_ns, market_ns)
        order = OrderRequest(
            event_id=self._ids.new(),
            ts_event=s.ts_event,
            ts_init=now_ns,
            causation_id=s.event_id,
            exchange=s.exchange,
            symbol=s.symbol,
            client_order_id=coid,
            account=self._account,
            strategy_id=s.strategy_id,
            side=side,
            order_type=self._order_type,
            quantity=abs(qty),
            limit_price=limit_price,
            reference_price=ref_price,
            market_seq=s.market_seq,
        )
        return (decision, Emit(ORDERS, order))

    def _decision(self, s: Signal, now_ns: int, reasons: list[str], **sized: Any) -> Emit:
        """The audited decision on `s` (approved when no reasons), counted by reason;
        `sized`: the order's side, quantity, price and id once it was sized."""
        for reason in reasons or ["approved"]:
            child(DECISIONS, reason, s.strategy_id).inc()
        decision = RiskDecision(
            event_id=self._ids.new(),
            ts_event=s.ts_event,
            ts_init=now_ns,
            causation_id=s.event_id,
            exchange=s.exchange,
            symbol=s.symbol,
            strategy_id=s.strategy_id,
            account=self._account,
            approved=not reasons,
            reasons=reasons,
            **sized,
        )
        return Emit(RISK_DECISIONS, decision)

    def _size(self, s: Signal, key: str, price: Decimal, rules: MarketRules) -> Decimal:
        st = self.engine.state
        limits = st.strategy_limits(s.strategy_id)
        cap, account_cap = limits.max_position_notional, st.limits.account.max_position_notional
        if cap is None or (account_cap is not None and account_cap < cap):
            cap = account_cap  # the tighter of the two; None when both are off
        target = target_qty(s.direction, s.score, price, s.volatility, self._sizing, cap)
        exposure = st.exposure(key, s.strategy_id)
        step = order_qty(target, exposure, price, limits.max_order_notional, limits.max_order_qty)
        return tradable(step, price, rules)

    def _limit_price(self, side: str, reference: Decimal, rules: MarketRules) -> Decimal | None:
        if self._order_type is OrderType.MARKET:
            return None
        # Marketable by the offset; rounded toward the reference so it stays inside the collar.
        if side == "buy":
            return rules.round_price(reference * (1 + self._limit_offset), ROUND_DOWN)
        return rules.round_price(reference * (1 - self._limit_offset), ROUND_UP)

    def _on_execution(self, r: ExecutionReport, now_ns: int) -> None:
        if r.account != self._account:
            return  # another account's ledger shares the topic
        engine = self.engine
        self.market_ns = max(self.market_ns, r.ts_event)
        engine.answered(
            r.client_order_id, r.status is OrderStatus.REJECTED, r.ts_init, self.market_ns
        )
        if r.is_fill and r.last_price is None:
            ERRORS.labels("risk", "fill_without_price").inc()
        elif r.is_fill and r.last_price is not None:
            sign = Decimal(1) if r.side == "buy" else Decimal(-1)
            fill = Fill(
                client_order_id=r.client_order_id,
                fill_id=r.trade_id or f"cum:{r.cum_qty}",
                strategy_id=r.strategy_id,
                key=r.key,
                signed_qty=sign * r.last_qty,
                price=r.last_price,
                fee=r.fee,
                ts=r.ts_event,
            )
            result = engine.fill(fill, self.market_ns)
            if not result.booked:
                DUPLICATE_FILLS.inc()
            else:
                pnl = self._store.publish_books(engine.state, r.key, r.strategy_id)
                child(POSITION, r.key).set(float(engine.state.books.account[r.key].qty))
                child(PNL, self._account).set(float(pnl["net"]))
            if result.disabled:
                HALTS.labels(r.key, "fill_throttle").set(1)
                self._store.save_controls(engine.state)
        if r.status in ENDED:
            engine.closed(r.client_order_id)
        self._circuit_gauge(r.key)

    def _on_control(self, c: ControlCommand, now_ns: int) -> Sequence[Emit]:
        action, engine = c.action, self.engine
        mine = c.target in ("*", self._account)
        if action in (ControlAction.KILL_SWITCH_ON, ControlAction.KILL_SWITCH_OFF) and mine:
            on = action is ControlAction.KILL_SWITCH_ON
            engine.set_kill_switch(on)
            self._store.save_kill_switch(on)
            KILL_SWITCH.labels(self._account).set(int(on))
            return (self._cancel_all(c, now_ns),) if on else ()
        if action in (ControlAction.PAUSE_SYMBOL, ControlAction.RESUME_SYMBOL):
            if ":" not in c.target:
                raise Rejected("invalid_target", f"{action} needs an `exchange:symbol` target")
            if action is ControlAction.PAUSE_SYMBOL:
                engine.pause(c.target)
            else:
                engine.resume(c.target, c.args.get("strategy"))
                HALTS.labels(c.target, "fill_throttle").set(0)
            HALTS.labels(c.target, "paused").set(int(action is ControlAction.PAUSE_SYMBOL))
            self._store.save_controls(engine.state)
        elif action is ControlAction.SET_LIMIT and mine:
            if "name" not in c.args or "value" not in c.args:
                raise Rejected("invalid_limit", "set_limit needs args `name` and `value`")
            try:
                engine.set_limit(c.args["name"], c.args["value"], c.args.get("strategy"))
            except UnknownLimit as exc:
                raise Rejected(exc.reason, exc.detail) from None
            self._store.save_controls(engine.state)
        return ()  # cancel_all and reload_model are for other services

    def _cancel_all(self, c: ControlCommand, now_ns: int) -> Emit:
        cmd = ControlCommand(
            event_id=self._ids.new(),
            ts_event=now_ns,
            ts_init=now_ns,
            causation_id=c.event_id,
            action=ControlAction.CANCEL_ALL,
            target=self._account,
            issued_by="risk",
            reason=f"kill switch: {c.reason}" if c.reason else "kill switch",
        )
        # Not keyed by target: on the compacted topic it must not replace an operator's
        # command for the same target.
        return Emit(CONTROL, cmd, key=cmd.compaction_key)

    # -- state ----------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        return orjson.dumps({**self.engine.dump(), "market_ns": self.market_ns})

    def restore(self, data: bytes) -> None:
        state = orjson.loads(data)
        self.market_ns = int(state.pop("market_ns", 0))
        self.engine.load(state)
        self._restored = True
        self._halt_gauges()

    def _halt_gauges(self) -> None:
        halts = self.engine.state.halts
        KILL_SWITCH.labels(self._account).set(int(halts.kill_switch))
        for key in halts.paused:
            HALTS.labels(key, "paused").set(1)
        for key in halts.degraded:
            HALTS.labels(key, "data_quality").set(1)
        for _, key in self.engine.state.fill_throttle.disabled:
            HALTS.labels(key, "fill_throttle").set(1)

    def _circuit_gauge(self, key: str) -> None:
        # Read after every signal and report: exported only when it changes.
        level = CIRCUIT_LEVEL[self.engine.state.breaker(key).state]
        if self._circuit_levels.get(key) != level:
            self._circuit_levels[key] = level
            child(CIRCUIT, key).set(level)
