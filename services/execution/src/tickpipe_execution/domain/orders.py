"""The order state machine: a transition table; an illegal transition raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tickpipe.messages import OrderStatus as S
from tickpipe.messages import Side

TRANSITIONS: dict[S, frozenset[S]] = {
    S.NEW: frozenset({S.SUBMITTED, S.REJECTED}),
    S.SUBMITTED: frozenset(
        {S.ACKNOWLEDGED, S.REJECTED, S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.EXPIRED}
    ),
    S.ACKNOWLEDGED: frozenset(
        {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELLED, S.EXPIRED}
    ),
    S.PARTIALLY_FILLED: frozenset(
        {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELLED, S.EXPIRED}
    ),
    # A fill can race a cancel; the exchange's answer decides which one wins.
    S.PENDING_CANCEL: frozenset({S.CANCELLED, S.PARTIALLY_FILLED, S.FILLED, S.EXPIRED}),
    S.FILLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}
OPEN = frozenset(s for s, targets in TRANSITIONS.items() if targets and s is not S.NEW)


class InvalidTransition(ValueError):
    pass


@dataclass
class Order:
    """The OMS's view of one order, keyed by its client order id."""

    client_order_id: str
    quantity: Decimal
    status: S = S.NEW
    cum_qty: Decimal = Decimal(0)
    history: list[S] = field(default_factory=list)
    exchange: str = ""
    symbol: str = ""
    side: Side = "buy"
    account: str = ""
    strategy_id: str = ""
    causation_id: str | None = None
    exchange_order_id: str | None = None
    fees: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)  # sum of qty * price over fills: the average price
    trade_ids: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.exchange}:{self.symbol}"

    @property
    def leaves_qty(self) -> Decimal:
        return Decimal(0) if self.is_terminal else self.quantity - self.cum_qty

    @property
    def is_terminal(self) -> bool:
        return not TRANSITIONS[self.status]

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def transition(self, to: S) -> None:
        if to not in TRANSITIONS[self.status]:
            raise InvalidTransition(f"{self.client_order_id}: {self.status} -> {to}")
        self.history.append(self.status)
        self.status = to

    def fill(
        self,
        qty: Decimal,
        trade_id: str | None = None,
        price: Decimal | None = None,
        fee: Decimal = Decimal(0),
    ) -> bool:
        """Apply a fill once: False (and no change) for a trade id already applied."""
        if trade_id is not None and trade_id in self.trade_ids:
            return False
        if qty <= 0 or self.cum_qty + qty > self.quantity:
            raise InvalidTransition(f"{self.client_order_id}: fill of {qty} exceeds the order")
        # Transition first: a fill refused by the state (e.g. a cancelled order) changes nothing.
        self.transition(S.FILLED if self.cum_qty + qty == self.quantity else S.PARTIALLY_FILLED)
        self.cum_qty += qty
        self.fees += fee
        if price is not None:
            self.notional += qty * price
        if trade_id is not None:
            self.trade_ids.append(trade_id)
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "c": self.client_order_id,
            "q": str(self.quantity),
            "s": self.status.value,
            "cum": str(self.cum_qty),
            "h": [h.value for h in self.history],
            "ex": self.exchange,
            "sym": self.symbol,
            "side": self.side,
            "acct": self.account,
            "strat": self.strategy_id,
            "cause": self.causation_id,
            "xid": self.exchange_order_id,
            "fees": str(self.fees),
            "notional": str(self.notional),
            "trades": self.trade_ids,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Order:
        return cls(
            client_order_id=d["c"],
            quantity=Decimal(d["q"]),
            status=S(d["s"]),
            cum_qty=Decimal(d["cum"]),
            history=[S(h) for h in d["h"]],
            exchange=d["ex"],
            symbol=d["sym"],
            side=d["side"],
            account=d["acct"],
            strategy_id=d["strat"],
            causation_id=d["cause"],
            exchange_order_id=d["xid"],
            fees=Decimal(d["fees"]),
            notional=Decimal(d["notional"]),
            trade_ids=list(d["trades"]),
        )
