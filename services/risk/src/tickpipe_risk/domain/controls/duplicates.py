"""Duplicate-order block.

An order is a duplicate when its client order id was issued before (the same signal handled
twice), or when the same strategy sent an identical order (symbol, signed quantity, price)
within the duplicate window (the same decision made twice from two copies of one input).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

REASON = "duplicate_order"

Fingerprint = tuple[str, str, str, str]  # strategy, key, signed qty, limit price or ""


@dataclass
class DuplicateGuard:
    capacity: int = 100_000
    ids: deque[str] = field(default_factory=deque)
    recent: deque[tuple[int, Fingerprint]] = field(default_factory=deque)
    _ids: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._ids = set(self.ids)

    def check(
        self, client_order_id: str, fingerprint: Fingerprint, now_ns: int, window_ns: int
    ) -> list[str]:
        if client_order_id in self._ids:
            return [REASON]
        while self.recent and self.recent[0][0] <= now_ns - window_ns:
            self.recent.popleft()
        if window_ns and any(f == fingerprint for _, f in self.recent):
            return [REASON]
        return []

    def issued(self, client_order_id: str) -> None:
        """An id issued before this state began (rebuilt from `orders.v1`)."""
        if client_order_id not in self._ids:
            self._ids.add(client_order_id)
            self.ids.append(client_order_id)
            if len(self.ids) > self.capacity:
                self._ids.discard(self.ids.popleft())

    def record(self, client_order_id: str, fingerprint: Fingerprint, now_ns: int) -> None:
        self._ids.add(client_order_id)
        self.ids.append(client_order_id)
        if len(self.ids) > self.capacity:
            self._ids.discard(self.ids.popleft())
        self.recent.append((now_ns, fingerprint))

    def dump(self) -> dict[str, Any]:
        return {"ids": list(self.ids), "recent": [[t, list(f)] for t, f in self.recent]}

    @classmethod
    def load(cls, d: Any, capacity: int = 100_000) -> DuplicateGuard:
        recent = deque((t, (f[0], f[1], f[2], f[3])) for t, f in d["recent"])
        return cls(capacity, deque(d["ids"]), recent)
