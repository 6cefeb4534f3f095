"""Execution benchmark: orders through the paper exchange, in process (the handler alone).

- market orders/s: an order in, ACK and FILL reports out (pydantic events, the state
  machine, the paper exchange's pricing), and the same with the runner's JSON encoding;
- limit orders/s placed to rest, then trades/s matched against that resting book;
- order-to-ack latency: wall time from handing an order to the handler until its ACK
  report exists (p50/p99 over every order of a run);
- snapshot and restore of the OMS with the resting book.

Each throughput is the median of `--repeats` runs.

    .venv/bin/python bench/execution.py [--orders 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from decimal import Decimal

from rich.console import Console
from rich.table import Table

from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import (
    ExecutionReport,
    OrderRequest,
    OrderStatus,
    OrderType,
    QuoteTick,
    TradeTick,
)
from tickpipe.runner import encode_emit
from tickpipe.topics import ORDERS, QUOTES, TRADES
from tickpipe_execution.domain.paper import PaperExchange
from tickpipe_execution.handlers import ExecutionHandler

T0 = 1_723_161_254_000_000_000
BASE = {"exchange": "binance", "symbol": "BTC/USDT"}


def _handler() -> ExecutionHandler:
    h = ExecutionHandler(EventIds(SimClock(T0), seed=1), PaperExchange())
    quote = QuoteTick(
        event_id="q",
        ts_event=T0,
        ts_init=T0,
        bid=60_000.0,
        bid_size=1,
        ask=60_000.5,
        ask_size=1,
        **BASE,
    )
    h.handle(quote, QUOTES, T0)
    return h


def _orders(n: int, kind: OrderType) -> list[OrderRequest]:
    out = []
    for i in range(n):
        buy = i % 2 == 0
        limit = None
        if kind is OrderType.LIMIT:
            limit = Decimal(59_000 - i % 500) if buy else Decimal(61_000 + i % 500)
        out.append(
            OrderRequest(
                event_id=f"o{i}",
                ts_event=T0 + i,
                ts_init=T0 + i,
                client_order_id=f"tp-{kind.value}-{i}",
                account="paper",
                strategy_id="bench",
                side="buy" if buy else "sell",
                order_type=kind,
                quantity=Decimal("0.01"),
                limit_price=limit,
                reference_price=Decimal(60_000),
                **BASE,
            )
        )
    return out


def _trades(n: int) -> list[TradeTick]:
    # Alternate deep prints on both sides: each crosses resting orders and fills some.
    return [
        TradeTick(
            event_id=f"t{i}",
            ts_event=T0 + 10**9 + i,
            ts_init=T0 + 10**9 + i,
            trade_id=str(i),
            price=58_400.0 + (i % 7) if i % 2 == 0 else 61_600.0 - (i % 7),
            size=0.05,
            side="sell" if i % 2 == 0 else "buy",
            **BASE,
        )
        for i in range(n)
    ]


def _median(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _through(orders: list[OrderRequest], encode: bool) -> Callable[[], None]:
    def run() -> None:
        h = _handler()
        for o in orders:
            for emit in h.handle(o, ORDERS, o.ts_event):
                if encode:
                    encode_emit(emit, ())

    return run


def _ack_latencies(orders: list[OrderRequest]) -> list[float]:
    h = _handler()
    out = []
    for o in orders:
        started = time.perf_counter()
        emits = h.handle(o, ORDERS, o.ts_event)
        first = emits[0].event
        elapsed = time.perf_counter() - started
        assert isinstance(first, ExecutionReport) and first.status is OrderStatus.ACKNOWLEDGED
        out.append(elapsed)
    return out


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    n, repeats = args.orders, args.repeats

    market = _orders(n, OrderType.MARKET)
    limits = _orders(n, OrderType.LIMIT)
    trades = _trades(n)
    rows: list[tuple[str, str, str]] = []

    s = _median(_through(market, encode=False), repeats)
    rows.append(("market orders (ack + fill)", f"{n / s:,.0f} orders/s", f"{s / n * 1e6:.1f} µs"))
    s = _median(_through(market, encode=True), repeats)
    rows.append(("  + JSON encoding", f"{n / s:,.0f} orders/s", f"{s / n * 1e6:.1f} µs"))
    s = _median(_through(limits, encode=False), repeats)
    rows.append(("limit orders placed (rest)", f"{n / s:,.0f} orders/s", f"{s / n * 1e6:.1f} µs"))

    def match() -> None:
        h = _handler()
        for o in limits[:2000]:
            h.handle(o, ORDERS, o.ts_event)
        for t in trades:
            h.handle(t, TRADES, t.ts_event)

    s = _median(match, repeats)
    rows.append(
        ("trades vs 2,000 resting limits", f"{n / s:,.0f} trades/s", f"{s / n * 1e6:.1f} µs")
    )

    lat = _ack_latencies(market)
    rows.append(("order-to-ack p50 (market)", f"{_pct(lat, 0.5) * 1e6:.1f} µs", ""))
    rows.append(("order-to-ack p99 (market)", f"{_pct(lat, 0.99) * 1e6:.1f} µs", ""))
    lat = _ack_latencies(limits)
    rows.append(("order-to-ack p99 (limit)", f"{_pct(lat, 0.99) * 1e6:.1f} µs", ""))

    h = _handler()
    for o in limits[:2000]:
        h.handle(o, ORDERS, o.ts_event)
    blob = h.snapshot()
    s = _median(h.snapshot, repeats)
    rows.append(("snapshot, 2,000 open orders", f"{s * 1e3:.2f} ms", f"{len(blob) / 1024:.0f} KiB"))
    s = _median(lambda: _handler().restore(blob), repeats)
    rows.append(("restore, 2,000 open orders", f"{s * 1e3:.2f} ms", ""))

    table = Table(
        title=f"execution (paper exchange, in process) — {n:,} orders, median of {repeats}"
    )
    table.add_column("measure")
    table.add_column("rate / value", justify="right")
    table.add_column("per item", justify="right")
    for r in rows:
        table.add_row(*r)
    Console().print(table)


if __name__ == "__main__":
    main()
