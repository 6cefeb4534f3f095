"""Daily loss limit and max drawdown: once breached, only risk-reducing orders pass.

Equity is net PnL (realized + unrealized at the latest references - fees). It is observed at
every decision and after every fill. The daily loss is measured from the last equity observed
before the UTC day began (0 before any trading); the drawdown from the highest equity
observed (0 to begin with). A breach latches: the daily one
until the UTC day changes, either one until an operator sets that limit again (`set_limit`),
which re-arms it (and, for the drawdown, restarts the high-water mark at today's equity).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

DAILY_LOSS = "daily_loss_limit"
DRAWDOWN = "max_drawdown"
DAY_NS = 86_400 * 1_000_000_000


@dataclass
class LossGuard:
    day: int | None = None
    day_start: Decimal = Decimal(0)
    peak: Decimal = Decimal(0)
    equity: Decimal = Decimal(0)  # last observed
    daily_breached: bool = False
    drawdown_breached: bool = False

    def observe(
        self,
        equity: Decimal,
        now_ns: int,
        max_daily_loss: Decimal | None,
        max_drawdown: Decimal | None,
    ) -> None:
        day = now_ns // DAY_NS
        if day != self.day:
            self.day, self.day_start, self.daily_breached = day, self.equity, False
        self.peak = max(self.peak, equity)
        self.equity = equity
        if max_daily_loss is not None and self.day_start - equity > max_daily_loss:
            self.daily_breached = True
        if max_drawdown is not None and self.peak - equity > max_drawdown:
            self.drawdown_breached = True

    def check(self, reducing: bool, prefix: str = "") -> list[str]:
        if reducing:
            return []
        reasons = []
        if self.daily_breached:
            reasons.append(prefix + DAILY_LOSS)
        if self.drawdown_breached:
            reasons.append(prefix + DRAWDOWN)
        return reasons

    def rearm_daily(self) -> None:
        self.daily_breached = False

    def rearm_drawdown(self) -> None:
        self.drawdown_breached = False
        self.peak = self.equity

    def dump(self) -> list[Any]:
        return [
            self.day,
            str(self.day_start),
            str(self.peak),
            str(self.equity),
            self.daily_breached,
            self.drawdown_breached,
        ]

    @classmethod
    def load(cls, d: Any) -> LossGuard:
        day, start, peak, equity, daily, drawdown = d
        return cls(
            day,
            Decimal(start),
            Decimal(peak),
            Decimal(equity),
            daily,
            drawdown,
        )
