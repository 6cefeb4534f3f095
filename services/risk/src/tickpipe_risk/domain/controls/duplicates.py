"""Duplicate-order block.

An order is a duplicate when its client order id was issued before (the same signal handled
twice), or when the same strategy sent an identical order (symbol, signed quantity, price)
within the duplicate window (the same decision made twice from two copies of one input).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import InitVar, dataclass, field
from typing import Any

REASON = "duplicate_order"

Fingerprint = tuple[str, str, str, str]  # strategy, key, signed qty, limit price or ""


class RecentIds:
    """The last `capacity` ids seen, in order, for membership in O(1)."""

    def __init__(self, ids: Iterable[str] = (), capacity: int = 100_000) -> None:
        self._order: deque[str] = deque()
        self._set: set[str] = set()
        self._capacity = capacity
        for i in ids:
            self.add(i)

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._set

    def add(self, event_id: str) -> None:
        if event_id in self._set:
            return
        self._set.add(event_id)
        self._order.append(event_id)
        if len(self._order) > self._capacity:
            self._set.discard(self._order.popleft())

    def dump(self) -> list[str]:
        return list(self._order)


@dataclass
class DuplicateGuard:
    capacity: int = 100_000
    initial_ids: InitVar[Iterable[str]] = ()
    recent: deque[tuple[int, Fingerprint]] = field(default_factory=deque)
    ids: RecentIds = field(init=False)

    def __post_init__(self, initial_ids: Iterable[str]) -> None:
        self.ids = RecentIds(initial_ids, self.capacity)

    def check(
        self, client_order_id: str, fingerprint: Fingerprint, now_ns: int, window_ns: int
    ) -> list[str]:
        if client_order_id in self.ids:
            return [REASON]
        while self.recent and self.recent[0][0] <= now_ns - window_ns:
            self.recent.popleft()
        if window_ns and any(f == fingerprint for _, f in self.recent):
            return [REASON]
        return []

    def issued(self, client_order_id: str) -> None:
        """An id issued before this state began (rebuilt from `orders.v1`)."""
        self.ids.add(client_order_id)

    def record(self, client_order_id: str, fingerprint: Fingerprint, now_ns: int) -> None:
        self.ids.add(client_order_id)
        self.recent.append((now_ns, fingerprint))

    def dump(self) -> dict[str, Any]:
        return {"ids": self.ids.dump(), "recent": [[t, list(f)] for t, f in self.recent]}

    @classmethod
    def load(cls, d: Any, capacity: int = 100_000) -> DuplicateGuard:
        recent = deque((t, (f[0], f[1], f[2], f[3])) for t, f in d["recent"])
        return cls(capacity, d["ids"], recent)
