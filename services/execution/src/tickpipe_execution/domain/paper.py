"""Paper exchange: market orders fill at the touch plus slippage, with taker fees."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class PaperConfig:
    slippage_bps: Decimal = Decimal(1)
    taker_fee_bps: Decimal = Decimal("7.5")
    tick_size: Decimal = Decimal("0.01")


@dataclass(frozen=True)
class Touch:
    bid: Decimal
    ask: Decimal
    ts: int


@dataclass(frozen=True)
class PaperFill:
    price: Decimal
    qty: Decimal
    fee: Decimal


class PaperExchange:
    def __init__(self, config: PaperConfig | None = None) -> None:
        self.config = config or PaperConfig()
        self._touch: dict[str, Touch] = {}

    def on_quote(self, key: str, bid: float, ask: float, ts: int) -> None:
        self._touch[key] = Touch(Decimal(str(bid)), Decimal(str(ask)), ts)

    def snapshot(self) -> dict[str, list[str | int]]:
        return {k: [str(t.bid), str(t.ask), t.ts] for k, t in self._touch.items()}

    def restore(self, data: dict[str, list[str | int]]) -> None:
        self._touch = {
            k: Touch(Decimal(str(b)), Decimal(str(a)), int(ts)) for k, (b, a, ts) in data.items()
        }

    def touch(self, key: str) -> Touch | None:
        return self._touch.get(key)

    def market_fill(self, key: str, side: str, qty: Decimal) -> PaperFill | None:
        """Fill the whole order at the touch ± slippage; None without a quote to trade on."""
        touch = self._touch.get(key)
        if touch is None:
            return None
        slip = self.config.slippage_bps / Decimal(10_000)
        raw = touch.ask * (1 + slip) if side == "buy" else touch.bid * (1 - slip)
        tick = self.config.tick_size
        price = (raw / tick).to_integral_value() * tick
        fee = (price * qty * self.config.taker_fee_bps / Decimal(10_000)).quantize(
            Decimal("0.00000001")
        )
        return PaperFill(price, qty, fee)
