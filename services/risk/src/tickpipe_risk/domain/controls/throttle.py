"""Message throttle: at most N orders per window, per symbol and for the whole account.

Sliding windows on the injected `now_ns`; an order counts when approved, a refused one does
not (it never reaches the exchange).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

SYMBOL = "throttle_symbol"
GLOBAL = "throttle_global"


@dataclass
class SlidingWindow:
    times: deque[int] = field(default_factory=deque)

    def count(self, now_ns: int, window_ns: int) -> int:
        """Events in (now - window, now]."""
        while self.times and self.times[0] <= now_ns - window_ns:
            self.times.popleft()
        return len(self.times)

    def add(self, now_ns: int) -> None:
        self.times.append(now_ns)


@dataclass
class OrderThrottle:
    symbols: dict[str, SlidingWindow] = field(default_factory=dict)
    total: SlidingWindow = field(default_factory=SlidingWindow)

    def check(
        self, key: str, now_ns: int, window_ns: int, per_symbol: int, total: int
    ) -> list[str]:
        reasons = []
        window = self.symbols.get(key)
        if per_symbol and window is not None and window.count(now_ns, window_ns) >= per_symbol:
            reasons.append(SYMBOL)
        if total and self.total.count(now_ns, window_ns) >= total:
            reasons.append(GLOBAL)
        return reasons

    def record(self, key: str, now_ns: int) -> None:
        self.symbols.setdefault(key, SlidingWindow()).add(now_ns)
        self.total.add(now_ns)

    def dump(self) -> dict[str, Any]:
        return {
            "symbols": {k: list(w.times) for k, w in self.symbols.items()},
            "total": list(self.total.times),
        }

    @classmethod
    def load(cls, d: Any) -> OrderThrottle:
        return cls(
            {k: SlidingWindow(deque(v)) for k, v in d["symbols"].items()},
            SlidingWindow(deque(d["total"])),
        )
