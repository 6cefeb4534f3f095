"""Positions and PnL: rebuilt from the executions ledger they equal the live books; a fill
delivered twice is booked once; strategies keep their own books inside the account's."""

from __future__ import annotations

import random
from decimal import Decimal

import orjson

from tests.unit import factories as f
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.messages import ExecutionReport, OrderRequest, OrderStatus, Signal
from tickpipe.topics import EXECUTIONS, SIGNALS
from tickpipe_risk.domain.books import Books, Fill
from tickpipe_risk.domain.checks import Limits
from tickpipe_risk.domain.sizing import SizingConfig
from tickpipe_risk.handlers import RiskHandler

D = Decimal
S = f.SECOND
KEYS = ("BTC/USDT", "ETH/USDT")
PRICES = {"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0}


def _handler(cache: MemoryCache | None = None) -> RiskHandler:
    return RiskHandler(
        EventIds(SimClock(f.T0), seed=9),
        cache if cache is not None else MemoryCache(),
        "paper",
        SizingConfig(capital=D(20_000)),
        Limits(),
        {},
    )


def _touch(symbol: str, mid: float, t: int) -> Signal:
    """A flat signal: it only brings the touch around `mid` (risk marks on signals' touches)."""
    return f.signal(
        symbol=symbol, bid=mid - 0.5, ask=mid + 0.5, price=mid, direction=0, score=0.0,
        ts_event=t, ts_init=t, event_id=f"01Q{t}",
    )  # fmt: skip


def _reports(order: OrderRequest, rng: random.Random, t: int) -> list[ExecutionReport]:
    """An ack, then one or two fills at a price near the reference, with fees."""
    common = {
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "strategy_id": order.strategy_id,
        "side": order.side,
        "quantity": order.quantity,
        "ts_event": t,
        "ts_init": t,
    }
    out = [
        f.execution(**common, status=OrderStatus.ACKNOWLEDGED, cum_qty=D(0),
                    leaves_qty=order.quantity, last_qty=D(0), last_price=None, fee=D(0))
    ]  # fmt: skip
    parts = [order.quantity] if rng.random() < 0.5 else [order.quantity / 2] * 2
    cum = D(0)
    for i, part in enumerate(parts):
        cum += part
        price = order.reference_price * D(1 + rng.uniform(-0.001, 0.001)).quantize(D("1e-6"))
        fee = (part * price * D("0.00075")).quantize(D("1e-8"))
        status = OrderStatus.FILLED if cum == order.quantity else OrderStatus.PARTIALLY_FILLED
        out.append(
            f.execution(**common, status=status, cum_qty=cum, leaves_qty=order.quantity - cum,
                        last_qty=part, last_price=price.quantize(D("0.01")), fee=fee,
                        trade_id=f"{order.client_order_id}-{i}")
        )  # fmt: skip
    return out


def _live_run(seed: int) -> tuple[RiskHandler, list[ExecutionReport], list[Signal]]:
    rng = random.Random(seed)
    live = _handler()
    ledger: list[ExecutionReport] = []
    latest: dict[str, Signal] = {}
    mids = dict(PRICES)
    for n in range(120):
        t = f.T0 + n * S
        symbol = rng.choice(KEYS)
        mids[symbol] *= 1 + rng.gauss(0, 0.002)
        latest[symbol] = _touch(symbol, mids[symbol], t)
        p = rng.choice([0.05, 0.2, 0.5, 0.8, 0.95])
        signal = f.signal(
            event_id=f"01S{n}",
            symbol=symbol,
            strategy_id=rng.choice(["trend", "revert"]),
            direction=1 if p > 0.55 else -1 if p < 0.45 else 0,
            probability=p,
            score=2 * p - 1,
            price=mids[symbol],
            ts_event=t,
            ts_init=t,
            bid=latest[symbol].bid,
            ask=latest[symbol].ask,
        )
        for emit in live.handle(signal, SIGNALS, t):
            if not isinstance(emit.event, OrderRequest):
                continue
            for report in _reports(emit.event, rng, t):
                ledger.append(report)
                live.handle(report, EXECUTIONS, t)
                if report.is_fill and rng.random() < 0.3:
                    live.handle(report, EXECUTIONS, t)  # redelivered: must not count twice
    return live, ledger, list(latest.values())


def test_books_when_ledger_replayed_into_fresh_handler_equal_the_live_books() -> None:
    live, ledger, quotes = _live_run(seed=1)
    assert sum(r.is_fill for r in ledger) > 40  # the scenario really trades

    rebuilt = _handler()
    for r in ledger:
        rebuilt.handle(r, EXECUTIONS, f.T0)
    for touch in quotes:
        rebuilt.handle(touch, SIGNALS, touch.ts_init)  # marks; the orders it asks are not books

    assert rebuilt.positions == live.positions
    assert rebuilt.engine.state.books.strategies == live.engine.state.books.strategies
    assert rebuilt.pnl() == live.pnl()
    for strategy in ("trend", "revert"):
        assert rebuilt.pnl(strategy) == live.pnl(strategy)


def test_books_when_ledger_replayed_positions_equal_the_signed_sum_of_fills() -> None:
    live, ledger, _ = _live_run(seed=2)
    fills = {(r.client_order_id, r.trade_id): r for r in ledger if r.is_fill}
    expected: dict[str, Decimal] = {}
    fees = D(0)
    for r in fills.values():
        sign = 1 if r.side == "buy" else -1
        expected[r.key] = expected.get(r.key, D(0)) + sign * r.last_qty
        fees += r.fee

    assert {k: p.qty for k, p in live.positions.items()} == expected
    assert D(live.pnl()["fees"]) == fees.quantize(D("1e-8"))


def test_books_when_ledger_replayed_twice_changes_nothing() -> None:
    live, ledger, _ = _live_run(seed=3)
    before = live.snapshot()

    for r in ledger:
        live.handle(r, EXECUTIONS, f.T0 + 10**6 * S)

    assert orjson.loads(live.snapshot())["books"] == orjson.loads(before)["books"]


def test_books_when_strategies_offset_account_nets_and_realizes() -> None:
    books = Books()
    key = f.KEY
    books.apply(Fill("a1", "1", "a", key, D(1), D(100), D(0), f.T0))
    books.apply(Fill("b1", "2", "b", key, D(-1), D(110), D(0), f.T0))

    def mark(_: str) -> Decimal:
        return D(105)

    assert books.qty(key) == 0
    assert (books.qty(key, "a"), books.qty(key, "b")) == (D(1), D(-1))
    assert books.pnl(mark).realized == D(10)  # the account bought at 100, sold at 110
    assert (books.pnl(mark, "a").unrealized, books.pnl(mark, "b").unrealized) == (D(5), D(5))
    assert books.pnl(mark).net == books.pnl(mark, "a").net + books.pnl(mark, "b").net


def test_books_net_equals_the_breakdowns_net_for_random_fills() -> None:
    rng = random.Random(11)
    books = Books()
    keys = [f.KEY, "binance:ETH/USDT", "binance:SOL/USDT"]
    marks = {k: D(str(round(rng.uniform(10, 70_000), 2))) for k in keys[:2]}  # one unmarked

    def mark(key: str) -> Decimal | None:
        return marks.get(key)

    for i in range(300):
        qty = D(str(round(rng.uniform(-2, 2), 5))) or D("0.00001")
        price = D(str(round(rng.uniform(10, 70_000), 2)))
        fill = Fill(f"o{i}", "1", rng.choice("ab"), rng.choice(keys), qty, price, D("0.1"), f.T0)
        books.apply(fill)
        for strategy in (None, "a", "b"):
            assert books.net(mark, strategy) == books.pnl(mark, strategy).net


def test_books_when_fill_has_no_trade_id_dedupes_on_cumulative_quantity() -> None:
    handler = _handler()
    first = f.execution(trade_id=None, quantity=D(1), cum_qty=D("0.4"), last_qty=D("0.4"),
                        status=OrderStatus.PARTIALLY_FILLED, leaves_qty=D("0.6"))  # fmt: skip
    second = f.execution(trade_id=None, quantity=D(1), cum_qty=D(1), last_qty=D("0.6"))

    for r in (first, first, second, second, first):
        handler.handle(r, EXECUTIONS, f.T0)

    assert handler.positions[f.KEY].qty == D(1)


def test_books_when_published_to_cache_holds_account_and_strategy_views() -> None:
    cache = MemoryCache()
    handler = _handler(cache)
    handler.handle(f.signal(direction=0, score=0.0), SIGNALS, f.T0)  # the touch

    handler.handle(f.execution(strategy_id="trend"), EXECUTIONS, f.T0)

    account = orjson.loads(cache.get(f"positions:paper:{f.KEY}") or b"null")
    strategy = orjson.loads(cache.get(f"strategy_positions:paper:trend:{f.KEY}") or b"null")
    assert account["qty"] == strategy["qty"] == "0.5"
    assert orjson.loads(cache.get("strategy_pnl:paper:trend") or b"null") == orjson.loads(
        cache.get("pnl:paper") or b"null"
    )


def test_books_when_snapshot_restored_state_dumps_identically() -> None:
    live, _, _ = _live_run(seed=4)

    restored = _handler()
    restored.restore(live.snapshot())

    assert restored.snapshot() == live.snapshot()
    assert restored.pnl() == live.pnl()
