"""Orders risk has sent and execution has not finished: they count toward exposure."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

ZERO = Decimal(0)


@dataclass(slots=True)
class OpenOrder:
    strategy_id: str
    key: str
    leaves: Decimal  # signed: buys > 0
    price: Decimal  # limit price, or the reference it was checked at
    ts: int  # when risk approved it
    answered: bool = False  # execution has reported on it (for the circuit breaker)

    @property
    def notional(self) -> Decimal:
        return abs(self.leaves) * self.price

    def dump(self) -> list[Any]:
        return [
            self.strategy_id,
            self.key,
            str(self.leaves),
            str(self.price),
            self.ts,
            self.answered,
        ]

    @classmethod
    def load(cls, d: Any) -> OpenOrder:
        s, k, leaves, price, ts, answered = d
        return cls(s, k, Decimal(leaves), Decimal(price), ts, answered)


class OpenOrders:
    def __init__(self) -> None:
        self.by_id: dict[str, OpenOrder] = {}

    def __iter__(self) -> Iterator[OpenOrder]:
        return iter(self.by_id.values())

    def add(self, client_order_id: str, order: OpenOrder) -> None:
        self.by_id[client_order_id] = order

    def get(self, client_order_id: str) -> OpenOrder | None:
        return self.by_id.get(client_order_id)

    def filled(self, client_order_id: str, qty: Decimal) -> None:
        o = self.by_id.get(client_order_id)
        if o is None:
            return
        remaining = abs(o.leaves) - qty
        if remaining <= 0:
            del self.by_id[client_order_id]
        else:
            o.leaves = remaining.copy_sign(o.leaves)

    def close(self, client_order_id: str) -> None:
        self.by_id.pop(client_order_id, None)

    def qty(self, key: str, strategy_id: str | None = None) -> Decimal:
        """Signed open quantity in `key`: one strategy's, or the account's."""
        total = ZERO
        for o in self.by_id.values():
            if o.key == key and (strategy_id is None or o.strategy_id == strategy_id):
                total += o.leaves
        return total

    def notional(self, strategy_id: str | None = None) -> Decimal:
        total = ZERO
        for o in self.by_id.values():
            if strategy_id is None or o.strategy_id == strategy_id:
                total += o.notional
        return total

    def dump(self) -> dict[str, Any]:
        return {k: o.dump() for k, o in self.by_id.items()}

    def load(self, d: Any) -> None:
        self.by_id = {k: OpenOrder.load(v) for k, v in d.items()}
