"""Everything risk knows, in one place: what the checks read and the snapshot captures."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tickpipe_risk.domain.books import Books
from tickpipe_risk.domain.controls.circuit import CircuitBreaker
from tickpipe_risk.domain.controls.duplicates import DuplicateGuard, RecentIds
from tickpipe_risk.domain.controls.fill_throttle import FillThrottle
from tickpipe_risk.domain.controls.halts import Halts
from tickpipe_risk.domain.controls.loss import LossGuard
from tickpipe_risk.domain.controls.throttle import OrderThrottle
from tickpipe_risk.domain.limits import Limits, StrategyLimits
from tickpipe_risk.domain.orders import OpenOrders

ZERO = Decimal(0)
LimitChange = tuple[str, str, str | None]  # name, value, strategy (None: every strategy)


@dataclass(frozen=True, slots=True)
class Reference:
    price: Decimal
    ts: int  # arrival (ts_init) of the quote


class RiskState:
    def __init__(self, limits: Limits) -> None:
        self.configured = limits
        self.limit_changes: list[LimitChange] = []  # set_limit commands, replayed on restore
        self.limits = limits
        self._per_strategy: dict[str, StrategyLimits] = {}
        self.refs: dict[str, Reference] = {}
        self.books = Books()
        self.open_orders = OpenOrders()
        self.halts = Halts()
        self.order_throttle = OrderThrottle()
        self.fill_throttle = FillThrottle()
        self.duplicates = DuplicateGuard()
        self.breakers: dict[str, CircuitBreaker] = {}
        self.loss: dict[str, LossGuard] = {}  # per strategy
        self.account_loss = LossGuard()
        self.signals = RecentIds()  # decided signals, by event id

    # -- limits ---------------------------------------------------------------------------

    def strategy_limits(self, strategy_id: str) -> StrategyLimits:
        limits = self._per_strategy.get(strategy_id)
        if limits is None:
            limits = self._per_strategy[strategy_id] = self.limits.for_strategy(strategy_id)
        return limits

    def set_limit(self, name: str, value: str, strategy_id: str | None) -> None:
        """Raises `UnknownLimit` (and changes nothing) for an unknown name or a bad value."""
        self.limits = self.limits.with_limit(name, value, strategy_id)
        self._per_strategy.clear()
        self.limit_changes = [
            c for c in self.limit_changes if (c[0], c[2]) != (name, strategy_id)
        ] + [(name, value, strategy_id)]

    def _reapply_limits(self) -> None:
        limits = self.configured
        for name, value, strategy_id in self.limit_changes:
            limits = limits.with_limit(name, value, strategy_id)
        self.limits = limits
        self._per_strategy.clear()

    # -- views ----------------------------------------------------------------------------

    def mark(self, key: str) -> Decimal | None:
        ref = self.refs.get(key)
        return ref.price if ref else None

    def price(self, key: str) -> Decimal:
        """Valuation of a held symbol: its reference, else its last fill, else its orders."""
        ref = self.refs.get(key)
        if ref is not None:
            return ref.price
        pos = self.books.account.get(key)
        if pos is not None and pos.last_price:
            return pos.last_price
        return next((o.price for o in self.open_orders if o.key == key), ZERO)

    def exposure(self, key: str, strategy_id: str | None = None) -> Decimal:
        """Signed position plus open orders in `key`: one strategy's, or the account's."""
        return self.books.qty(key, strategy_id) + self.open_orders.qty(key, strategy_id)

    def exposures(self, strategy_id: str | None = None) -> dict[str, Decimal]:
        out = {k: p.qty for k, p in self.books.book(strategy_id).items() if p.qty}
        for o in self.open_orders:
            if strategy_id is None or o.strategy_id == strategy_id:
                out[o.key] = out.get(o.key, ZERO) + o.leaves
        return out

    def equity(self, strategy_id: str | None = None) -> Decimal:
        return self.books.net(self.mark, strategy_id)

    def loss_guard(self, strategy_id: str) -> LossGuard:
        guard = self.loss.get(strategy_id)
        if guard is None:
            guard = self.loss[strategy_id] = LossGuard()
        return guard

    def breaker(self, key: str) -> CircuitBreaker:
        b = self.breakers.get(key)
        if b is None:
            b = self.breakers[key] = CircuitBreaker()
        return b

    # -- snapshot -------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        return {
            "limit_changes": [list(c) for c in self.limit_changes],
            "refs": {k: [str(r.price), r.ts] for k, r in self.refs.items()},
            "books": self.books.dump(),
            "open_orders": self.open_orders.dump(),
            "halts": self.halts.dump(),
            "order_throttle": self.order_throttle.dump(),
            "fill_throttle": self.fill_throttle.dump(),
            "duplicates": self.duplicates.dump(),
            "breakers": {k: b.dump() for k, b in self.breakers.items()},
            "loss": {s: g.dump() for s, g in self.loss.items()},
            "account_loss": self.account_loss.dump(),
            "signals": self.signals.dump(),
        }

    def load(self, d: Any) -> None:
        self.limit_changes = [(n, v, s) for n, v, s in d["limit_changes"]]
        self._reapply_limits()
        self.refs = {k: Reference(Decimal(p), ts) for k, (p, ts) in d["refs"].items()}
        self.books.load(d["books"])
        self.open_orders.load(d["open_orders"])
        self.halts = Halts.load(d["halts"])
        self.order_throttle = OrderThrottle.load(d["order_throttle"])
        self.fill_throttle = FillThrottle.load(d["fill_throttle"])
        self.duplicates = DuplicateGuard.load(d["duplicates"])
        self.breakers = {k: CircuitBreaker.load(b) for k, b in d["breakers"].items()}
        self.loss = {s: LossGuard.load(g) for s, g in d["loss"].items()}
        self.account_loss = LossGuard.load(d["account_loss"])
        self.signals = RecentIds(d["signals"])
