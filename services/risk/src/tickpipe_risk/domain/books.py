"""The books: every strategy's positions and the account's, from fills, each counted once.

A fill is identified by (client_order_id, trade_id); a report without a trade id by its
order's cumulative quantity, which grows with every fill. The account book takes every fill
of every strategy through one average-cost position per symbol, so its realized/unrealized
split can differ from the strategies' sum (offsetting strategies realize at account level),
while the net is the same.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tickpipe_risk.domain.positions import ZERO, Position

Mark = Callable[[str], Decimal | None]


@dataclass(frozen=True, slots=True)
class Fill:
    client_order_id: str
    fill_id: str  # trade id, or `cum:<cum_qty>`
    strategy_id: str
    key: str
    signed_qty: Decimal
    price: Decimal
    fee: Decimal
    ts: int


@dataclass(frozen=True, slots=True)
class Pnl:
    realized: Decimal
    unrealized: Decimal
    fees: Decimal

    @property
    def net(self) -> Decimal:
        return self.realized + self.unrealized - self.fees


def pnl_of(positions: Iterable[tuple[str, Position]], mark: Mark) -> Pnl:
    realized = unrealized = fees = ZERO
    for key, p in positions:
        realized += p.realized
        unrealized += p.unrealized(mark(key))
        fees += p.fees
    return Pnl(realized, unrealized, fees)


class Books:
    def __init__(self, dedupe_capacity: int = 100_000) -> None:
        self.account: dict[str, Position] = {}
        self.strategies: dict[str, dict[str, Position]] = {}
        # Bounded: a duplicate arrives close to its original (a redelivery, a replay).
        self._seen: set[tuple[str, str]] = set()
        self._order: deque[tuple[str, str]] = deque()
        self._capacity = dedupe_capacity

    def apply(self, fill: Fill) -> bool:
        """Books the fill; False (and nothing changes) when it was booked before."""
        ident = (fill.client_order_id, fill.fill_id)
        if ident in self._seen:
            return False
        self._seen.add(ident)
        self._order.append(ident)
        if len(self._order) > self._capacity:
            self._seen.discard(self._order.popleft())
        for book in (self.account, self.strategies.setdefault(fill.strategy_id, {})):
            book.setdefault(fill.key, Position()).apply_fill(fill.signed_qty, fill.price, fill.fee)
        return True

    def qty(self, key: str, strategy_id: str | None = None) -> Decimal:
        book = self.account if strategy_id is None else self.strategies.get(strategy_id, {})
        pos = book.get(key)
        return pos.qty if pos is not None else ZERO

    def book(self, strategy_id: str | None = None) -> dict[str, Position]:
        return self.account if strategy_id is None else self.strategies.get(strategy_id, {})

    def pnl(self, mark: Mark, strategy_id: str | None = None) -> Pnl:
        return pnl_of(self.book(strategy_id).items(), mark)

    def net(self, mark: Mark, strategy_id: str | None = None) -> Decimal:
        """`pnl(mark, strategy_id).net`, summed in the same order: risk reads it at every
        decision, where building the breakdown cost as much as the arithmetic."""
        realized = unrealized = fees = ZERO
        for key, p in self.book(strategy_id).items():
            realized += p.realized
            unrealized += p.unrealized(mark(key))
            fees += p.fees
        return realized + unrealized - fees

    def dump(self) -> dict[str, Any]:
        return {
            "account": {k: p.dump() for k, p in self.account.items()},
            "strategies": {
                s: {k: p.dump() for k, p in book.items()} for s, book in self.strategies.items()
            },
            "seen": [list(i) for i in self._order],
        }

    def load(self, d: Any) -> None:
        self.account = {k: Position.load(v) for k, v in d["account"].items()}
        self.strategies = {
            s: {k: Position.load(v) for k, v in book.items()} for s, book in d["strategies"].items()
        }
        self._order = deque((c, t) for c, t in d["seen"])
        self._seen = set(self._order)
