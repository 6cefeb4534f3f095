"""Events as the pipeline would publish them, for the API's tests."""

from __future__ import annotations

import time
from decimal import Decimal

from tickpipe.ids import EventIds
from tickpipe.messages import ExecutionReport, OrderStatus, RiskDecision, Signal

IDS = EventIds()


def signal(symbol: str = "BTC/USDT", probability: float = 0.7, price: float = 60_000.0) -> Signal:
    now = time.time_ns()
    return Signal(
        event_id=IDS.new(),
        ts_event=now,
        ts_init=now,
        exchange="binance",
        symbol=symbol,
        strategy_id="baseline",
        model_version="v1",
        direction=1 if probability > 0.55 else (-1 if probability < 0.45 else 0),
        probability=probability,
        score=2 * probability - 1,
        feature_ts=now,
        price=price,
        volatility=0.0004,
        bid=price - 0.5,  # the touch when the bar closed: risk's reference price
        ask=price + 0.5,
    )


def report(
    coid: str, status: OrderStatus, qty: str = "0.01", last_qty: str = "0", price: str = "60000"
) -> ExecutionReport:
    now = time.time_ns()
    filled = Decimal(last_qty)
    return ExecutionReport(
        event_id=IDS.new(),
        ts_event=now,
        ts_init=now,
        exchange="binance",
        symbol="BTC/USDT",
        client_order_id=coid,
        account="paper",
        strategy_id="baseline",
        side="buy",
        status=status,
        quantity=Decimal(qty),
        cum_qty=filled,
        leaves_qty=Decimal(qty) - filled,
        last_qty=filled,
        last_price=Decimal(price) if filled else None,
        fee=Decimal("0.45") if filled else Decimal(0),
    )


def rejection(reason: str) -> RiskDecision:
    now = time.time_ns()
    return RiskDecision(
        event_id=IDS.new(),
        ts_event=now,
        ts_init=now,
        exchange="binance",
        symbol="BTC/USDT",
        strategy_id="baseline",
        account="paper",
        approved=False,
        reasons=[reason],
    )
