"""What the dashboard shows live, built from the topics: recent fills, open orders, signals
and risk rejections, in bounded ring buffers (the API never grows with the ledger)."""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict, deque

from tickpipe.messages import Event, ExecutionReport, OrderStatus, RiskDecision, Signal

DONE = {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}


class LiveFeed:
    """Fed by the background consumer (or directly, in tests); read by the routes."""

    def __init__(self, size: int = 500) -> None:
        self._size = size
        self._fills: deque[ExecutionReport] = deque(maxlen=size)
        self._open: OrderedDict[str, ExecutionReport] = OrderedDict()
        self._signals: deque[tuple[int, Signal]] = deque(maxlen=size)
        self._rejections: deque[RiskDecision] = deque(maxlen=size)
        self._reasons: Counter[str] = Counter()
        self._seq = 0
        self._lock = threading.Lock()

    def on_event(self, event: Event) -> None:
        with self._lock:
            self._seq += 1
            if isinstance(event, ExecutionReport):
                self._on_execution(event)
            elif isinstance(event, Signal):
                self._signals.append((self._seq, event))
            elif isinstance(event, RiskDecision) and not event.approved:
                self._rejections.append(event)
                self._reasons.update(event.reasons)

    def _on_execution(self, r: ExecutionReport) -> None:
        if r.is_fill:
            self._fills.append(r)
        if r.status in DONE:
            self._open.pop(r.client_order_id, None)
            return
        self._open[r.client_order_id] = r
        self._open.move_to_end(r.client_order_id)
        while len(self._open) > self._size:
            self._open.popitem(last=False)  # an order never closed must not pin memory

    @property
    def version(self) -> int:
        """Moves on every event: streams compare it to know when to send."""
        return self._seq

    def fills(self) -> list[ExecutionReport]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._fills))

    def open_orders(self) -> list[ExecutionReport]:
        with self._lock:
            return list(reversed(self._open.values()))

    def rejections(self) -> tuple[dict[str, int], list[RiskDecision]]:
        with self._lock:
            return dict(self._reasons), list(reversed(self._rejections))

    def signals_after(self, seq: int) -> list[tuple[int, Signal]]:
        """Signals with a sequence number above `seq`, oldest first."""
        with self._lock:
            return [(n, s) for n, s in self._signals if n > seq]
