"""Paper exchange against the live market stream, deterministic under a simulated clock.

- Time is market time: the latest `ts_event` seen per instrument, in the order ingest
  received the market data (the handler restores it; see `tickpipe.arrival`).
- An order placed at a point of the market stream (its `market_seq`, the trade that closed
  the bar it was decided on) becomes active at the first trade from that point on whose
  market time is at least `latency_ns` after the order's time; only then is it
  acknowledged, and only then can it trade. The stream may already be past that point
  when the order reaches us (it took three hops, the market data one): the exchange then
  finds the point in its recent history and trades as it would have then, so when an
  order arrives never changes what it gets. Without `market_seq` (or past the history)
  the order arrives "now".
- Market orders (and limit orders marketable on activation) fill in full at the touch
  plus slippage, as takers. Limit orders otherwise rest, and fill as makers at their price
  when the market trades *through* it (strictly: at-price prints are assumed to fill the
  queue ahead of us), for at most the volume that traded through — one print's volume is
  shared by the resting orders in arrival order.
- A quote only moves the touch; it never triggers a fill: what fills, and at what price, is
  decided on order arrival, on trades and on commands. Prices stay the floats they came as
  until an order prices on them (then `Decimal(str(x))`, exactly as received): most quotes
  and trades never meet an order.
- The recent history is snapshotted with the book (its newest `snapshot_history` events per
  instrument), so an order in flight across a restart still fills at its point.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from decimal import Decimal
from itertools import islice
from typing import Any

from tickpipe.messages import Liquidity, OrderType, Side
from tickpipe_execution.domain.events import Acked, Cancelled, Filled, Refused, VenueEvent
from tickpipe_execution.domain.orders import Order
from tickpipe_execution.domain.reconcile import ExchangeOrder, ExchangeState
from tickpipe_execution.domain.venue import RestingOrder

BPS = Decimal(10_000)
FEE_QUANTUM = Decimal("0.00000001")


@dataclass(frozen=True)
class PaperConfig:
    slippage_bps: Decimal = Decimal(1)
    taker_fee_bps: Decimal = Decimal("7.5")
    maker_fee_bps: Decimal = Decimal("2.5")
    tick_size: Decimal = Decimal("0.01")
    latency_ns: int = 0
    history: int = 20_000  # market events kept per instrument for orders that arrive late
    snapshot_history: int = 2_000  # of those, the newest kept across a restart


@dataclass(frozen=True, slots=True)
class Tick:
    """One market event as the exchange saw it: where, when, the touch after it, a print."""

    seq: int | None
    ts: int  # market time after the event
    touch: Touch | None
    trade: tuple[float, float] | None  # (price, size) for a trade, as received

    def to_json(self) -> list[Any]:
        t, trade = self.touch, self.trade
        return [
            self.seq,
            self.ts,
            *((None, None, None) if t is None else (t.bid, t.ask, t.ts)),
            *((None, None) if trade is None else trade),
        ]

    @classmethod
    def from_json(cls, d: list[Any]) -> Tick:
        seq, ts, bid, ask, touch_ts, price, size = d
        touch = None if bid is None else Touch(float(bid), float(ask), int(touch_ts))
        trade = None if price is None else (float(price), float(size))
        return cls(seq, int(ts), touch, trade)


@dataclass(frozen=True, slots=True)
class Touch:
    """The touch as quoted (floats); `Decimal` when an order prices on it."""

    bid: float
    ask: float
    ts: int

    @property
    def bid_price(self) -> Decimal:
        return Decimal(str(self.bid))

    @property
    def ask_price(self) -> Decimal:
        return Decimal(str(self.ask))


@dataclass(frozen=True)
class PaperFill:
    price: Decimal
    qty: Decimal
    fee: Decimal


@dataclass(frozen=True)
class PaperOrder:
    """An order as the paper exchange holds it (the exchange's book, not the OMS)."""

    client_order_id: str
    key: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None
    active_at: int
    active: bool = False
    filled: Decimal = Decimal(0)
    fills: int = 0
    after_seq: int | None = None  # not active before this point of the market stream

    @property
    def leaves(self) -> Decimal:
        return self.quantity - self.filled

    def to_json(self) -> list[Any]:
        limit = None if self.limit_price is None else str(self.limit_price)
        return [
            self.client_order_id,
            self.key,
            self.side,
            self.order_type.value,
            str(self.quantity),
            limit,
            self.active_at,
            self.active,
            str(self.filled),
            self.fills,
            self.after_seq,
        ]

    @classmethod
    def from_json(cls, d: list[Any]) -> PaperOrder:
        coid, key, side, kind, qty, limit, active_at, active, filled, fills, *rest = d
        return cls(
            coid,
            key,
            side,
            OrderType(kind),
            Decimal(qty),
            None if limit is None else Decimal(limit),
            int(active_at),
            bool(active),
            Decimal(filled),
            int(fills),
            rest[0] if rest else None,
        )


class PaperExchange:
    poll_interval_ns: int | None = None  # fills come back synchronously

    def __init__(self, config: PaperConfig | None = None) -> None:
        self.config = config or PaperConfig()
        self._touch: dict[str, Touch] = {}
        self._market_ts: dict[str, int] = {}
        self._book: dict[str, PaperOrder] = {}  # insertion order is arrival (time) priority
        self._pending: dict[str, None] = {}  # not yet active (latency): an ordered set
        self._ticks: dict[str, deque[Tick]] = {}  # recent market events
        self.late_beyond_history = 0  # orders whose point had left the history

    # -- state ------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        keep = self.config.snapshot_history
        return {
            "touch": {k: [t.bid, t.ask, t.ts] for k, t in self._touch.items()},
            "ts": self._market_ts,
            "book": [o.to_json() for o in self._book.values()],
            "ticks": {
                k: [t.to_json() for t in islice(ticks, max(0, len(ticks) - keep), None)]
                for k, ticks in self._ticks.items()
            },
        }

    def restore(self, data: dict[str, Any]) -> None:
        # Older snapshots wrote prices as decimal strings of the floats received: float()
        # gives those floats back.
        self._touch = {
            k: Touch(float(b), float(a), int(ts)) for k, (b, a, ts) in data["touch"].items()
        }
        self._market_ts = {k: int(v) for k, v in data["ts"].items()}
        self._ticks = {
            k: deque((Tick.from_json(t) for t in ticks), maxlen=self.config.history)
            for k, ticks in data.get("ticks", {}).items()
        }
        self._book = {}
        self._pending = {}
        for raw in data["book"]:
            o = PaperOrder.from_json(raw)
            self._book[o.client_order_id] = o
            if not o.active:
                self._pending[o.client_order_id] = None

    def adopt(self, orders: list[RestingOrder]) -> None:
        """Rests open limit orders again, active at once, in the given (time) order; a
        market order still open had no liquidity and stays unfilled."""
        for o in orders:
            if o.client_order_id in self._book or o.order_type is not OrderType.LIMIT:
                continue
            self._book[o.client_order_id] = PaperOrder(
                o.client_order_id,
                o.key,
                o.side,
                o.order_type,
                o.quantity,
                o.limit_price,
                active_at=0,
                active=True,
                filled=o.filled,
            )

    def touch(self, key: str) -> Touch | None:
        return self._touch.get(key)

    def market_time(self, key: str) -> int | None:
        return self._market_ts.get(key)

    def open_orders(self) -> list[PaperOrder]:
        return list(self._book.values())

    # -- market data ------------------------------------------------------------------------

    def _advance(self, key: str, ts: int) -> None:
        self._market_ts[key] = max(self._market_ts.get(key, ts), ts)

    def _record(self, key: str, seq: int | None, trade: tuple[float, float] | None) -> None:
        ticks = self._ticks.get(key)
        if ticks is None:
            ticks = self._ticks[key] = deque(maxlen=self.config.history)
        ticks.append(Tick(seq, self._market_ts[key], self._touch.get(key), trade))

    def on_quote(self, key: str, bid: float, ask: float, ts: int, seq: int | None = None) -> None:
        self._touch[key] = Touch(bid, ask, ts)
        self._advance(key, ts)
        self._record(key, seq, None)

    def on_trade(
        self, key: str, price: float, size: float, ts: int, seq: int | None = None
    ) -> list[VenueEvent]:
        self._advance(key, ts)
        self._record(key, seq, (price, size))
        out = self._activate_due(key, seq)
        return out + self._trade_through(key, price, size, self._market_ts[key])

    def _trade_through(
        self, key: str, price: float, size: float, ts: int, only: str | None = None
    ) -> list[VenueEvent]:
        """Resting limit orders the print trades through, in time priority (`only`: one
        order, replaying the history for it)."""
        out: list[VenueEvent] = []
        if not self._book:
            return out  # nothing rests: the print needs no Decimal
        px, volume = Decimal(str(price)), Decimal(str(size))
        for o in list(self._book.values()):
            if volume <= 0:
                break
            if o.key != key or not o.active or o.limit_price is None:
                continue
            if only is not None and o.client_order_id != only:
                continue
            through = px < o.limit_price if o.side == "buy" else px > o.limit_price
            if through:
                qty = min(o.leaves, volume)
                volume -= qty
                out.append(self._fill(o, qty, o.limit_price, Liquidity.MAKER, ts))
        return out

    # -- orders -----------------------------------------------------------------------------

    def submit(
        self,
        client_order_id: str,
        key: str,
        side: Side,
        order_type: OrderType,
        quantity: Decimal,
        limit_price: Decimal | None = None,
        maybe_sent: bool = False,
        market_seq: int | None = None,
        order_ts: int | None = None,
    ) -> list[VenueEvent]:
        """`market_seq`/`order_ts`: the point of the market stream the order was decided at
        and its time (see the module doc); without them it arrives now."""
        # `maybe_sent` needs no lookup here: the book is snapshotted with the OMS.
        if client_order_id in self._book:
            return []  # the exchange already holds it: a client id is placed once
        if order_type is OrderType.LIMIT and limit_price is None:
            return [Refused(client_order_id, "limit_price_missing")]
        now = self._market_ts.get(key)
        if now is None:
            return [Refused(client_order_id, "no_market_data")]
        at = (now if order_ts is None or market_seq is None else order_ts) + self.config.latency_ns
        order = PaperOrder(
            client_order_id,
            key,
            side,
            order_type,
            quantity,
            limit_price,
            at,
            after_seq=market_seq,
        )
        self._book[client_order_id] = order
        if market_seq is not None:
            late = self._from_history(order)
            if late is not None:
                return late
        self._pending[client_order_id] = None
        return self._activate_due(key, None)

    def _from_history(self, o: PaperOrder) -> list[VenueEvent] | None:
        """An order whose activation point the stream has passed: activate it there and let
        the prints since then reach it. None when the point is still ahead (pending)."""
        ticks = self._ticks.get(o.key)
        if not ticks or ticks[-1].seq is None or o.after_seq is None:
            return None
        if ticks[-1].seq < o.after_seq:
            return None  # ahead of the stream: waits for the point
        if ticks[0].seq is not None and ticks[0].seq > o.after_seq:
            self.late_beyond_history += 1
            return None  # the point left the history: it arrives now (counted)
        # Orders come a few events late: walk back to the point, not forward from the start.
        tail: list[Tick] = []
        for tick in reversed(ticks):
            tail.append(tick)
            if tick.seq is not None and tick.seq <= o.after_seq:
                break
        out: list[VenueEvent] | None = None
        for tick in reversed(tail):
            seq = tick.seq
            if out is None:
                due = seq is not None and seq >= o.after_seq and tick.ts >= o.active_at
                if tick.trade is None or not due:
                    continue
                out = self._activate(o, tick.touch, tick.ts)
            if tick.trade is not None and o.client_order_id in self._book:
                out += self._trade_through(o.key, *tick.trade, tick.ts, only=o.client_order_id)
        return out

    def cancel(self, client_order_id: str, reason: str, key: str = "") -> list[VenueEvent]:
        self._pending.pop(client_order_id, None)
        if self._book.pop(client_order_id, None) is None:
            return []
        return [Cancelled(client_order_id, reason)]

    def exchange_state(self, open_orders: list[Order]) -> ExchangeState:
        """The paper book is snapshotted with the OMS, so this agrees with it by design."""
        book = {
            c: ExchangeOrder(c, exchange_order_id(c), "open")
            for c, o in self._book.items()
            if o.active
        }
        looked_up = {
            o.client_order_id: book[o.client_order_id]
            for o in open_orders
            if o.client_order_id in book
        }
        return ExchangeState(looked_up, tuple(book.values()))

    def cancel_all(self, target: str, reason: str) -> list[VenueEvent]:
        """Cancel every open order on `target` (an `exchange:symbol` key, or `*`)."""
        coids = [c for c, o in self._book.items() if target in ("*", o.key)]
        return [e for c in coids for e in self.cancel(c, reason)]

    def _activate_due(self, key: str, seq: int | None) -> list[VenueEvent]:
        """Pending orders whose point this trade (`seq`; None: submission) reaches."""
        now = self._market_ts.get(key)
        out: list[VenueEvent] = []
        if now is None or not self._pending:
            return out
        for c in list(self._pending):
            o = self._book[c]
            if o.key != key or o.active_at > now:
                continue
            if o.after_seq is not None and (seq is None or seq < o.after_seq):
                continue  # decided at a later point of the stream than this one
            out += self._activate(o, self._touch.get(key), now)  # leaves `_pending`
        return out

    def _activate(self, o: PaperOrder, touch: Touch | None, ts: int) -> list[VenueEvent]:
        self._pending.pop(o.client_order_id, None)
        if o.order_type is OrderType.MARKET and touch is None:
            del self._book[o.client_order_id]
            return [Refused(o.client_order_id, "no_market_data")]
        o = self._book[o.client_order_id] = replace(o, active=True)
        out: list[VenueEvent] = [Acked(o.client_order_id, exchange_order_id(o.client_order_id), ts)]
        if touch is None:
            return out
        price = self._taker_price(o.side, touch)
        limit = o.limit_price
        if limit is not None:
            if (o.side == "buy" and touch.ask_price > limit) or (
                o.side == "sell" and touch.bid_price < limit
            ):
                return out  # not marketable: rests
            price = min(price, limit) if o.side == "buy" else max(price, limit)
        out.append(self._fill(o, o.leaves, price, Liquidity.TAKER, ts))
        return out

    def _fill(self, o: PaperOrder, qty: Decimal, price: Decimal, liq: Liquidity, ts: int) -> Filled:
        bps = self.config.taker_fee_bps if liq is Liquidity.TAKER else self.config.maker_fee_bps
        o = replace(o, filled=o.filled + qty, fills=o.fills + 1)
        if o.leaves == 0:
            del self._book[o.client_order_id]
        else:
            self._book[o.client_order_id] = o
        return Filled(
            o.client_order_id,
            qty,
            price,
            self.fee(price, qty, bps),
            o.key.split("/")[-1],
            liq,
            f"paper-{o.client_order_id}-{o.fills}",
            exchange_order_id(o.client_order_id),
            ts,
        )

    # -- pricing ----------------------------------------------------------------------------

    @staticmethod
    def fee(price: Decimal, qty: Decimal, bps: Decimal) -> Decimal:
        return (price * qty * bps / BPS).quantize(FEE_QUANTUM)

    def _taker_price(self, side: Side, touch: Touch) -> Decimal:
        slip = self.config.slippage_bps / BPS
        raw = touch.ask_price * (1 + slip) if side == "buy" else touch.bid_price * (1 - slip)
        tick = self.config.tick_size
        return (raw / tick).to_integral_value() * tick

    def market_fill(self, key: str, side: Side, qty: Decimal) -> PaperFill | None:
        """The price of an immediate market order; None without a quote to trade on."""
        touch = self._touch.get(key)
        if touch is None:
            return None
        price = self._taker_price(side, touch)
        return PaperFill(price, qty, self.fee(price, qty, self.config.taker_fee_bps))


def exchange_order_id(client_order_id: str) -> str:
    return f"paper-{client_order_id}"
