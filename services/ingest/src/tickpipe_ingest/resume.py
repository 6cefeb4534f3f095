"""Where a restarted ingest left off, read back from its own output topics.

Ingest keeps no position of its own: Kafka holds what it published. At start (`on_start`),
with resume on, a source reads the last records of each partition of md.trades.v1,
md.quotes.v1 and dlq.v1 (`Bus.tail`) and keeps, per topic and instrument, the last record
found (its arrival number `ingest_seq`, exchange time and trade id), and the last dead letter
of its own source (its original bytes).

- A file replay (`SkipPublished`) reads its files from the start again, so validation,
  numbering and gap tracking are rebuilt exactly as the first run had them, but publishes
  nothing of an instrument's trades (quotes) up to and including the last one found on
  md.trades.v1 (md.quotes.v1). What follows, records lost in flight when it died included,
  is published, numbered on from there. Dead letters are published from the one after the
  last found on dlq.v1 (the same bytes); data-quality events, which carry no number, and dead
  letters when none of the source's was found, once every instrument has passed its last
  record.
- An exchange stream (`SkipSeenTrades`) skips trades at or below the last trade id found per
  instrument (ids that are not numbers: up to the last one's exchange time) and numbers on
  from the last arrival number found, so that feature's arrival order carries on instead of
  restarting.

The tail read covers the last `TAIL_RECORDS` records of each partition: an instrument whose
last record is older than that (a partition shared with many busier ones) is taken as
published up to where the newest instruments found stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass

import orjson

from tickpipe.bus.base import Bus, Record
from tickpipe.marketdata import TradeData
from tickpipe.messages import DeadLetter, QuoteTick, TradeTick
from tickpipe.service import Emit
from tickpipe.topics import DLQ, QUOTES, TRADES
from tickpipe_ingest import metrics

log = logging.getLogger(__name__)

TAIL_RECORDS = 1_000  # read back per partition


@dataclass(frozen=True, slots=True)
class Last:
    """An instrument's last record on one of ingest's topics."""

    ingest_seq: int | None
    ts_event: int
    trade_id: str | None = None  # trades only


class ResumePoint:
    """Per (topic, `exchange:symbol`), the last record ingest's topics hold; per source, the
    bytes of its last dead letter."""

    def __init__(
        self,
        last: dict[tuple[str, str], Last] | None = None,
        letters: dict[str, str] | None = None,
    ) -> None:
        self._last = dict(last or {})
        self._letters = dict(letters or {})

    @classmethod
    def read(cls, bus: Bus, client_id: str, window: int = TAIL_RECORDS) -> ResumePoint:
        return cls.of(bus.tail((TRADES, QUOTES, DLQ), count=window, client_id=client_id))

    @classmethod
    def of(cls, records: Iterable[Record]) -> ResumePoint:
        """From records in offset order per partition (an instrument's records all share one
        partition per topic, so its last one comes last). Records that are not ingest's
        (undecodable, other services' dead letters) count for nothing."""
        last: dict[tuple[str, str], Last] = {}
        letters: dict[str, str] = {}
        for r in records:
            if r.topic == DLQ:
                letter = _letter(r)
                if letter is not None:
                    letters[letter[0]] = letter[1]
                continue
            found = _last(r)
            if found is not None:
                last[(r.topic, found[0])] = found[1]
        return cls(last, letters)

    def __bool__(self) -> bool:
        return bool(self._last or self._letters)

    def letter(self, source: str) -> str | None:
        """The original bytes (base64) of the last dead letter `source` published."""
        return self._letters.get(source)

    def items(self) -> Iterator[tuple[tuple[str, str], Last]]:
        return iter(self._last.items())

    def last(self, topic: str, key: str) -> Last | None:
        return self._last.get((topic, key))

    def next_seqs(self) -> dict[str, int]:
        """Per instrument, the arrival number to carry on from."""
        out: dict[str, int] = {}
        for (_, key), last in self._last.items():
            if last.ingest_seq is not None:
                out[key] = max(out.get(key, 0), last.ingest_seq + 1)
        return out

    def describe(self) -> dict[str, object]:
        """For the start-up log line."""
        return {
            f"{topic} {key}": last.ingest_seq if last.ingest_seq is not None else last.trade_id
            for (topic, key), last in sorted(self._last.items())
        }


def _letter(record: Record) -> tuple[str, str] | None:
    try:
        body = orjson.loads(record.value)
        if body.get("service") != "ingest":
            return None
        return str(body["source"]), str(body["payload_b64"])
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None


def _last(record: Record) -> tuple[str, Last] | None:
    try:
        body = orjson.loads(record.value)
        key = f"{body['exchange']}:{body['symbol']}"
        seq = body.get("ingest_seq")
        trade_id = body.get("trade_id") if record.topic == TRADES else None
        return key, Last(
            None if seq is None else int(seq),
            int(body["ts_event"]),
            None if trade_id is None else str(trade_id),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


class SkipPublished:
    """A file replay's filter: what an earlier run of it published is not published again.

    `keys` are the instruments of the files: a last record of another instrument (the topic
    also holds other feeds) is nobody's to wait for.
    """

    def __init__(
        self, point: ResumePoint, source: str, keys: Collection[str] | None = None
    ) -> None:
        self._waiting = {
            tk: last
            for tk, last in point.items()
            if last.ingest_seq is not None and (keys is None or tk[1] in keys)
        }
        self._passed: set[tuple[str, str]] = set()
        self._letter = point.letter(source)  # skip dead letters up to this one
        self._letters_known = self._letter is not None
        self._source = source
        self._counter = metrics.RESUME_SKIPPED.labels(source)
        self.skipped = 0
        self.mismatched: list[str] = []

    @property
    def done(self) -> bool:
        """Every instrument past its last published record, and the source past its last
        dead letter: nothing more to skip."""
        return not self._waiting and self._letter is None

    def admitted(self, emits: Sequence[Emit]) -> list[Emit]:
        out = [e for e in emits if self._admit(e)]
        skipped = len(emits) - len(out)
        if skipped:
            self.skipped += skipped
            self._counter.inc(skipped)
        if self.done:
            log.info(
                "resumed after what an earlier run published",
                extra={"source": self._source, "skipped": self.skipped},
            )
        return out

    def _admit(self, emit: Emit) -> bool:
        event = emit.event
        if isinstance(event, DeadLetter) and self._letters_known:
            if self._letter is None:
                return True  # after the last one published
            if event.payload_b64 == self._letter:
                self._letter = None
            return False
        if not isinstance(event, (TradeTick, QuoteTick)) or event.ingest_seq is None:
            return self.done  # data-quality events (and letters, none found): once all past
        tk = (emit.topic, event.key)
        last = self._waiting.get(tk)
        if last is None:
            return tk in self._passed or self.done
        assert last.ingest_seq is not None
        if event.ingest_seq < last.ingest_seq:
            return False
        del self._waiting[tk]
        self._passed.add(tk)
        if event.ingest_seq == last.ingest_seq and _same(event, last):
            return False  # the last one published: from the next on
        # The file (or the settings) changed since: this is not what was published under
        # that number. Numbering carries on regardless, so consumers see no step back.
        self.mismatched.append(f"{tk[0]} {tk[1]}")
        log.warning(
            "resume point not found in the file: publishing from there on",
            extra={
                "source": self._source,
                "topic": tk[0],
                "instrument": tk[1],
                "published_seq": last.ingest_seq,
                "file_seq": event.ingest_seq,
            },
        )
        return event.ingest_seq > last.ingest_seq


def _same(event: TradeTick | QuoteTick, last: Last) -> bool:
    if event.ts_event != last.ts_event:
        return False
    return not isinstance(event, TradeTick) or event.trade_id == last.trade_id


def _numeric(trade_id: str | None) -> int | None:
    if trade_id is None or not (trade_id.isascii() and trade_id.isdigit()):
        return None
    return int(trade_id)


class SkipSeenTrades:
    """An exchange stream's filter: trades at or below the last one md.trades.v1 holds per
    instrument (by numeric trade id; by exchange time and id where ids are not numbers)."""

    def __init__(self, point: ResumePoint, source: str) -> None:
        self._last = {key: last for (topic, key), last in point.items() if topic == TRADES}
        self._counter = metrics.RESUME_SKIPPED.labels(source)
        self.skipped = 0

    def last_trade_ids(self) -> dict[str, int]:
        """Per instrument, the last numeric trade id published (for gap tracking)."""
        out: dict[str, int] = {}
        for key, last in self._last.items():
            tid = _numeric(last.trade_id)
            if tid is not None:
                out[key] = tid
        return out

    def skip(self, trade: TradeData) -> bool:
        last = self._last.get(f"{trade.exchange}:{trade.symbol}")
        if last is None:
            return False
        tid, last_tid = _numeric(trade.trade_id), _numeric(last.trade_id)
        if tid is not None and last_tid is not None:
            seen = tid <= last_tid
        else:
            seen = trade.ts_event < last.ts_event or (
                trade.ts_event == last.ts_event and trade.trade_id == last.trade_id
            )
        if seen:
            self.skipped += 1
            self._counter.inc()
        return seen
