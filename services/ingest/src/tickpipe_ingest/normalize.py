"""Parsed market data -> validated events, or dead letters with a reason."""

from __future__ import annotations

import base64

from tickpipe.clock import Clock
from tickpipe.ids import EventIds
from tickpipe.marketdata import ParseError, QuoteData, TradeData
from tickpipe.messages import DeadLetter, QuoteTick, TradeTick
from tickpipe.service import Emit
from tickpipe.telemetry import metrics
from tickpipe.topics import DLQ, QUOTES, TRADES
from tickpipe_ingest.domain.validation import Validator

SERVICE = "ingest"


class Normalizer:
    def __init__(self, clock: Clock, ids: EventIds, source: str, validator: Validator) -> None:
        self._clock = clock
        self._ids = ids
        self._source = source
        self._validator = validator
        self.counts = {"trades": 0, "quotes": 0, "dead_letters": 0}

    def dead_letter(self, reason: str, detail: str, raw: bytes) -> Emit:
        now = self._clock.now_ns()
        self.counts["dead_letters"] += 1
        metrics.DEAD_LETTERS.labels(SERVICE, self._source, reason).inc()
        letter = DeadLetter(
            event_id=self._ids.new(),
            ts_event=now,
            ts_init=now,
            service=SERVICE,
            source=self._source,
            reason=reason,
            detail=detail,
            payload_b64=base64.b64encode(raw).decode(),
        )
        return Emit(DLQ, letter, key=self._source)

    def __call__(self, item: TradeData | QuoteData | ParseError) -> Emit:
        if isinstance(item, ParseError):
            return self.dead_letter(item.reason, item.detail, item.raw)
        now = self._clock.now_ns()
        if isinstance(item, TradeData):
            reason = self._validator.trade(item, now)
            if reason:
                return self.dead_letter(reason, f"trade {item.trade_id}", item.raw)
            self.counts["trades"] += 1
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
        reason = self._validator.quote(item, now)
        if reason:
            return self.dead_letter(reason, "quote", item.raw)
        self.counts["quotes"] += 1
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
