"""Repeated-execution throttle: N fills of one strategy in one symbol within T disable that
strategy in that symbol until an operator re-enables it (`resume_symbol`).

A runaway loop (buy, sell, buy, ...) shows as a burst of fills long before it shows as a
loss. Fill time is the report's `ts_event`, so replaying the ledger trips it the same way.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tickpipe_risk.domain.controls.throttle import SlidingWindow

REASON = "fill_throttle"


@dataclass
class FillThrottle:
    windows: dict[tuple[str, str], SlidingWindow] = field(default_factory=dict)
    disabled: set[tuple[str, str]] = field(default_factory=set)  # (strategy, key)

    def record(self, strategy_id: str, key: str, ts: int, count: int, window_ns: int) -> bool:
        """Counts a fill; True when it trips the throttle (it was not tripped before)."""
        window = self.windows.setdefault((strategy_id, key), SlidingWindow())
        window.add(ts)
        recent = window.count(ts, window_ns)
        if not count or (strategy_id, key) in self.disabled:
            return False
        if recent >= count:
            self.disabled.add((strategy_id, key))
            return True
        return False

    def check(self, strategy_id: str, key: str) -> list[str]:
        return [REASON] if (strategy_id, key) in self.disabled else []

    def enable(self, key: str, strategy_id: str | None = None) -> None:
        for s, k in list(self.disabled):
            if k == key and strategy_id in (None, s):
                self.disabled.discard((s, k))
                self.windows.pop((s, k), None)  # start counting afresh

    def dump(self) -> dict[str, Any]:
        return {
            "windows": [[s, k, list(w.times)] for (s, k), w in self.windows.items()],
            "disabled": sorted([s, k] for s, k in self.disabled),
        }

    @classmethod
    def load(cls, d: Any) -> FillThrottle:
        return cls(
            {(s, k): SlidingWindow(deque(t)) for s, k, t in d["windows"]},
            {(s, k) for s, k in d["disabled"]},
        )
