"""The trades an instrument's bars counted lately: a repeat is dropped before it counts twice.

A trade comes again when its producer repeats itself: an ingest restarted without resuming
(a file replayed from its start, an exchange's REST poll returning its recent trades), or a
record redelivered. The repeat has a new event id and, from a restarted ingest, a new arrival
number (`ingest_seq` starts at 0 again), so neither tells it apart. What stays is the
exchange's trade id and time: a repeat is a trade with the id and exchange time of one
already counted. Files without an id column get their row number as the id from the reader
(`row<N>`), a position in the file that is the same in every replay; the time in the key
keeps two merged files' row numbers apart.

Memory is bounded: the trades of the open bars and of the last few closed ones (by exchange
time, behind the newest trade counted), at most `max_ids`. A repeat older than that belongs to
a bar long emitted, which the bar builder refuses as `late_trade`: dead-lettered, never
counted twice either.
"""

from __future__ import annotations

from typing import Any

TradeKey = tuple[str, int]  # (trade id, exchange time ns)


class RecentTrades:
    __slots__ = ("_newest", "_seen", "dropped", "horizon_ns", "max_ids")

    def __init__(self, horizon_ns: int, max_ids: int) -> None:
        if horizon_ns <= 0 or max_ids <= 0:
            raise ValueError("the dedup window needs a positive horizon and size")
        self.horizon_ns = horizon_ns
        self.max_ids = max_ids
        # Insertion order is (about) exchange-time order: the oldest leave from the front.
        self._seen: dict[TradeKey, None] = {}
        self._newest = 0
        self.dropped = 0  # repeats dropped since the state began (snapshots keep it)

    def __len__(self) -> int:
        return len(self._seen)

    def repeated(self, trade_id: str, ts_event: int) -> bool:
        """True (and counted) when this trade was counted already."""
        if (trade_id, ts_event) in self._seen:
            self.dropped += 1
            return True
        return False

    def counted(self, trade_id: str, ts_event: int) -> None:
        """Remember a trade its bar builder took; forget what fell out of the window."""
        seen = self._seen
        seen[(trade_id, ts_event)] = None
        self._newest = max(self._newest, ts_event)
        floor = self._newest - self.horizon_ns
        while seen:
            oldest = next(iter(seen))
            if oldest[1] >= floor and len(seen) <= self.max_ids:
                break
            del seen[oldest]

    # -- snapshots --------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "ids": [trade_id for trade_id, _ in self._seen],
            "ts": [ts for _, ts in self._seen],
            "newest": self._newest,
            "dropped": self.dropped,
        }

    def load(self, data: dict[str, Any]) -> None:
        self._seen = dict.fromkeys(zip(data["ids"], data["ts"], strict=True))
        self._newest = int(data["newest"])
        self.dropped = int(data["dropped"])


def empty_state() -> dict[str, Any]:
    """The state of a window that has seen nothing (what older snapshots migrate to)."""
    return {"ids": [], "ts": [], "newest": 0, "dropped": 0}
