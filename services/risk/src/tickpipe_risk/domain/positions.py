"""Positions and PnL from fills, in exact decimals (average-cost method)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

ZERO = Decimal(0)
CENTS = Decimal("0.00000001")  # reporting precision


def fmt(x: Decimal) -> str:
    # Fixed-point: str() would print zero as "0E-8"; adding ZERO turns -0 into 0.
    return f"{x.quantize(CENTS) + ZERO:f}"


@dataclass
class Position:
    qty: Decimal = ZERO  # signed: long > 0
    avg_price: Decimal = ZERO
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    last_price: Decimal = ZERO

    def apply_fill(self, signed_qty: Decimal, price: Decimal, fee: Decimal) -> None:
        self.fees += fee
        self.last_price = price
        if self.qty == 0 or (self.qty > 0) == (signed_qty > 0):
            total = self.qty + signed_qty
            self.avg_price = (self.avg_price * abs(self.qty) + price * abs(signed_qty)) / abs(total)
            self.qty = total
            return
        closing = min(abs(signed_qty), abs(self.qty))
        direction = Decimal(1) if self.qty > 0 else Decimal(-1)
        self.realized += (price - self.avg_price) * closing * direction
        remaining = self.qty + signed_qty
        if remaining == 0:
            self.avg_price = ZERO
        elif (remaining > 0) != (self.qty > 0):
            self.avg_price = price  # flipped: the rest opens a new position at this price
        self.qty = remaining

    def unrealized(self, mark: Decimal | None = None) -> Decimal:
        price = mark if mark is not None else self.last_price
        return (price - self.avg_price) * self.qty if self.qty else ZERO

    def as_dict(self, mark: Decimal | None = None) -> dict[str, str]:
        return {
            "qty": str(self.qty),
            "avg_price": fmt(self.avg_price),
            "realized": fmt(self.realized),
            "unrealized": fmt(self.unrealized(mark)),
            "fees": fmt(self.fees),
        }

    def dump(self) -> list[str]:
        return [
            str(self.qty),
            str(self.avg_price),
            str(self.realized),
            str(self.fees),
            str(self.last_price),
        ]

    @classmethod
    def load(cls, d: list[str]) -> Position:
        return cls(*(Decimal(x) for x in d))
