"""The exchange's private stream (ccxt.pro `watch_orders` / `watch_my_trades`) on a thread.

The consume loop owns the OMS state, so the stream never touches it: order updates and
trades are queued here and drained by the venue on the consume loop's thread, where they
go through the same dedupe (exchange trade id) and state machine as polled ones.

The thread also watches the connection, because a blocked or crashed consume loop must not
stop the protections: cancel-on-disconnect (all open orders cancelled once the stream has
been down past a grace period) or, where the exchange has one, its dead-man switch
(`cancelAllOrdersAfter`) refreshed as a heartbeat while the stream is up.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import ccxt  # type: ignore[import-untyped]  # ccxt ships no stubs

from tickpipe_execution.metrics import STREAM_CANCEL_ALLS, STREAM_CONNECTED

log = logging.getLogger(__name__)
Update = tuple[str, dict[str, Any]]  # ("order" | "trade", the ccxt structure)


@dataclass(frozen=True)
class DisconnectPolicy:
    """What to do when the stream is lost (all opt-in)."""

    cancel_on_disconnect: bool = False
    grace_s: float = 5.0
    dead_man_s: float = 60.0  # the exchange-side timer, where the exchange has one

    @property
    def heartbeat_s(self) -> float:
        return self.dead_man_s / 3  # two beats may be lost before the exchange cancels


class UserStream:
    """Runs ccxt.pro watches on a daemon thread; `drain()` hands their updates over."""

    def __init__(
        self,
        client: Any,
        symbols: Callable[[], set[str]],
        policy: DisconnectPolicy | None = None,
        retry_s: float = 1.0,
    ) -> None:
        self.client = client  # a ccxt.pro exchange, used only on the stream thread
        self.policy = policy or DisconnectPolicy()
        self.trades_streamed = bool(client.has.get("watchMyTrades"))
        # The exchange's own switch replaces ours where it has one (it works even when this
        # whole process is gone); armed only with cancel-on-disconnect on.
        self.dead_man = self.policy.cancel_on_disconnect and bool(
            client.has.get("cancelAllOrdersAfter")
        )
        self._symbols = symbols  # where open orders may rest: cancel-all scans these
        self._retry_s = retry_s
        self._queue: queue.SimpleQueue[Update] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = False
        self.down_since: float | None = time.monotonic()  # down until first subscribed
        self._resync = False
        self._cancelled_outage = False
        self.cancel_alls = 0

    # -- consume-loop side ------------------------------------------------------------------

    def drain(self) -> list[Update]:
        out: list[Update] = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def take_resync(self) -> bool:
        """True once after each (re)subscription: what happened while down must be polled."""
        resync, self._resync = self._resync, False
        return resync

    def request_resync(self) -> None:
        self._resync = True

    @property
    def resync_pending(self) -> bool:
        return self._resync

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> UserStream:
        self._thread = threading.Thread(target=self._run, name="user-stream", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()  # the loop checks it every 50 ms
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._subscribing = asyncio.Lock()
        tasks = [
            asyncio.ensure_future(self._pump("order", self.client.watch_orders)),
            asyncio.ensure_future(self._watchdog()),
        ]
        if self.trades_streamed:
            tasks.append(asyncio.ensure_future(self._pump("trade", self.client.watch_my_trades)))
        try:
            while not self._stop.is_set():
                await asyncio.sleep(0.05)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                await self.client.close()
            except Exception as exc:  # closing a dead connection: nothing left to do
                log.debug("stream close failed", extra={"error": type(exc).__name__})

    # -- stream thread side -----------------------------------------------------------------

    async def _pump(self, kind: str, watch: Callable[[], Awaitable[list[dict[str, Any]]]]) -> None:
        while not self._stop.is_set():
            try:
                await self._subscribe()
                items = await watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: the stream is down until resubscribed
                self._down(exc)
                await asyncio.sleep(self._retry_s)
                continue
            for item in items:
                self._queue.put((kind, item))

    async def _subscribe(self) -> None:
        """(Re)subscribe, one watcher at a time: ccxt marks the stream subscribed before the
        exchange confirms, so a second concurrent caller would take a failing subscribe for a
        live one. A no-op while subscribed."""
        authenticate = getattr(self.client, "authenticate", None)
        if authenticate is None:
            self._up()  # subscribed by the watch itself
            return
        async with self._subscribing:
            await authenticate()
            self._up()

    def _up(self) -> None:
        if self.connected:
            return
        self.connected = True
        self.down_since = None
        self._cancelled_outage = False
        self._resync = True
        STREAM_CONNECTED.set(1)
        log.info("user stream subscribed")

    def _down(self, exc: Exception) -> None:
        if self.connected or self.down_since is None:
            log.warning("user stream lost", extra={"error": type(exc).__name__})
            self.down_since = time.monotonic()
        self.connected = False
        STREAM_CONNECTED.set(0)

    async def _watchdog(self) -> None:
        last_beat = 0.0
        while not self._stop.is_set():
            await asyncio.sleep(0.1)
            now = time.monotonic()
            if self.dead_man:
                # The exchange cancels everything unless we keep saying we are alive.
                if self.connected and now - last_beat >= self.policy.heartbeat_s:
                    last_beat = now
                    await self._guard(self._heartbeat())
                continue
            down = self.down_since
            if (
                self.policy.cancel_on_disconnect
                and down is not None
                and not self._cancelled_outage
                and now - down >= self.policy.grace_s
            ):
                log.warning("user stream down past grace: cancelling all open orders")
                # Once per outage; a failed attempt (the exchange unreachable too) is retried.
                self._cancelled_outage = await self._guard(self.cancel_all())

    async def _heartbeat(self) -> None:
        await self.client.cancel_all_orders_after(int(self.policy.dead_man_s * 1000))

    async def cancel_all(self) -> None:
        """Every open order on the symbols we trade, cancelled at the exchange (the OMS hears
        of it from the stream or a poll, like any exchange-side cancel)."""
        for symbol in sorted(self._symbols()):
            await self.client.cancel_all_orders(symbol)
        self.cancel_alls += 1
        STREAM_CANCEL_ALLS.inc()

    async def _guard(self, call: Awaitable[None]) -> bool:
        try:
            await call
        except ccxt.BaseError as exc:
            log.error("exchange call failed", extra={"error": type(exc).__name__})
            await asyncio.sleep(self._retry_s)
            return False
        return True
