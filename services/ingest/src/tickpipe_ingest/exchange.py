"""Exchange source: live trades and quotes through ccxt (websockets or REST polling).

Threading: ccxt is asyncio, the `Source` protocol a plain iterator. The feed runs its own
event loop in a background thread and hands records over through a bounded queue; the
iterator (the runner's thread) validates, normalises and yields them. The loop therefore
keeps reading sockets, answering pings and timing staleness while the runner blocks in a
Kafka flush; when the runner falls behind, the full queue makes the feed tasks wait
(backpressure) instead of buffering without bound.

Per symbol and stream (trades, quotes) one task loops over ccxt's `watch_*` (or `fetch_*`
every poll interval). A network error or a dropped connection means: count a reconnect, wait
an exponential backoff with jitter, call again (ccxt opens a new connection and
resubscribes). Trades seen again after a reconnect or in overlapping polls are skipped and
counted; trades that never arrived show up as trade-id gaps in the validator. Any other
error (unknown symbol, unsupported method) is fatal: it ends the iteration with the error.

With `resume`, a restarted source skips the trades md.trades.v1 already holds (at or below
the last trade id per instrument, found in `on_start`, see `resume`): a REST poll's recent
trades are not published twice, trades missed while it was down show as a gap, and arrival
numbers carry on from the last published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from tickpipe.clock import Clock
from tickpipe.marketdata import (
    ParseError,
    QuoteData,
    TradeData,
    quote_from_order_book,
    quote_from_ticker,
    trade_from_ccxt,
)
from tickpipe.service import Emit, ServiceContext
from tickpipe_ingest import metrics
from tickpipe_ingest.ccxt_client import make_exchange
from tickpipe_ingest.domain.feed import Backoff, SeenTrades, StalenessWatchdog
from tickpipe_ingest.domain.quality import DataQuality, Stale, Stream
from tickpipe_ingest.normalize import Normalizer
from tickpipe_ingest.resume import ResumePoint, SkipSeenTrades

log = logging.getLogger(__name__)

Item = TradeData | QuoteData | ParseError
QUOTE_MODES = ("auto", "bids_asks", "ticker", "order_book", "none")
# `auto` takes the first the exchange has: the top of book is cheapest from bids/asks.
QUOTE_METHODS = (("bids_asks", "BidsAsks"), ("ticker", "Ticker"), ("order_book", "OrderBook"))


@dataclass(frozen=True)
class ExchangeConfig:
    exchange: str
    symbols: tuple[str, ...]
    transport: str = "auto"  # auto | ws | rest
    trades: bool = True
    quotes: str = "auto"  # auto | bids_asks | ticker | order_book | none
    poll_interval_s: float = 1.0
    stale_after_s: float = 30.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    rate_capacity: float = 1.0
    queue_size: int = 10_000
    book_depth: int = 5
    ccxt_config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return f"exchange:{self.exchange}"


ExchangeFactory = Callable[[ExchangeConfig], tuple[Any, str]]


def default_factory(config: ExchangeConfig) -> tuple[Any, str]:
    return make_exchange(
        config.exchange, config.transport, config.ccxt_config, rate_capacity=config.rate_capacity
    )


class FeedError(RuntimeError):
    """The feed stopped for a reason retrying cannot fix (bad symbol, unsupported method)."""


_END = object()


class ExchangeSource:
    """A `Source` over one exchange and a list of symbols; `limit` ends it after that many
    records (tests, benchmarks), `stop` when set (shutdown)."""

    def __init__(
        self,
        config: ExchangeConfig,
        normalize: Normalizer,
        clock: Clock,
        quality: DataQuality,
        *,
        factory: ExchangeFactory = default_factory,
        limit: int | None = None,
        stop: threading.Event | None = None,
        resume: bool = False,
    ) -> None:
        if not config.symbols:
            raise ValueError("no symbols to ingest")
        if config.quotes not in QUOTE_MODES:
            raise ValueError(f"quotes must be one of {QUOTE_MODES}, got {config.quotes!r}")
        self.config = config
        self._normalize = normalize
        self._clock = clock
        self._quality = quality
        self._factory = factory
        self._limit = limit
        self._stop = stop or threading.Event()
        self._resume = resume
        self.skip: SkipSeenTrades | None = None
        self.feed: Feed | None = None

    def on_start(self, ctx: ServiceContext) -> Sequence[Emit]:
        """With resume on, finds the last trades an earlier run published (see `resume`)."""
        if self._resume:
            self.resume_from(ResumePoint.read(ctx.bus, f"ingest-resume-{ctx.platform.instance_id}"))
        return ()

    def resume_from(self, point: ResumePoint) -> None:
        """Skip trades at or below the last ones `point` holds; number on from it."""
        log.info(
            "resuming" if point else "nothing published before: starting afresh",
            extra={"source": self.config.source, "last": point.describe()},
        )
        if not point:
            return
        self.skip = SkipSeenTrades(point, self.config.source)
        self._normalize.carry_on(point.next_seqs())
        self._normalize.validator.resume_trade_ids(self.skip.last_trade_ids())

    def __iter__(self) -> Iterator[Emit]:
        handoff: queue.Queue[object] = queue.Queue(self.config.queue_size)
        feed = self.feed = Feed(self.config, self._factory, handoff, self._clock, self._quality)
        thread = threading.Thread(target=feed.run, name=f"feed-{self.config.exchange}", daemon=True)
        thread.start()
        depth = metrics.QUEUE_DEPTH.labels(self.config.source)
        n = 0
        try:
            while self._limit is None or n < self._limit:
                if self._stop.is_set():
                    return
                try:
                    item = handoff.get(timeout=0.1)
                except queue.Empty:
                    yield from self._normalize.quality_emits()  # a stale feed, while silent
                    continue
                if item is _END:
                    yield from self._normalize.quality_emits()
                    return
                if isinstance(item, BaseException):
                    raise FeedError(f"{self.config.source}: {item}") from item
                depth.set(handoff.qsize())
                if self.skip is not None and isinstance(item, TradeData) and self.skip.skip(item):
                    continue  # published before the restart
                n += 1
                yield from self._normalize.emits(item)  # type: ignore[arg-type]  # only Items besides the two above
        finally:
            feed.stop()
            thread.join(timeout=15)


class Feed:
    """The asyncio side: one task per symbol and stream, plus the staleness watchdog."""

    def __init__(
        self,
        config: ExchangeConfig,
        factory: ExchangeFactory,
        handoff: queue.Queue[object],
        clock: Clock,
        quality: DataQuality,
    ) -> None:
        self.config = config
        self._factory = factory
        self._handoff = handoff
        self._clock = clock
        self._quality = quality
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._watchdog = StalenessWatchdog(int(config.stale_after_s * 1e9))
        self._seen = SeenTrades()
        self._last_quote: dict[str, tuple[float, float, float, float]] = {}
        self.transport = config.transport
        self.quote_mode = config.quotes
        self._network_error: type[Exception] = OSError  # ccxt.NetworkError, once imported

    # -- thread side ---------------------------------------------------------------------------

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # handed to the iterating thread, which raises it
            self._handoff.put(exc)
        finally:
            self._handoff.put(_END)

    def stop(self) -> None:
        self._stopping.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: it is stopping
                loop.call_soon_threadsafe(wake.set)

    # -- loop side -----------------------------------------------------------------------------

    async def _main(self) -> None:
        # ccxt takes seconds to import (every exchange): here, not when the source is built.
        import ccxt.async_support as ccxt  # type: ignore[import-untyped]  # ccxt ships no stubs

        self._network_error = ccxt.NetworkError
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if self._stopping.is_set():
            return
        exchange, self.transport = self._factory(self.config)
        try:
            await self._load_markets(exchange)
            tasks = self._tasks(exchange)
            stopper = asyncio.ensure_future(self._wake.wait())
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in [*tasks, stopper]:
                task.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)
            for task in done - {stopper}:
                error = None if task.cancelled() else task.exception()
                if error is not None:
                    raise error  # a fatal error of one stream ends the feed
        finally:
            await exchange.close()

    async def _load_markets(self, exchange: Any) -> None:
        backoff = self._backoff()
        while True:
            try:
                await exchange.load_markets()
                break
            except self._network_error as exc:
                log.warning("load_markets failed, retrying", extra={"error": str(exc)})
                await self._sleep(backoff.next_delay())
                if self._stopping.is_set():
                    return
        unknown = [s for s in self.config.symbols if s not in exchange.markets]
        if unknown:
            raise ValueError(f"{self.config.exchange} has no markets {unknown}")

    def _tasks(self, exchange: Any) -> list[asyncio.Task[None]]:
        quote_mode = self._quote_mode(exchange)
        self.quote_mode = quote_mode
        now = self._clock.now_ns()
        coros = []
        for symbol in self.config.symbols:
            if self.config.trades:
                self._watchdog.watch(symbol, "trades", now)
                coros.append(self._trades(exchange, symbol))
            if quote_mode != "none":
                self._watchdog.watch(symbol, "quotes", now)
                coros.append(self._quotes(exchange, symbol, quote_mode))
        coros.append(self._watch_staleness(exchange))
        return [asyncio.ensure_future(c) for c in coros]

    def _quote_mode(self, exchange: Any) -> str:
        if self.config.quotes != "auto":
            return self.config.quotes
        prefix = "watch" if self.transport == "ws" else "fetch"
        for mode, method in QUOTE_METHODS:
            if exchange.has.get(prefix + method):
                return mode
        return "none"

    def _backoff(self) -> Backoff:
        return Backoff(self.config.backoff_initial_s, self.config.backoff_max_s)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once on stop."""
        assert self._wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def _put(self, item: Item) -> None:
        while True:
            try:
                self._handoff.put_nowait(item)
                return
            except queue.Full:
                await asyncio.sleep(0.005)  # backpressure: the publisher is behind

    async def _retry(self, symbol: str, stream: Stream, exc: Exception, backoff: Backoff) -> None:
        delay = backoff.next_delay()
        metrics.RECONNECTS.labels(self.config.source, symbol, stream).inc()
        log.warning(
            "feed error, reconnecting",
            extra={
                "source": self.config.source,
                "symbol": symbol,
                "stream": stream,
                "error": f"{type(exc).__name__}: {exc}"[:300],
                "retry_in_s": round(delay, 3),
            },
        )
        await self._sleep(delay)

    async def _trades(self, exchange: Any, symbol: str) -> None:
        backoff = self._backoff()
        since: int | None = None
        while not self._stopping.is_set():
            try:
                if self.transport == "ws":
                    trades = await exchange.watch_trades(symbol)
                else:
                    trades = await exchange.fetch_trades(symbol, since=since)
            except self._network_error as exc:
                await self._retry(symbol, "trades", exc, backoff)
                continue
            backoff.reset()
            fresh = 0
            for trade in trades:
                tid = trade.get("id")
                if tid is not None and not self._seen.first_time(symbol, str(tid)):
                    metrics.OVERLAP_SKIPPED.labels(self.config.source, symbol).inc()
                    continue
                fresh += 1
                ts = trade.get("timestamp")
                if isinstance(ts, int) and (since is None or ts > since):
                    since = ts  # inclusive on most exchanges: the overlap is skipped above
                try:
                    await self._put(trade_from_ccxt(self.config.exchange, trade))
                except ParseError as err:
                    await self._put(err)
            if fresh:
                self._watchdog.touch(symbol, "trades", self._clock.now_ns())
            if self.transport == "rest":
                await self._sleep(self.config.poll_interval_s)

    async def _fetch_quote(self, exchange: Any, symbol: str, mode: str) -> Item:
        ex = self.config.exchange
        ws = self.transport == "ws"
        if mode == "order_book":
            depth = self.config.book_depth
            if ws:
                book = await exchange.watch_order_book(symbol)
            else:
                book = await exchange.fetch_order_book(symbol, depth)
            return quote_from_order_book(ex, symbol, book, self._clock.now_ns(), depth)
        if mode == "bids_asks":
            method = exchange.watch_bids_asks if ws else exchange.fetch_bids_asks
            tickers = await method([symbol])
            ticker = tickers.get(symbol) if isinstance(tickers, Mapping) else None
            if ticker is None:
                raise ParseError(
                    "missing_field", f"no bid/ask for {symbol}", repr(tickers).encode()
                )
            return quote_from_ticker(ex, ticker, self._clock.now_ns())
        ticker = await (exchange.watch_ticker(symbol) if ws else exchange.fetch_ticker(symbol))
        return quote_from_ticker(ex, ticker, self._clock.now_ns())

    async def _quotes(self, exchange: Any, symbol: str, mode: str) -> None:
        backoff = self._backoff()
        while not self._stopping.is_set():
            try:
                item = await self._fetch_quote(exchange, symbol, mode)
            except self._network_error as exc:
                await self._retry(symbol, "quotes", exc, backoff)
                continue
            except ParseError as err:
                item = err
            backoff.reset()
            if isinstance(item, QuoteData):
                top = (item.bid, item.bid_size, item.ask, item.ask_size)
                if self._last_quote.get(symbol) != top:  # publish changes of the top only
                    self._last_quote[symbol] = top
                    self._watchdog.touch(symbol, "quotes", self._clock.now_ns())
                    await self._put(item)
            else:
                await self._put(item)
            if self.transport == "rest":
                await self._sleep(self.config.poll_interval_s)

    async def _watch_staleness(self, exchange: Any) -> None:
        period = min(1.0, self.config.stale_after_s / 4)
        while not self._stopping.is_set():
            await self._sleep(period)
            now = self._clock.now_ns()
            for symbol, stream, silent in self._watchdog.due(now):
                kind = cast(Stream, stream)
                self._quality.report(Stale(self.config.exchange, symbol, kind, silent, now))
                if self.transport == "ws":
                    metrics.RECONNECTS.labels(self.config.source, symbol, stream).inc()
                    self._drop_connections(exchange, symbol)

    def _drop_connections(self, exchange: Any, symbol: str) -> None:
        """Fail the websocket(s) carrying `symbol` (all of them if none can be told apart):
        their watchers get a NetworkError and reconnect with backoff."""
        clients = list((getattr(exchange, "clients", None) or {}).values())
        carrying = [c for c in clients if any(symbol in str(h) for h in _hashes(c))]
        reason = f"no data on {symbol} for {self.config.stale_after_s} s"
        for client in carrying or clients:
            client.on_error(self._network_error(reason))


def _hashes(client: Any) -> list[object]:
    return [*getattr(client, "subscriptions", {}), *getattr(client, "futures", {})]
