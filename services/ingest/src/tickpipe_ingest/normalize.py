"""Parsed market data -> validated events, or dead letters with a reason; and the feed's
data-quality events (`md.quality.v1`) in order with them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from tickpipe.clock import Clock
from tickpipe.ids import EventIds
from tickpipe.marketdata import ParseError, QuoteData, TradeData
from tickpipe.messages import (
    DataQuality,
    DeadLetter,
    FeedStatus,
    QualityIssue,
    QuoteTick,
    TradeTick,
)
from tickpipe.service import Emit
from tickpipe.telemetry import metrics as platform_metrics
from tickpipe.topics import DLQ, QUALITY, QUOTES, TRADES
from tickpipe_ingest import metrics
from tickpipe_ingest.domain.quality import DataQualityEvent, Gap
from tickpipe_ingest.domain.validation import Validator
from tickpipe_ingest.quality import QualityReporter, StreamKey, stream_key

SERVICE = "ingest"
log = logging.getLogger(__name__)
# Dead letters are all on dlq.v1 and counted; the log shows the first few of each reason
# and then every 1000th, so a flood of bad input cannot flood the logs too.
_LOG_FIRST, _LOG_EVERY = 10, 1000


class Normalizer:
    """Validates each parsed record and builds its event (or its dead letter).

    `live` sources (exchanges, the generator) also record the source lag, now minus the
    exchange time; for a file replayed at full speed that would only measure the file's age.

    Sources call `emits` per record: with a `QualityReporter` (`quality`, by default the
    validator's if it is one) the record comes with the data-quality events it brings about.
    """

    def __init__(
        self,
        clock: Clock,
        ids: EventIds,
        source: str,
        validator: Validator,
        *,
        live: bool = False,
        quality: QualityReporter | None = None,
    ) -> None:
        self._clock = clock
        self._ids = ids
        self.source = source
        self.validator = validator
        self._live = live
        if quality is None and isinstance(validator.quality, QualityReporter):
            quality = validator.quality
        self.quality = quality
        self._seq: dict[str, int] = {}
        self._degraded_ids: dict[StreamKey, str] = {}  # the open episode's degraded event
        self.counts = {"trades": 0, "quotes": 0, "dead_letters": 0}
        self.rejects: dict[str, int] = {}
        self._children: dict[tuple[str, str], Any] = {}  # `.labels()` per record is costly
        self._lag = {kind: metrics.SOURCE_LAG.labels(source, kind) for kind in ("trade", "quote")}

    def _messages(self, symbol: str, kind: str) -> Any:
        child = self._children.get((symbol, kind))
        if child is None:
            child = metrics.MESSAGES.labels(self.source, symbol, kind)
            self._children[(symbol, kind)] = child
        return child

    def dead_letter(self, reason: str, detail: str, raw: bytes) -> Emit:
        now = self._clock.now_ns()
        self.counts["dead_letters"] += 1
        n = self.rejects[reason] = self.rejects.get(reason, 0) + 1
        platform_metrics.DEAD_LETTERS.labels(SERVICE, self.source, reason).inc()
        metrics.REJECTS.labels(self.source, reason).inc()
        if n <= _LOG_FIRST or n % _LOG_EVERY == 0:
            log.warning(
                "dead letter",
                extra={"source": self.source, "reason": reason, "detail": detail[:300], "count": n},
            )
        # Bounded (head, size, sha256 past 64 KiB): a raw line must not outgrow dlq.v1.
        letter = DeadLetter.of(
            event_id=self._ids.new(),
            ts_ns=now,
            service=SERVICE,
            source=self.source,
            reason=reason,
            detail=detail,
            value=raw,
        )
        return Emit(DLQ, letter, key=self.source)

    def emits(self, item: TradeData | QuoteData | ParseError) -> list[Emit]:
        """The record's event in order with the data-quality events: `degraded` ones reported
        so far (a gap the record reveals, a stale stream) before it, and `healthy` after it
        when it is the first record of a degraded stream."""
        emit = self(item)
        quality = self.quality
        if quality is None or quality.quiet:  # the common case: one event, nothing around it
            return [emit]
        return self._with_quality(emit)

    def quality_emits(self) -> list[Emit]:
        """`degraded` events reported while no record came (a silent, stale feed)."""
        return self._with_quality(None)

    def _with_quality(self, emit: Emit | None) -> list[Emit]:
        if self.quality is None:
            return [] if emit is None else [emit]
        published = _stream_of(emit)
        reports, healed = self.quality.take(published)
        out = [self._degraded(report) for report in reports]
        if emit is not None:
            out.append(emit)
        if healed and published is not None:
            out.append(self._healthy(published))
        return out

    def _degraded(self, report: DataQualityEvent) -> Emit:
        now = self._clock.now_ns()
        key = stream_key(report)
        if isinstance(report, Gap):
            detail = f"{report.field} {report.expected}..{report.received - 1} missing"
            fields: dict[str, Any] = {
                "issue": QualityIssue.GAP,
                "expected": report.expected,
                "received": report.received,
                "detail": f"{detail} ({report.missing})",
            }
        else:
            fields = {
                "issue": QualityIssue.STALE,
                "silent_ns": report.silent_ns,
                "detail": f"no {report.stream} for {report.silent_ns / 1e9:.1f} s",
            }
        event = DataQuality(
            event_id=self._ids.new(),
            ts_event=now,
            ts_init=now,
            exchange=report.exchange,
            symbol=report.symbol,
            source=self.source,
            stream=report.stream,
            status=FeedStatus.DEGRADED,
            **fields,
        )
        self._degraded_ids[key] = event.event_id
        return Emit(QUALITY, event)

    def _healthy(self, key: StreamKey) -> Emit:
        now = self._clock.now_ns()
        exchange, symbol, stream = key
        event = DataQuality(
            event_id=self._ids.new(),
            ts_event=now,
            ts_init=now,
            causation_id=self._degraded_ids.pop(key, None),
            exchange=exchange,
            symbol=symbol,
            source=self.source,
            stream=stream,
            status=FeedStatus.HEALTHY,
        )
        return Emit(QUALITY, event)

    def __call__(self, item: TradeData | QuoteData | ParseError) -> Emit:
        if isinstance(item, ParseError):
            return self.dead_letter(item.reason, item.detail, item.raw)
        now = self._clock.now_ns()
        if isinstance(item, TradeData):
            reason = self.validator.trade(item, now)
            if reason:
                return self.dead_letter(reason, f"trade {item.trade_id}", item.raw)
            self.counts["trades"] += 1
            self._messages(item.symbol, "trade").inc()
            if self._live:
                self._lag["trade"].observe(max(0, now - item.ts_event) / 1e9)
            return Emit(
                TRADES,
                TradeTick(
                    event_id=self._ids.new(),
                    ts_event=item.ts_event,
                    ts_init=now,
                    exchange=item.exchange,
                    symbol=item.symbol,
                    trade_id=item.trade_id,
                    price=item.price,
                    size=item.size,
                    side="buy" if item.side == "buy" else "sell",
                    ingest_seq=self._arrival(item.exchange, item.symbol),
                ),
            )
        reason = self.validator.quote(item, now)
        if reason:
            return self.dead_letter(reason, f"quote {item.symbol}", item.raw)
        self.counts["quotes"] += 1
        self._messages(item.symbol, "quote").inc()
        if self._live:
            self._lag["quote"].observe(max(0, now - item.ts_event) / 1e9)
        return Emit(
            QUOTES,
            QuoteTick(
                event_id=self._ids.new(),
                ts_event=item.ts_event,
                ts_init=now,
                exchange=item.exchange,
                symbol=item.symbol,
                bid=item.bid,
                bid_size=item.bid_size,
                ask=item.ask,
                ask_size=item.ask_size,
                ingest_seq=self._arrival(item.exchange, item.symbol),
            ),
        )

    def carry_on(self, next_seqs: Mapping[str, int]) -> None:
        """Number on from an earlier run (`exchange:symbol` -> the next arrival number), so
        that consumers see the instrument's records continue rather than restart at 0."""
        for key, n in next_seqs.items():
            self._seq[key] = max(self._seq.get(key, 0), n)

    def _arrival(self, exchange: str, symbol: str) -> int:
        """The instrument's next arrival number, shared by its trades and quotes (valid
        records only, so consumers see no gaps): see `tickpipe.arrival`."""
        key = f"{exchange}:{symbol}"
        n = self._seq.get(key, 0)
        self._seq[key] = n + 1
        return n


def _stream_of(emit: Emit | None) -> StreamKey | None:
    """(exchange, symbol, stream) of a published trade or quote; None for a dead letter."""
    if emit is None:
        return None
    event = emit.event
    if isinstance(event, TradeTick):
        return (event.exchange, event.symbol, "trades")
    if isinstance(event, QuoteTick):
        return (event.exchange, event.symbol, "quotes")
    return None
