"""Live trading through ccxt (sync client): idempotent placement by client order id.

Rules that keep an order from being placed twice or lost:
- The client order id (deterministic from the order event) goes to the exchange with the
  order (`clientOrderId`; ccxt sends Binance's `newClientOrderId`).
- A rate-limit answer (429/418) means the exchange refused the request: send it again after
  a backoff.
- A timeout, a dropped connection or a 5xx means the outcome is unknown: look the order up
  by client id, and only send it again when the exchange says it has no such order.
- A rejection (invalid order, insufficient funds, auth) is final: never retried.

Fills of resting orders come from the exchange's private stream where it has one (see
`stream`), drained on the consume loop's thread, else from polling; either way they become
the same venue events, applied once per exchange trade id.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

import ccxt  # type: ignore[import-untyped]  # ccxt ships no stubs

from tickpipe.messages import Liquidity, OrderType, Side
from tickpipe.ratelimit import LIMITERS, TokenBucket
from tickpipe_execution.domain.events import (
    Acked,
    Cancelled,
    Filled,
    Refused,
    VenueEvent,
    VenueUnavailable,
)
from tickpipe_execution.domain.orders import Order
from tickpipe_execution.domain.reconcile import ExchangeOrder, ExchangeState
from tickpipe_execution.domain.venue import RestingOrder
from tickpipe_execution.live.stream import UserStream

log = logging.getLogger(__name__)
T = TypeVar("T")

# The outcome of a request that failed this way is unknown: it may have reached the matcher.
# (Binance: a 5xx or -1000 means "execution status unknown".)
UNKNOWN_OUTCOME = (ccxt.NetworkError, ccxt.OperationFailed)
REFUSED_BEFORE_PROCESSING = (ccxt.RateLimitExceeded, ccxt.DDoSProtection)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_s: float = 0.2
    factor: float = 2.0
    max_s: float = 5.0

    def delay(self, attempt: int) -> float:
        return min(self.max_s, self.base_s * self.factor**attempt)


class CcxtVenue:
    """A `Venue` over a ccxt exchange. The state lives at the exchange, so `snapshot` is empty."""

    def __init__(
        self,
        client: ccxt.Exchange,
        bucket: TokenBucket | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        symbols: tuple[str, ...] = (),
        poll_interval_ns: int | None = 2_000_000_000,
        stream: UserStream | None = None,
        stream_poll_interval_ns: int | None = 60_000_000_000,
    ) -> None:
        # Without a private stream, resting orders' fills are found by polling (each poll
        # costs one lookup per open order, paced by the bucket). With one, polling is a
        # slow safety net, and the fast pace again while the stream is down.
        self._poll_ns = poll_interval_ns
        self._stream_poll_ns = stream_poll_interval_ns
        self.stream = stream
        self.client = client
        self.symbols = symbols  # also scanned for orphan open orders at reconciliation
        self.traded: set[str] = set(symbols)  # every symbol an order was sent for
        self._coids: dict[str, str] = {}  # exchange order id -> client order id
        self.bucket = bucket or LIMITERS.for_exchange(str(client.id), float(client.rateLimit))
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self.requests = 0  # sent, for tests and metrics

    # -- Venue ------------------------------------------------------------------------------

    def on_quote(self, key: str, bid: float, ask: float, ts: int, seq: int | None = None) -> None:
        return None

    def market_time(self, key: str) -> int | None:
        return None  # the exchange runs on the wall clock: reports carry processing time

    @property
    def poll_interval_ns(self) -> int | None:
        """The OMS polls on this (market-time) interval; 0 asks for a poll now."""
        stream = self.stream
        if stream is None or not stream.connected:
            return self._poll_ns
        if stream.resync_pending:
            return 0  # (re)subscribed: what happened while the stream was down is polled
        return self._stream_poll_ns

    @poll_interval_ns.setter
    def poll_interval_ns(self, value: int | None) -> None:
        self._poll_ns = value

    def on_trade(
        self, key: str, price: float, size: float, ts: int, seq: int | None = None
    ) -> list[VenueEvent]:
        """Market trades pace the consume loop: the stream's queued updates are applied here."""
        return self.streamed()

    def streamed(self) -> list[VenueEvent]:
        if self.stream is None:
            return []
        out: list[VenueEvent] = []
        for kind, item in self.stream.drain():
            try:
                out += self._trade_events(item) if kind == "trade" else self._order_update(item)
            except (ccxt.BaseError, KeyError, TypeError, ValueError, ArithmeticError) as exc:
                # An update that cannot be read (or whose fills cannot be fetched): poll at
                # the next trade instead, which finds the truth at the exchange.
                log.error("stream update not applied", extra={"error": type(exc).__name__})
                self.stream.request_resync()
        return out

    def _trade_events(self, t: dict[str, Any]) -> list[VenueEvent]:
        info = t.get("info") or {}
        oid = str(t.get("order") or "")
        coid = info.get("C") or info.get("c") or self._coids.get(oid)
        return [fill_of(str(coid), oid, t)] if coid else []

    def _order_update(self, o: dict[str, Any]) -> list[VenueEvent]:
        coid = str(o.get("clientOrderId") or "")
        if not coid:
            return []
        self._coids[str(o["id"])] = coid
        status = o.get("status")
        if status == "rejected":
            return [Refused(coid, "rejected_by_exchange")]
        ended = status in ("canceled", "cancelled", "expired")
        filled = Decimal(str(o.get("filled") or 0)) > 0
        if (ended and filled) or (filled and self.stream and not self.stream.trades_streamed):
            # A cancel may overtake the trade updates of fills before it: fetch the fills
            # first (applied once by trade id), so a cancelled order never loses one.
            return self.order_events(coid, str(o["symbol"]), {**o, "trades": None})
        out: list[VenueEvent] = [Acked(coid, str(o["id"]))]
        if ended:
            out.append(Cancelled(coid, f"{status}_at_exchange"))
        return out

    def adopt(self, orders: list[RestingOrder]) -> None:
        return None  # the exchange holds them; reconciliation reports what became of them

    def snapshot(self) -> dict[str, Any]:
        return {}

    def restore(self, data: Any) -> None:
        return None

    def submit(
        self,
        client_order_id: str,
        key: str,
        side: Side,
        order_type: OrderType,
        quantity: Decimal,
        limit_price: Decimal | None = None,
        maybe_sent: bool = False,
        market_seq: int | None = None,  # the paper exchange's; a live order trades now
        order_ts: int | None = None,
    ) -> list[VenueEvent]:
        symbol = symbol_of(key)
        self.traded.add(symbol)
        if maybe_sent:
            # An exchange accepts a finished order's client id again: ask before sending.
            found = self.lookup(client_order_id, symbol)
            if found is not None:
                return self.order_events(client_order_id, symbol, found)
        price = None if limit_price is None else str(limit_price)
        for attempt in range(self.retry.attempts):
            settled = self._try_create(
                client_order_id, symbol, side, order_type, str(quantity), price
            )
            if settled is not None:
                return settled
            self._sleep(self.retry.delay(attempt))
        return [Refused(client_order_id, "venue_unavailable")]

    def _try_create(
        self,
        client_order_id: str,
        symbol: str,
        side: Side,
        order_type: OrderType,
        quantity: str,
        price: str | None,
    ) -> list[VenueEvent] | None:
        """One attempt: the order's events once settled; None to send again after a backoff."""
        try:
            self._throttle()
            order = self.client.create_order(
                symbol, order_type.value, side, quantity, price, {"clientOrderId": client_order_id}
            )
            return self.order_events(client_order_id, symbol, order)
        except REFUSED_BEFORE_PROCESSING:
            return None
        except UNKNOWN_OUTCOME as exc:
            log.warning(
                "order outcome unknown, looking it up",
                extra={"client_order_id": client_order_id, "error": type(exc).__name__},
            )
            return self._resolve(client_order_id, symbol)
        except ccxt.InvalidOrder as exc:
            if isinstance(exc, ccxt.DuplicateOrderId) or "duplicate" in str(exc).lower():
                return self._resolve(client_order_id, symbol)  # -2010 "Duplicate order sent."
            return [Refused(client_order_id, _reason(exc))]
        except ccxt.ExchangeError as exc:
            return [Refused(client_order_id, _reason(exc))]

    def _resolve(self, client_order_id: str, symbol: str) -> list[VenueEvent] | None:
        """After an unknown outcome: the order as the exchange has it, None when it has none
        (safe to send again), [] when even the lookup fails (left SUBMITTED, never resent
        blind: reconciliation settles it)."""
        try:
            found = self.lookup(client_order_id, symbol)
        except UNKNOWN_OUTCOME:
            log.error("order unresolved", extra={"client_order_id": client_order_id})
            return []
        return None if found is None else self.order_events(client_order_id, symbol, found)

    def cancel(self, client_order_id: str, reason: str, key: str = "") -> list[VenueEvent]:
        symbol = symbol_of(key)
        try:
            with contextlib.suppress(ccxt.OrderNotFound):  # gone already: the lookup says how
                self._call(
                    lambda: self.client.cancel_order(
                        None, symbol, {"origClientOrderId": client_order_id}
                    )
                )
            found = self.lookup(client_order_id, symbol)
        except ccxt.BaseError as exc:
            # Stays PENDING_CANCEL; polling or the next cancel_all settles it.
            log.error(
                "cancel unresolved",
                extra={"client_order_id": client_order_id, "error": type(exc).__name__},
            )
            return []
        if found is None:
            return [Cancelled(client_order_id, reason)]
        return self.order_events(client_order_id, symbol, found, reason)

    def exchange_state(self, open_orders: list[Order]) -> ExchangeState:
        """Each open order looked up by client id, its fills, and the exchange's open orders."""
        try:
            return self._exchange_state(open_orders)
        except ccxt.BaseError as exc:
            raise VenueUnavailable(type(exc).__name__) from None

    def _exchange_state(self, open_orders: list[Order]) -> ExchangeState:
        if self.stream is not None:
            self.stream.take_resync()  # updates from here on come through the stream too
        looked_up: dict[str, ExchangeOrder | None] = {}
        fills: list[Filled] = []
        for o in open_orders:
            found = self.lookup(o.client_order_id, o.symbol)
            if found is None:
                looked_up[o.client_order_id] = None
                continue
            looked_up[o.client_order_id] = exchange_order(o.client_order_id, found)
            fills += self.order_fills(o.symbol, {**found, "clientOrderId": o.client_order_id})
        exchange_open = [
            exchange_order(str(x.get("clientOrderId") or ""), x)
            for symbol in sorted({o.symbol for o in open_orders} | set(self.symbols))
            for x in self.open_orders(symbol)
        ]
        return ExchangeState(looked_up, tuple(exchange_open), tuple(fills))

    # -- reads ------------------------------------------------------------------------------

    def lookup(self, client_order_id: str, symbol: str) -> dict[str, Any] | None:
        """The exchange's order for a client id, or None when the exchange has none."""
        try:
            found: dict[str, Any] = self._call(
                lambda: self.client.fetch_order(
                    None, symbol, {"origClientOrderId": client_order_id}
                )
            )
        except ccxt.OrderNotFound:
            return None
        return found

    def open_orders(self, symbol: str) -> list[dict[str, Any]]:
        return self._call(lambda: self.client.fetch_open_orders(symbol))

    def order_fills(self, symbol: str, order: dict[str, Any]) -> list[Filled]:
        """The fills of an order, each with the exchange's trade id (applied once by the OMS)."""
        coid = str(order.get("clientOrderId") or "")
        trades = [t for t in order.get("trades") or [] if t.get("id")]
        if not trades and Decimal(str(order.get("filled") or 0)) > 0:
            trades = self._call(
                lambda: self.client.fetch_my_trades(symbol, None, None, {"orderId": order["id"]})
            )
        return [fill_of(coid, str(order["id"]), t) for t in trades]

    def recent_fills(self, symbol: str, since_ms: int | None) -> list[dict[str, Any]]:
        return self._call(lambda: self.client.fetch_my_trades(symbol, since_ms))

    def order_events(
        self,
        client_order_id: str,
        symbol: str,
        order: dict[str, Any],
        cancel_reason: str = "cancelled_by_exchange",
    ) -> list[VenueEvent]:
        """What an exchange order says about our order: ack, its fills, how it ended."""
        status = order.get("status")
        if status == "rejected":
            return [Refused(client_order_id, "rejected_by_exchange")]
        self._coids[str(order["id"])] = client_order_id
        out: list[VenueEvent] = [Acked(client_order_id, str(order["id"]))]
        out += self.order_fills(symbol, {**order, "clientOrderId": client_order_id})
        if status in ("canceled", "cancelled", "expired"):
            out.append(Cancelled(client_order_id, cancel_reason))
        return out

    def cancel_all(self) -> int:
        """Every open order on the symbols we trade, cancelled at the exchange (graceful
        shutdown with cancel-on-shutdown). Returns the orders cancelled."""
        n = 0
        for symbol in sorted(self.traded):
            cancelled: list[Any] = self._call(partial(self.client.cancel_all_orders, symbol))
            n += len(cancelled or [])
        return n

    def close(self) -> None:
        if self.stream is not None:
            self.stream.stop()

    # -- plumbing ---------------------------------------------------------------------------

    def _throttle(self) -> None:
        self.bucket.acquire(1.0, self._sleep)
        self.requests += 1

    def _call(self, fn: Callable[[], T]) -> T:
        """An idempotent request: retried with backoff on network errors and 429s."""
        for attempt in range(self.retry.attempts):
            try:
                self._throttle()
                return fn()
            except ccxt.NetworkError as exc:
                if attempt == self.retry.attempts - 1:
                    raise
                log.warning("retrying", extra={"error": type(exc).__name__, "attempt": attempt})
            self._sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable")


def symbol_of(key: str) -> str:
    return key.split(":", 1)[-1]


def exchange_order(client_order_id: str, order: dict[str, Any]) -> ExchangeOrder:
    return ExchangeOrder(client_order_id, str(order["id"]), str(order.get("status") or "open"))


def fill_of(client_order_id: str, exchange_order_id: str, t: dict[str, Any]) -> Filled:
    fee = t.get("fee") or {}
    maker = t.get("takerOrMaker") == "maker"
    return Filled(
        client_order_id,
        Decimal(str(t["amount"])),
        Decimal(str(t["price"])),
        Decimal(str(fee.get("cost") or 0)),
        fee.get("currency"),
        Liquidity.MAKER if maker else Liquidity.TAKER,
        str(t["id"]),
        exchange_order_id,
    )


def _reason(exc: Exception) -> str:
    # The class, never the message: an exchange error may echo request parameters.
    return f"exchange_{type(exc).__name__}"
