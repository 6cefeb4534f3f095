"""Trades and quotes -> bars -> feature vectors on `features.v1`.

Trades and quotes are first put back in the order ingest received them (`ArrivalOrder`,
by `ingest_seq`), so the vectors do not depend on how the two topics interleave on this
consumer: a Kafka deployment and a backtest compute the same features. Then quotes update
the instrument's latest top of book; trades feed its bar builder, and every bar the trade
completes (empty ones included) goes through the feature engine, whose vector is emitted
once warm, with the trade's `ingest_seq` and the touch at that point. A trade too late for
its bar is refused (`late_trade`): dead-lettered with its bytes, counted, never lost
quietly. A trade counted already (same trade id and exchange time: an upstream that repeated
itself) is dropped and counted (`tickpipe_duplicates_total`), see `dedup`.

A vector's event id is derived from what it is (instrument, bar end, feature set), not drawn:
a record redone after a crash gives its vectors again under the same ids, and downstream
(inference's signal ids, risk's client order ids) they are repeats, not new events. The
latest vector per instrument goes to the cache best effort (`latest`): a cache failure never
costs an output.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from tickpipe.arrival import MarketArrival
from tickpipe.cache.base import Cache
from tickpipe.ids import EventIds, vector_id
from tickpipe.messages import DeadLetter, Event, FeatureVector, QuoteTick, TradeTick, encode
from tickpipe.service import Emit, Rejected
from tickpipe.telemetry.metrics import DEAD_LETTERS, DUPLICATES
from tickpipe.topics import DLQ, FEATURES, TRADES
from tickpipe_feature import snapshot
from tickpipe_feature.dedup import RecentTrades, empty_state
from tickpipe_quant.bars import LateTrade, TimeBarBuilder
from tickpipe_quant.features import FeatureEngine, feature_set_name

SNAPSHOT_FORMAT = 3  # 2: the arrival-order buffer; 3: the trades counted lately (dedup)
# Trades remembered per instrument against repeats: those of the open bars and of this many
# closed bars behind them, at most DEDUP_MAX_IDS.
DEDUP_BARS = 10
DEDUP_MAX_IDS = 20_000


class _Instrument:
    __slots__ = ("bars", "engine", "recent")

    def __init__(self, interval_ns: int, allowed_lateness_ns: int, dedup: tuple[int, int]) -> None:
        self.bars = TimeBarBuilder(interval_ns, allowed_lateness_ns)
        self.engine = FeatureEngine()
        self.recent = RecentTrades(*dedup)


class FeatureHandler:
    def __init__(
        self,
        ids: EventIds,
        cache: Cache,
        bar_interval_ns: int,
        cache_ttl_s: float = 300.0,
        allowed_lateness_ns: int = 0,
        dedup_bars: int = DEDUP_BARS,
        dedup_max_ids: int = DEDUP_MAX_IDS,
    ) -> None:
        self._ids = ids
        self._cache = cache  # a ResilientCache in a process: a write never fails a record
        self._ttl = cache_ttl_s
        self._interval = bar_interval_ns
        self._lateness = allowed_lateness_ns
        # By exchange time behind the newest trade: the open bars, then `dedup_bars` more.
        self._dedup = (allowed_lateness_ns + (dedup_bars + 1) * bar_interval_ns, dedup_max_ids)
        self.feature_set = feature_set_name(bar_interval_ns)
        self._state: dict[str, _Instrument] = {}
        self.arrival = MarketArrival()
        self._duplicates = DUPLICATES.labels("feature", TRADES)

    def _instrument(self, key: str) -> _Instrument:
        state = self._state.get(key)
        if state is None:
            state = self._state[key] = _Instrument(self._interval, self._lateness, self._dedup)
        return state

    def late_trades(self, key: str) -> int:
        """Trades refused as too late for `key` since the state began (snapshots keep it)."""
        state = self._state.get(key)
        return 0 if state is None else state.bars.late

    def duplicate_trades(self, key: str) -> int:
        """Repeated trades dropped for `key` since the state began (snapshots keep it)."""
        state = self._state.get(key)
        return 0 if state is None else state.recent.dropped

    def running_ahead(self) -> list[tuple[str, str]]:
        """Market streams the arrival buffer holds too much of (flow control: `Paced`)."""
        return self.arrival.ahead()

    def handle(self, event: Event, topic: str, now_ns: int) -> Sequence[Emit]:
        if not isinstance(event, (TradeTick, QuoteTick)):
            return ()
        out: list[Emit] = []
        for ready in self.arrival.push(event.key, event.ingest_seq, event, topic):
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
                self._cache.set(f"features:{latest.key}", encode(latest), self._ttl)
        return out

    def _late(self, trade: TradeTick, detail: str, now_ns: int) -> Emit:
        """A late trade released from the arrival buffer: dead-lettered here, as the runner
        would have done had it been the record in hand."""
        DEAD_LETTERS.labels("feature", TRADES, "late_trade").inc()
        letter = DeadLetter.of(
            event_id=self._ids.new(),
            ts_ns=now_ns,
            causation_id=trade.event_id,
            service="feature",
            source=TRADES,
            reason="late_trade",
            detail=detail,
            key=trade.key,
            value=encode(trade),
        )
        return Emit(DLQ, letter, key=TRADES)

    def _on_trade(self, event: TradeTick, now_ns: int) -> list[Emit]:
        state = self._instrument(event.key)
        if state.recent.repeated(event.trade_id, event.ts_event):
            self._duplicates.inc()
            return []
        bars = state.bars.add(event.ts_event, event.price, event.size, event.side == "buy")
        state.recent.counted(event.trade_id, event.ts_event)  # not a late one: it counts
        out: list[Emit] = []
        touch = state.engine.touch
        for bar in bars:
            values = state.engine.on_bar(bar)
            if values is None:
                continue  # warming up
            vector = FeatureVector(
                event_id=vector_id(event.key, bar.end, self.feature_set),
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
        return self.snapshot_keys(self._keys())

    def restore(self, data: bytes) -> None:
        """Replace the state with a snapshot taken by a handler configured the same way."""
        self.drop_keys(self._keys())
        self.restore_keys(data)

    # -- KeyedState: the state is per instrument, so it can follow its partition -----------
    def _keys(self) -> set[str]:
        return {*self._state, *self.arrival.keys()}

    def snapshot_keys(self, keys: Collection[str]) -> bytes:
        """The state of these instruments only (a partition's share)."""
        instruments = {
            key: {"bars": s.bars.state(), "engine": s.engine.state(), "dedup": s.recent.state()}
            for key, s in self._state.items()
            if key in keys
        }
        arrival = self.arrival.to_json(keys)
        return snapshot.dumps({**self._config(), "instruments": instruments, "arrival": arrival})

    def restore_keys(self, data: bytes) -> list[str]:
        """Add a snapshot's instruments to the state; returns their keys."""
        state = snapshot.loads(data)
        config = {k: state.get(k) for k in self._config()}
        if config != self._config():
            raise ValueError(f"snapshot taken with {config}, this handler runs {self._config()}")
        for key, saved in state["instruments"].items():
            instrument = self._state[key] = _Instrument(self._interval, self._lateness, self._dedup)
            instrument.bars.load(saved["bars"])
            instrument.engine.load(saved["engine"])
            instrument.recent.load(saved["dedup"])
        arrival = state.get("arrival", {})
        self.arrival.load_json(arrival)
        return sorted({*state["instruments"], *arrival.get("next", {})})

    def drop_keys(self, keys: Collection[str]) -> None:
        for key in keys:
            self._state.pop(key, None)
        self.arrival.drop(keys)


def upgrade_v1(data: bytes) -> bytes:
    """A snapshot of the service's version 1 (handler format 2, or 1 without the arrival
    buffer) as version 2: every instrument gains an empty dedup window. The trades counted
    before the upgrade are not known, so a repeat of one of them is counted once more;
    once the window has filled (DEDUP_BARS bars) that can no longer happen."""
    state = snapshot.loads(data)
    if state.get("format") not in (1, 2):
        raise ValueError(f"not a version 1 feature snapshot (format {state.get('format')!r})")
    state["format"] = SNAPSHOT_FORMAT
    for saved in state["instruments"].values():
        saved["dedup"] = empty_state()
    return snapshot.dumps(state)
