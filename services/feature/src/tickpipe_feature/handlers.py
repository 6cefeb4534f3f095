"""Trades and quotes -> bars -> feature vectors on `features.v1`.

Trades and quotes are first put back in the order ingest received them (`ArrivalOrder`,
by `ingest_seq`), so the vectors do not depend on how the two topics interleave on this
consumer: a Kafka deployment and a backtest compute the same features. Then quotes update
the instrument's latest top of book; trades feed its bar builder, and every bar the trade
completes (empty ones included) goes through the feature engine, whose vector is emitted
once warm, with the trade's `ingest_seq` and the touch at that point. A trade too late for
its bar is refused (`late_trade`): dead-lettered with its bytes, counted, never lost
quietly.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from tickpipe.arrival import MarketArrival
from tickpipe.cache.base import Cache
from tickpipe.ids import EventIds
from tickpipe.messages import DeadLetter, Event, FeatureVector, QuoteTick, TradeTick, encode
from tickpipe.service import Emit, Rejected
from tickpipe.telemetry.metrics import DEAD_LETTERS
from tickpipe.topics import DLQ, FEATURES, TRADES
from tickpipe_feature import snapshot
from tickpipe_quant.bars import LateTrade, TimeBarBuilder
from tickpipe_quant.features import FeatureEngine, feature_set_name

SNAPSHOT_FORMAT = 2  # 2: the arrival-order buffer


class _Instrument:
    __slots__ = ("bars", "engine")

    def __init__(self, interval_ns: int, allowed_lateness_ns: int) -> None:
        self.bars = TimeBarBuilder(interval_ns, allowed_lateness_ns)
        self.engine = FeatureEngine()


class FeatureHandler:
    def __init__(
        self,
        ids: EventIds,
        cache: Cache,
        bar_interval_ns: int,
        cache_ttl_s: float = 300.0,
        allowed_lateness_ns: int = 0,
    ) -> None:
        self._ids = ids
        self._cache = cache
        self._interval = bar_interval_ns
        self._lateness = allowed_lateness_ns
        self._ttl = cache_ttl_s
        self.feature_set = feature_set_name(bar_interval_ns)
        self._state: dict[str, _Instrument] = {}
        self.arrival = MarketArrival()

    def _instrument(self, key: str) -> _Instrument:
        state = self._state.get(key)
        if state is None:
            state = self._state[key] = _Instrument(self._interval, self._lateness)
        return state

    def late_trades(self, key: str) -> int:
        """Trades refused as too late for `key` since the state began (snapshots keep it)."""
        state = self._state.get(key)
        return 0 if state is None else state.bars.late

    def handle(self, event: Event, topic: str, now_ns: int) -> Sequence[Emit]:
        if not isinstance(event, (TradeTick, QuoteTick)):
            return ()
        out: list[Emit] = []
        for ready in self.arrival.push(event.key, event.ingest_seq, event):
            if isinstance(ready, QuoteTick):
                engine = self._instrument(ready.key).engine
                engine.on_quote(ready.bid, ready.ask, ready.bid_size, ready.ask_size)
                continue
            try:
                out += self._on_trade(ready, now_ns)
            except LateTrade as exc:
                if ready is event:
                    raise Rejected("late_trade", str(exc)) from exc
                out.append(self._late(ready, str(exc), now_ns))  # held: not the runner's
        if out:
            latest = out[-1].event
            if isinstance(latest, FeatureVector):
                key = f"features:{latest.key}"
                self._cache.set(key, encode(latest), self._ttl)
        return out

    def _late(self, trade: TradeTick, detail: str, now_ns: int) -> Emit:
        """A late trade released from the arrival buffer: dead-lettered here, as the runner
        would have done had it been the record in hand."""
        DEAD_LETTERS.labels("feature", TRADES, "late_trade").inc()
        letter = DeadLetter(
            event_id=self._ids.new(),
            ts_event=now_ns,
            ts_init=now_ns,
            causation_id=trade.event_id,
            service="feature",
            source=TRADES,
            reason="late_trade",
            detail=detail,
            key=trade.key,
            payload_b64=base64.b64encode(encode(trade)).decode(),
        )
        return Emit(DLQ, letter, key=TRADES)

    def _on_trade(self, event: TradeTick, now_ns: int) -> list[Emit]:
        state = self._instrument(event.key)
        bars = state.bars.add(event.ts_event, event.price, event.size, event.side == "buy")
        out: list[Emit] = []
        touch = state.engine.touch
        for bar in bars:
            values = state.engine.on_bar(bar)
            if values is None:
                continue  # warming up
            vector = FeatureVector(
                event_id=self._ids.new(),
                ts_event=bar.end,
                ts_init=now_ns,
                causation_id=event.event_id,
                exchange=event.exchange,
                symbol=event.symbol,
                feature_set=self.feature_set,
                bar_start=bar.start,
                close=bar.close,
                values=values,
                market_seq=event.ingest_seq,
                bid=None if touch is None else touch[0],
                ask=None if touch is None else touch[1],
            )
            out.append(Emit(FEATURES, vector))
        return out

    # -- Stateful ---------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {
            "format": SNAPSHOT_FORMAT,
            "feature_set": self.feature_set,
            "interval_ns": self._interval,
            "allowed_lateness_ns": self._lateness,
        }

    def snapshot(self) -> bytes:
        """Every instrument's bar builder and indicators (buffers, sums, last quote)."""
        instruments = {
            key: {"bars": s.bars.state(), "engine": s.engine.state()}
            for key, s in self._state.items()
        }
        arrival = self.arrival.to_json()
        return snapshot.dumps({**self._config(), "instruments": instruments, "arrival": arrival})

    def restore(self, data: bytes) -> None:
        """Replace the state with a snapshot taken by a handler configured the same way."""
        state = snapshot.loads(data)
        config = {k: state.get(k) for k in self._config()}
        if config != self._config():
            raise ValueError(f"snapshot taken with {config}, this handler runs {self._config()}")
        restored: dict[str, _Instrument] = {}
        for key, saved in state["instruments"].items():
            instrument = restored[key] = _Instrument(self._interval, self._lateness)
            instrument.bars.load(saved["bars"])
            instrument.engine.load(saved["engine"])
        self._state = restored
        self.arrival = MarketArrival.from_json(state.get("arrival", {}))
