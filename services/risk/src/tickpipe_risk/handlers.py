"""Signals -> sized, checked orders; executions -> positions and PnL; control -> kill switch."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import orjson

from tickpipe.cache.base import Cache
from tickpipe.ids import EventIds
from tickpipe.messages import (
    ControlAction,
    ControlCommand,
    Event,
    ExecutionReport,
    OrderRequest,
    OrderStatus,
    QuoteTick,
    RiskDecision,
    Signal,
)
from tickpipe.service import Emit
from tickpipe.telemetry.metrics import ERRORS
from tickpipe.topics import ORDERS, RISK_DECISIONS
from tickpipe_risk.domain.checks import Limits, OrderCheck, check_order
from tickpipe_risk.domain.market import DEFAULT_RULES, MarketRules
from tickpipe_risk.domain.positions import Position, fmt
from tickpipe_risk.domain.sizing import SizingConfig, order_qty, target_qty
from tickpipe_risk.metrics import DECISIONS, PNL, POSITION

KILL_SWITCH_KEY = "risk:kill_switch"
TERMINAL = {OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.EXPIRED}


def client_order_id(strategy_id: str, signal_event_id: str) -> str:
    """Deterministic per signal: a replayed signal maps to the same exchange order id."""
    return "tp" + hashlib.sha256(f"{strategy_id}|{signal_event_id}".encode()).hexdigest()[:30]


@dataclass
class _Reference:
    price: Decimal
    ts: int


class RiskHandler:
    def __init__(
        self,
        ids: EventIds,
        cache: Cache,
        account: str,
        sizing: SizingConfig,
        limits: Limits,
        rules: dict[str, MarketRules],
    ) -> None:
        self._ids = ids
        self._cache = cache
        self._account = account
        self._sizing = sizing
        self._limits = limits
        self._rules = rules
        self._refs: dict[str, _Reference] = {}
        self.positions: dict[str, Position] = {}
        self._open_qty: dict[str, Decimal] = {}
        self.kill_switch = cache.get(KILL_SWITCH_KEY) == b"1"  # survives restarts

    def handle(self, event: Event, topic: str, now_ns: int) -> Sequence[Emit]:
        if isinstance(event, QuoteTick):
            mid = (Decimal(str(event.bid)) + Decimal(str(event.ask))) / 2
            # Freshness is judged on arrival time (ts_init): replayed data has old exchange times.
            self._refs[event.key] = _Reference(mid, event.ts_init)
            return ()
        if isinstance(event, Signal):
            return self._on_signal(event, now_ns)
        if isinstance(event, ExecutionReport):
            self._on_execution(event)
            return ()
        if isinstance(event, ControlCommand):
            self._on_control(event)
        return ()

    def _rules_for(self, symbol: str) -> MarketRules:
        return self._rules.get(symbol.replace("/", ""), DEFAULT_RULES)

    def _on_signal(self, s: Signal, now_ns: int) -> Sequence[Emit]:
        key = s.key
        ref = self._refs.get(key)
        pos = self.positions.get(key, Position())
        exposure = pos.qty + self._open_qty.get(key, Decimal(0))
        price = ref.price if ref else Decimal(str(s.price))
        rules = self._rules_for(s.symbol)
        target = target_qty(s.direction, s.score, price, s.volatility, self._sizing)
        qty = rules.round_qty(
            order_qty(
                target, exposure, price, self._limits.max_order_notional, self._limits.max_order_qty
            )
        )
        if qty == 0 or abs(qty) < rules.min_qty or abs(qty) * price < rules.min_notional:
            return ()  # already at target (within one lot / minimum notional)
        reasons = check_order(
            OrderCheck(
                key=key,
                signed_qty=qty,
                reference_price=ref.price if ref else None,
                reference_ts=ref.ts if ref else None,
                position_qty=exposure,
                now_ns=now_ns,
                kill_switch=self.kill_switch,
            ),
            self._limits,
        )
        side = "buy" if qty > 0 else "sell"
        coid = client_order_id(s.strategy_id, s.event_id)
        ref_price = rules.round_price(price)
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
            client_order_id=None if reasons else coid,
            side=side,
            quantity=abs(qty),
            reference_price=ref_price,
        )
        for reason in reasons or ["approved"]:
            DECISIONS.labels(reason).inc()
        if reasons:
            return (Emit(RISK_DECISIONS, decision),)
        self._open_qty[key] = self._open_qty.get(key, Decimal(0)) + qty
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
            quantity=abs(qty),
            reference_price=ref_price,
        )
        return (Emit(RISK_DECISIONS, decision), Emit(ORDERS, order))

    def _on_execution(self, r: ExecutionReport) -> None:
        key = r.key
        sign = Decimal(1) if r.side == "buy" else Decimal(-1)
        if r.is_fill:
            if r.last_price is None:
                ERRORS.labels("risk", "fill_without_price").inc()
                return
            pos = self.positions.setdefault(key, Position())
            pos.apply_fill(sign * r.last_qty, r.last_price, r.fee)
            self._open_qty[key] = self._open_qty.get(key, Decimal(0)) - sign * r.last_qty
            self._publish_books(key)
        elif r.status in TERMINAL:
            # leaves_qty is 0 on a terminal report: release what was never filled.
            unfilled = r.quantity - r.cum_qty
            self._open_qty[key] = self._open_qty.get(key, Decimal(0)) - sign * unfilled

    def _on_control(self, c: ControlCommand) -> None:
        if c.action in (ControlAction.KILL_SWITCH_ON, ControlAction.KILL_SWITCH_OFF):
            self.kill_switch = c.action is ControlAction.KILL_SWITCH_ON
            self._cache.set(KILL_SWITCH_KEY, b"1" if self.kill_switch else b"0")

    def snapshot(self) -> bytes:
        return orjson.dumps(
            {
                "refs": {k: [str(r.price), r.ts] for k, r in self._refs.items()},
                "positions": {
                    k: [
                        str(p.qty),
                        str(p.avg_price),
                        str(p.realized),
                        str(p.fees),
                        str(p.last_price),
                    ]
                    for k, p in self.positions.items()
                },
                "open_qty": {k: str(q) for k, q in self._open_qty.items()},
            }
        )

    def restore(self, data: bytes) -> None:
        state = orjson.loads(data)
        self._refs = {k: _Reference(Decimal(p), ts) for k, (p, ts) in state["refs"].items()}
        self.positions = {
            k: Position(*(Decimal(x) for x in v)) for k, v in state["positions"].items()
        }
        self._open_qty = {k: Decimal(q) for k, q in state["open_qty"].items()}

    def _mark(self, key: str) -> Decimal | None:
        ref = self._refs.get(key)
        return ref.price if ref else None

    def pnl(self) -> dict[str, str]:
        realized = sum((p.realized for p in self.positions.values()), Decimal(0))
        unrealized = sum(
            (p.unrealized(self._mark(k)) for k, p in self.positions.items()), Decimal(0)
        )
        fees = sum((p.fees for p in self.positions.values()), Decimal(0))
        return {
            "realized": fmt(realized),
            "unrealized": fmt(unrealized),
            "fees": fmt(fees),
            "net": fmt(realized + unrealized - fees),
        }

    def _publish_books(self, key: str) -> None:
        pos = self.positions[key]
        pnl = self.pnl()
        self._cache.set_many(
            {
                f"positions:{self._account}:{key}": orjson.dumps(pos.as_dict(self._mark(key))),
                f"pnl:{self._account}": orjson.dumps(pnl),
            }
        )
        POSITION.labels(key).set(float(pos.qty))
        PNL.labels(self._account).set(float(pnl["net"]))
