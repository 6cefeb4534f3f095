"""The order state machine: a transition table; an illegal transition raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from tickpipe.messages import OrderStatus as S

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
    S.PENDING_CANCEL: frozenset({S.CANCELLED, S.PARTIALLY_FILLED, S.FILLED}),
    S.FILLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}


class InvalidTransition(ValueError):
    pass


@dataclass
class Order:
    client_order_id: str
    quantity: Decimal
    status: S = S.NEW
    cum_qty: Decimal = Decimal(0)
    history: list[S] = field(default_factory=list)

    @property
    def leaves_qty(self) -> Decimal:
        return Decimal(0) if self.is_terminal else self.quantity - self.cum_qty

    @property
    def is_terminal(self) -> bool:
        return not TRANSITIONS[self.status]

    def transition(self, to: S) -> None:
        if to not in TRANSITIONS[self.status]:
            raise InvalidTransition(f"{self.client_order_id}: {self.status} -> {to}")
        self.history.append(self.status)
        self.status = to

    def fill(self, qty: Decimal) -> None:
        if qty <= 0 or self.cum_qty + qty > self.quantity:
            raise InvalidTransition(f"{self.client_order_id}: fill of {qty} exceeds the order")
        # Transition first: a fill refused by the state (e.g. a cancelled order) changes nothing.
        self.transition(S.FILLED if self.cum_qty + qty == self.quantity else S.PARTIALLY_FILLED)
        self.cum_qty += qty
