"""Restore the order in which ingest received an instrument's trades and quotes.

Trades and quotes travel on two topics. Each topic keeps its own order, but a consumer of
both sees them interleaved by however its fetches happen to return: differently on every
run, and differently from the in-memory bus of a backtest. Whatever depends on "the latest
quote when this trade came" would then differ too. Ingest numbers each instrument's
records across both topics (`ingest_seq`); this buffer releases them in that order, holding
a record until the ones before it (from the other topic) have come.

Numbering starts at 0 when ingest starts, so a fresh consumer waits for record 0. A
number lower than expected is a restarted ingest (0) or a redelivery (passed on as it
comes). A gap that does not fill (a consumer that joined mid-stream, records lost
upstream) is skipped once `max_held` records wait behind it, and counted.

A buffer is no answer to a consumer that reads one topic far ahead of the other (catching
up on a backlog, one partition's fetches returning thousands of records first): whatever
its size, it gives up on a gap that would have filled. So the buffer also says which
stream runs ahead: once `pause_at` records of a key are held, `ahead()` names the source
(the topic) they came from, until at most `resume_at` are left. The runner pauses that
source's partition meanwhile (`tickpipe.runner`, flow control), and the other topic
catches up; `max_held` remains the last resort for a gap that never fills.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Generic, TypeVar

from tickpipe.messages import QuoteTick, TradeTick, decode, encode

E = TypeVar("E")


class ArrivalOrder(Generic[E]):
    def __init__(
        self, max_held: int = 2_000, pause_at: int | None = None, resume_at: int | None = None
    ) -> None:
        # Pausing a partition takes effect after the batch in hand (up to a few hundred
        # more records): pause well before the last resort.
        pause_at = max(1, max_held // 4) if pause_at is None else pause_at
        resume_at = pause_at // 5 if resume_at is None else resume_at
        if not 0 <= resume_at < pause_at <= max_held:
            raise ValueError("need 0 <= resume_at < pause_at <= max_held")
        self.max_held = max_held
        self.pause_at = pause_at
        self.resume_at = resume_at
        self._next: dict[str, int] = {}
        self._held: dict[str, dict[int, E]] = {}
        # Keys holding pause_at records or more (until resume_at or fewer): the source of
        # the records held, the stream that runs ahead. Not snapshotted: the next held
        # record names it again.
        self._ahead: dict[str, str] = {}
        self.skipped = 0  # numbers given up on (a gap that did not fill)
        self.restarts = 0
        self.redelivered = 0

    def push(self, key: str, seq: int | None, event: E, source: str = "") -> list[E]:
        """`event` and any held ones it unblocks, in arrival order (maybe none yet).
        `source`: where the event came from (its topic), named by `ahead()`."""
        if seq is None:
            return [event]  # a producer that does not number: as it comes
        expected = self._next.get(key, 0)
        held = self._held.setdefault(key, {})
        if seq < expected:
            if seq != 0:
                self.redelivered += 1
                return [event]
            self.restarts += 1
            out = self._drain(key)  # what the previous run published, in its order
            self._next[key] = 0
            return out + self.push(key, seq, event, source)
        if seq > expected:
            held[seq] = event
            if len(held) >= self.pause_at:
                self._ahead[key] = source
            if len(held) <= self.max_held:
                return []
            first = min(held)
            self.skipped += first - expected
            expected = first
            event = held.pop(first)
        self._next[key] = expected + 1
        if not held:
            return [event]  # the common case: in order, nothing waiting
        return [event, *self._release(key)]

    def _release(self, key: str) -> list[E]:
        held, n, out = self._held[key], self._next[key], []
        while n in held:
            out.append(held.pop(n))
            n += 1
        self._next[key] = n
        if len(held) <= self.resume_at:
            self._ahead.pop(key, None)
        return out

    def _drain(self, key: str) -> list[E]:
        held = self._held.get(key, {})
        out = [held[s] for s in sorted(held)]
        held.clear()
        self._ahead.pop(key, None)
        return out

    def held(self, key: str) -> int:
        return len(self._held.get(key, {}))

    def keys(self) -> set[str]:
        return {*self._next, *self._held}

    def ahead(self) -> list[tuple[str, str]]:
        """`(source, key)` of the keys whose other stream lags (`pause_at` records held, not
        yet back down to `resume_at`), the source being that of its held records: the one to
        pause (what a `Paced` handler's `running_ahead` says)."""
        return [(source, key) for key, source in self._ahead.items()]

    # -- snapshots (held records are consumed from Kafka: they must survive a restart) -----

    def dump(
        self, encode: Callable[[E], Any], keys: Collection[str] | None = None
    ) -> dict[str, Any]:
        """The buffer's state (of `keys` only, when given: a partition's share)."""
        return {
            "next": {k: n for k, n in self._next.items() if keys is None or k in keys},
            "held": {
                k: [[s, encode(e)] for s, e in sorted(h.items())]
                for k, h in self._held.items()
                if h and (keys is None or k in keys)
            },
        }

    def load(self, data: dict[str, Any], decode: Callable[[Any], E]) -> None:
        """Add a dump's keys to this buffer (replacing what it held of those keys)."""
        for k, v in data.get("next", {}).items():
            self._next[k] = int(v)
        for k, items in data.get("held", {}).items():
            self._held[k] = {int(s): decode(e) for s, e in items}
            self._ahead.pop(k, None)

    def drop(self, keys: Collection[str]) -> None:
        """Forget these keys (their partition moved to another consumer)."""
        for k in keys:
            self._next.pop(k, None)
            self._held.pop(k, None)
            self._ahead.pop(k, None)


class MarketArrival(ArrivalOrder[QuoteTick | TradeTick]):
    """The buffer for trades and quotes, with its snapshot codec (the consumers of both
    topics, feature and execution, keep it in their snapshots)."""

    def to_json(self, keys: Collection[str] | None = None) -> dict[str, Any]:
        return self.dump(lambda e: [e.event_type, encode(e).decode()], keys)

    def load_json(self, data: dict[str, Any]) -> None:
        self.load(data, _market_event)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MarketArrival:
        order = cls()
        order.load_json(data)
        return order


def _market_event(item: list[str]) -> QuoteTick | TradeTick:
    event = decode(item[1].encode(), item[0])
    if not isinstance(event, (QuoteTick, TradeTick)):
        raise ValueError(f"snapshot holds a {type(event).__name__}, not market data")
    return event
