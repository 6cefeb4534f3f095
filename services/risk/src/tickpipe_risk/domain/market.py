"""Exchange precision for an instrument (from ccxt market info or exchangeInfo filters)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from pathlib import Path


@dataclass(frozen=True)
class MarketRules:
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    min_notional: Decimal

    def round_qty(self, qty: Decimal) -> Decimal:
        """Toward zero, to the lot step: never order more than sized."""
        steps = (abs(qty) / self.step_size).to_integral_value(rounding=ROUND_DOWN)
        return (steps * self.step_size).copy_sign(qty) if steps else Decimal(0)

    def round_price(self, price: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
        return (price / self.tick_size).to_integral_value(rounding=rounding) * self.tick_size


DEFAULT_RULES = MarketRules(Decimal("0.01"), Decimal("0.00001"), Decimal("0.00001"), Decimal(10))


def load_binance_exchange_info(path: Path) -> dict[str, MarketRules]:
    """`exchangeInfo` symbol filters -> rules keyed by exchange symbol (e.g. `BTCUSDT`)."""
    data = json.loads(path.read_text())
    rules: dict[str, MarketRules] = {}
    for sym in data["symbols"]:
        f = {flt["filterType"]: flt for flt in sym["filters"]}
        notional = f.get("NOTIONAL", f.get("MIN_NOTIONAL", {"minNotional": "0"}))
        rules[sym["symbol"]] = MarketRules(
            tick_size=Decimal(f["PRICE_FILTER"]["tickSize"]).normalize(),
            step_size=Decimal(f["LOT_SIZE"]["stepSize"]).normalize(),
            min_qty=Decimal(f["LOT_SIZE"]["minQty"]).normalize(),
            min_notional=Decimal(notional["minNotional"]).normalize(),
        )
    return rules
