"""Parsed market data -> validated events, or dead letters with a reason."""

from __future__ import annotations

import base64
import logging
from typing import Any

from tickpipe.clock import Clock
from tickpipe.ids import EventIds
from tickpipe.marketdata import ParseError, QuoteData, TradeData
from tickpipe.messages import DeadLetter, QuoteTick, TradeTick
from tickpipe.service import Emit
from tickpipe.telemetry import metrics as platform_metrics
from tickpipe.topics import DLQ, QUOTES, TRADES
from tickpipe_ingest import metrics
from tickpipe_ingest.domain.validation import Validator

SERVICE = "ingest"
log = logging.getLogger(__name__)
# Dead letters are all on dlq.v1 and counted; the log shows the first few of each reason
# and then every 1000th, so a flood of bad input cannot flood the logs too.
_LOG_FIRST, _LOG_EVERY = 10, 1000


class Normalizer:
    """Validates each parsed record and builds its event (or its dead letter).

    `live` sources (exchanges, the generator) also record the source lag, now minus the
    exchange time; for a file replayed at full speed that would only measure the file's age.
    """

    def __init__(
        self, clock: Clock, ids: EventIds, source: str, validator: Validator, *, live: bool = False
    ) -> None:
        self._clock = clock
        self._ids = ids
        self.source = source
        self.validator = validator
        self._live = live
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
        letter = DeadLetter(
            event_id=self._ids.new(),
            ts_event=now,
            ts_init=now,
            service=SERVICE,
            source=self.source,
            reason=reason,
            detail=detail,
            payload_b64=base64.b64encode(raw).decode(),
        )
        return Emit(DLQ, letter, key=self.source)

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
            ),
        )
