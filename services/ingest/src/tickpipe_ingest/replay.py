"""File replay source: recorded market data at maximum speed, ×N real time, or a fixed rate.

Any format `tickpipe.marketdata.read_market_data` reads; several files (say trades and quotes
of one session) are merged by exchange time. Events keep their exchange timestamps.

With `resume`, a restarted replay carries on after the last record an earlier run published
(found on md.trades.v1 / md.quotes.v1 in `on_start`, see `resume`): the files are read and
validated from the start again, unpaced and unpublished up to there. `limit` counts from the
start of the files, so a resumed run ends where an uninterrupted one would.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from tickpipe.clock import Clock, SimClock
from tickpipe.marketdata import ParseError, QuoteData, TradeData, read_market_data
from tickpipe.service import Emit, ServiceContext
from tickpipe_ingest.normalize import Normalizer
from tickpipe_ingest.resume import ResumePoint, SkipPublished

Item = TradeData | QuoteData | ParseError
log = logging.getLogger(__name__)

# Paced sources publish a record up to this early rather than sleep for less: at a few
# thousand records/s a sleep per record (a syscall, a wake-up, the GIL back) cost ~45 µs of
# CPU a record (bench/pipeline.py, ingest at 3,900 records/s: 59 µs a record against 12 µs
# unpaced); in bursts of a millisecond the rate holds and the producer batches better.
PACE_SLACK_S = 0.001


class FileReplaySource:
    """Replays files `loops` times (later loops shifted in time and trade id).

    Pacing: `rate` records/s if set, else `speed` × real time (0 = as fast as possible).
    Under a SimClock, the clock follows the data's exchange time instead of sleeping.
    `start_ns`/`end_ns` keep records whose exchange time is in [start, end) (after the loop
    shift), for a backtest of part of a file.
    A format or layout that cannot be read fails here, at construction.
    """

    def __init__(
        self,
        path: Path | Sequence[Path],
        normalize: Normalizer,
        clock: Clock,
        *,
        fmt: str = "auto",
        exchange: str | None = None,
        symbol: str | None = None,
        columns: Mapping[str, str] | None = None,
        speed: float = 0.0,
        rate: float | None = None,
        loops: int = 1,
        limit: int | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        stop: threading.Event | None = None,
        resume: bool = False,
    ) -> None:
        self.paths = [path] if isinstance(path, Path) else list(path)
        self.path = self.paths[0]
        self._fmt = fmt
        self._exchange = exchange
        self._symbol = symbol
        self._columns = dict(columns or {})
        self._normalize = normalize
        self._clock = clock
        self._speed = speed
        self._rate = rate
        self._loops = loops
        self._limit = limit
        self._start = start_ns
        self._end = end_ns
        self._sleep = sleep
        self._stop = stop
        self._resume = resume
        self._point: ResumePoint | None = None
        self.skip: SkipPublished | None = None  # while resuming
        self._opened: list[Iterator[Item]] | None = self._open()

    def on_start(self, ctx: ServiceContext) -> Sequence[Emit]:
        """With resume on, finds where an earlier run stopped publishing (see `resume`)."""
        if self._resume:
            self.resume_from(ResumePoint.read(ctx.bus, f"ingest-resume-{ctx.platform.instance_id}"))
        return ()

    def resume_from(self, point: ResumePoint) -> None:
        """Publish only what comes after `point` (what ingest's topics hold already)."""
        self._point = point or None
        log.info(
            "resuming" if point else "nothing published before: starting at the beginning",
            extra={"source": self._normalize.source, "last": point.describe()},
        )

    def _open(self) -> list[Iterator[Item]]:
        return [
            read_market_data(
                p, self._fmt, exchange=self._exchange, symbol=self._symbol, columns=self._columns
            )
            for p in self.paths
        ]

    def _read(self) -> list[Item]:
        readers, self._opened = self._opened or self._open(), None
        if len(readers) == 1:
            return list(readers[0])
        return [item for _, _, item in heapq.merge(*(_timed(r, i) for i, r in enumerate(readers)))]

    def _items(self) -> Iterator[Item]:
        items = self._read()
        if self._point is not None:
            keys = {f"{i.exchange}:{i.symbol}" for i in items if not isinstance(i, ParseError)}
            self.skip = SkipPublished(self._point, self._normalize.source, keys)
        stamps = [i.ts_event for i in items if not isinstance(i, ParseError)]
        # Quotes may carry receive time, trades exchange time: shift by the whole range.
        span = (max(stamps) - min(stamps) + 1_000_000_000) if stamps else 0
        seqs = [i.sequence for i in items if isinstance(i, QuoteData) and i.sequence is not None]
        seq_span = (max(seqs) - min(seqs) + 1) if seqs else 0
        start, end = self._start, self._end
        for loop in range(self._loops):
            for original in items:
                item = _shifted(original, loop, loop * span, loop * seq_span) if loop else original
                if isinstance(item, ParseError) or (
                    (start is None or item.ts_event >= start)
                    and (end is None or item.ts_event < end)
                ):
                    yield item  # a bad line is reported wherever it sits

    def __iter__(self) -> Iterator[Emit]:
        sim = self._clock if isinstance(self._clock, SimClock) else None
        started = time.monotonic()
        first_ts: int | None = None
        paced = 0  # records published at the pace asked for (none of those skipped)
        for n, item in enumerate(self._items()):
            if self._limit is not None and n >= self._limit:
                return
            if self._stop is not None and self._stop.is_set():
                return
            ts = None if isinstance(item, ParseError) else item.ts_event
            if sim is not None and ts is not None:
                sim.advance_to(ts)
            skip = self.skip
            if skip is not None and not skip.done:
                # Published by an earlier run: rebuilt (numbering, validation), not sent.
                yield from skip.admitted(self._normalize.emits(item))
                started = time.monotonic()  # the pace starts after the skipped part
                continue
            if sim is None and self._rate:
                self._wait_until(started + paced / self._rate)
            elif sim is None and self._speed > 0 and ts is not None:
                first_ts = ts if first_ts is None else first_ts
                self._wait_until(started + (ts - first_ts) / 1e9 / self._speed)
            paced += 1
            yield from self._normalize.emits(item)

    def _wait_until(self, deadline: float) -> None:
        delay = deadline - time.monotonic()
        if delay > PACE_SLACK_S:
            self._sleep(delay)


def _timed(items: Iterator[Item], order: int) -> Iterator[tuple[int, int, Item]]:
    """(time, file order, item) for a merge; a parse error keeps its neighbour's time."""
    ts = 0
    for item in items:
        if not isinstance(item, ParseError):
            ts = item.ts_event
        yield ts, order, item


def _shifted(item: Item, loop: int, shift_ns: int, shift_seq: int) -> Item:
    """A later loop's copy: times (and sequences) moved past the previous loop, trade ids
    kept unique."""
    # The constructors directly, not `dataclasses.replace` (which walks the fields each call:
    # 1.3 -> 0.5 µs a record); tests/unit/test_ingest_sources.py checks no field is left out.
    if isinstance(item, ParseError):
        return item
    if isinstance(item, TradeData):
        return TradeData(
            item.exchange,
            item.symbol,
            f"{item.trade_id}-{loop}",
            item.price,
            item.size,
            item.side,
            item.ts_event + shift_ns,
            item.raw,
        )
    return QuoteData(
        item.exchange,
        item.symbol,
        item.bid,
        item.bid_size,
        item.ask,
        item.ask_size,
        item.ts_event + shift_ns,
        item.raw,
        None if item.sequence is None else item.sequence + shift_seq,
    )
