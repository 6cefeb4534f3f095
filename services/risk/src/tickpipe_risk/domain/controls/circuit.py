"""Circuit breaker per instrument: a pure state machine on injected time.

    closed --trip--> open --cooldown--> half_open --probes passed--> closed
                       ^                    |
                       +----probe failed----+        (a trip in any state reopens it)

It trips on the error rate of execution outcomes (rejections, and answers slower than
`slow_ns`, over the last `window` outcomes once there are `min_calls`), or on a volatility
spike (a signal's per-bar realized volatility above `max_volatility`). Open, it refuses every
order; after `open_ns` it lets `probes` orders through and closes when all of them were
answered well, or reopens at the first bad one. The shape follows resilience4j's breaker
(count-based window, minimum calls, slow-call threshold, permitted calls in half-open).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

OPEN_REASON = "circuit_open"
HALF_OPEN_REASON = "circuit_half_open"  # every probe slot taken: wait for their answers


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Trigger(StrEnum):
    TRIP = "trip"
    COOLDOWN = "cooldown"
    PROBE_FAILED = "probe_failed"
    PROBES_PASSED = "probes_passed"


TRANSITIONS: dict[tuple[State, Trigger], State] = {
    (State.CLOSED, Trigger.TRIP): State.OPEN,
    (State.OPEN, Trigger.TRIP): State.OPEN,
    (State.OPEN, Trigger.COOLDOWN): State.HALF_OPEN,
    (State.HALF_OPEN, Trigger.TRIP): State.OPEN,
    (State.HALF_OPEN, Trigger.PROBE_FAILED): State.OPEN,
    (State.HALF_OPEN, Trigger.PROBES_PASSED): State.CLOSED,
}


class IllegalTransition(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    window: int = 20  # outcomes remembered
    min_calls: int = 10  # before the error rate is judged
    failure_rate: float = 0.5
    slow_ns: int = 2_000_000_000  # an answer slower than this counts as a failure
    open_ns: int = 30_000_000_000  # cooldown before probing
    probes: int = 3
    max_volatility: float = 0.005  # per-bar; 0 turns the volatility trip off


@dataclass
class CircuitBreaker:
    state: State = State.CLOSED
    opened_at: int = 0
    outcomes: deque[bool] = field(default_factory=deque)  # True: failure
    probes_sent: int = 0
    probes_passed: int = 0

    def _fire(self, trigger: Trigger, now_ns: int) -> None:
        nxt = TRANSITIONS.get((self.state, trigger))
        if nxt is None:
            raise IllegalTransition(f"{trigger} in state {self.state}")
        if nxt is State.OPEN:
            self.opened_at = now_ns
        if nxt is not State.HALF_OPEN:
            self.probes_sent = self.probes_passed = 0
        if nxt is State.CLOSED:
            self.outcomes.clear()
        self.state = nxt

    def _tick(self, now_ns: int, cfg: BreakerConfig) -> None:
        if self.state is State.OPEN and now_ns - self.opened_at >= cfg.open_ns:
            self._fire(Trigger.COOLDOWN, now_ns)

    def check(self, now_ns: int, cfg: BreakerConfig) -> list[str]:
        self._tick(now_ns, cfg)
        if self.state is State.OPEN:
            return [OPEN_REASON]
        if self.state is State.HALF_OPEN and self.probes_sent >= cfg.probes:
            return [HALF_OPEN_REASON]
        return []

    def sent(self) -> None:
        """An approved order: in half-open, it is a probe."""
        if self.state is State.HALF_OPEN:
            self.probes_sent += 1

    def outcome(self, failed: bool, now_ns: int, cfg: BreakerConfig) -> None:
        """Execution's first answer on an order: failed when rejected or slow."""
        self._tick(now_ns, cfg)
        if self.state is State.OPEN:
            return  # late answers to orders sent before it opened
        if self.state is State.HALF_OPEN:
            if failed:
                self._fire(Trigger.PROBE_FAILED, now_ns)
            else:
                self.probes_passed += 1
                if self.probes_passed >= cfg.probes:
                    self._fire(Trigger.PROBES_PASSED, now_ns)
            return
        self.outcomes.append(failed)
        while len(self.outcomes) > cfg.window:
            self.outcomes.popleft()
        n = len(self.outcomes)
        if n >= cfg.min_calls and sum(self.outcomes) >= cfg.failure_rate * n:
            self._fire(Trigger.TRIP, now_ns)

    def volatility(self, vol: float | None, now_ns: int, cfg: BreakerConfig) -> None:
        if vol is not None and cfg.max_volatility and vol > cfg.max_volatility:
            self._fire(Trigger.TRIP, now_ns)

    def dump(self) -> list[Any]:
        return [
            self.state.value,
            self.opened_at,
            list(self.outcomes),
            self.probes_sent,
            self.probes_passed,
        ]

    @classmethod
    def load(cls, d: Any) -> CircuitBreaker:
        state, opened_at, outcomes, sent, passed = d
        return cls(State(state), opened_at, deque(outcomes), sent, passed)
