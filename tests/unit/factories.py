"""Small builders shared by the unit tests: valid events with overridable fields."""

from __future__ import annotations

import functools
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Any

from tickpipe.clock import SimClock
from tickpipe.ids import EventIds
from tickpipe.marketdata import read_binance_capture
from tickpipe.messages import (
    ControlAction,
    ControlCommand,
    DataQuality,
    DeadLetter,
    ExecutionReport,
    FeatureVector,
    FeedStatus,
    OrderRequest,
    OrderStatus,
    QualityIssue,
    QuoteTick,
    RiskDecision,
    Signal,
    TradeTick,
)
from tickpipe_ingest.domain.validation import Validator
from tickpipe_ingest.normalize import Normalizer
from tickpipe_quant.features import FEATURE_NAMES, FEATURE_SET

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample" / "binance-spot-btcusdt-20240808.gz"
EXCHANGE_INFO = REPO / "data" / "sample" / "binance-exchange-info-btcusdt.json"
MODEL_DIR = REPO / "models" / "baseline" / "v1"

# 2024-08-08 23:54:14 UTC, inside the sample capture.
T0 = 1_723_161_254_000_000_000
SECOND = 1_000_000_000
KEY = "binance:BTC/USDT"


def _base(kw: dict[str, Any], event_id: str) -> dict[str, Any]:
    fields: dict[str, Any] = {"event_id": event_id, "ts_event": T0, "ts_init": T0}
    fields.update(kw)
    return fields


def _instrument(kw: dict[str, Any], event_id: str) -> dict[str, Any]:
    fields = {"exchange": "binance", "symbol": "BTC/USDT"}
    fields.update(_base(kw, event_id))
    return fields


def trade(**kw: Any) -> TradeTick:
    fields = {"trade_id": "1", "price": 60_000.0, "size": 0.5, "side": "buy"}
    fields.update(kw)
    return TradeTick(**_instrument(fields, "01TRADE"))


def quote(**kw: Any) -> QuoteTick:
    fields = {"bid": 60_000.0, "bid_size": 1.0, "ask": 60_000.02, "ask_size": 2.0}
    fields.update(kw)
    return QuoteTick(**_instrument(fields, "01QUOTE"))


def feature_vector(**kw: Any) -> FeatureVector:
    values = dict.fromkeys(FEATURE_NAMES, 0.0)
    values.update(
        {"rsi_14": 50.0, "realized_vol_20": 0.0002, "spread_bps": 0.01, "trade_intensity": 1.0}
    )
    fields: dict[str, Any] = {
        "feature_set": FEATURE_SET,
        "bar_start": T0 - SECOND,
        "close": 60_000.0,
        "values": values,
    }
    fields.update(kw)
    return FeatureVector(**_instrument(fields, "01FEATURES"))


def signal(**kw: Any) -> Signal:
    fields: dict[str, Any] = {
        "strategy_id": "baseline",
        "model_version": "baseline:v1",
        "direction": 1,
        "probability": 0.75,
        "score": 0.5,
        "feature_ts": T0,
        "price": 60_000.0,
        "volatility": 0.001,
        "bid": 60_000.0,  # the touch `quote()` makes
        "ask": 60_000.02,
    }
    fields.update(kw)
    return Signal(**_instrument(fields, "01SIGNAL"))


def order(**kw: Any) -> OrderRequest:
    fields: dict[str, Any] = {
        "client_order_id": "tp-1",
        "account": "paper",
        "strategy_id": "baseline",
        "side": "buy",
        "quantity": Decimal("0.5"),
        "reference_price": Decimal("60000.01"),
    }
    fields.update(kw)
    return OrderRequest(**_instrument(fields, "01ORDER"))


def execution(**kw: Any) -> ExecutionReport:
    fields: dict[str, Any] = {
        "client_order_id": "tp-1",
        "account": "paper",
        "strategy_id": "baseline",
        "side": "buy",
        "status": OrderStatus.FILLED,
        "quantity": Decimal("0.5"),
        "cum_qty": Decimal("0.5"),
        "leaves_qty": Decimal(0),
        "last_qty": Decimal("0.5"),
        "last_price": Decimal("60006.01"),
        "fee": Decimal("22.50225375"),
        "fee_currency": "USDT",
    }
    fields.update(kw)
    return ExecutionReport(**_instrument(fields, "01EXECUTION"))


def risk_decision(**kw: Any) -> RiskDecision:
    fields: dict[str, Any] = {
        "strategy_id": "baseline",
        "account": "paper",
        "approved": False,
        "reasons": ["kill_switch"],
        "side": "sell",
        "quantity": Decimal("0.25"),
        "reference_price": Decimal("60000.01"),
    }
    fields.update(kw)
    return RiskDecision(**_instrument(fields, "01DECISION"))


def control(action: ControlAction = ControlAction.KILL_SWITCH_ON, **kw: Any) -> ControlCommand:
    fields: dict[str, Any] = {"action": action, "issued_by": "ops", "reason": "test"}
    fields.update(kw)
    return ControlCommand(**_base(fields, "01CONTROL"))


def dead_letter(**kw: Any) -> DeadLetter:
    fields: dict[str, Any] = {
        "service": "feature",
        "source": "md.trades.v1",
        "reason": "invalid_payload",
        "detail": "price: Input should be a finite number",
        "partition": 2,
        "offset": 17,
        "key": KEY,
        "payload_b64": "eyJ4IjogMX0=",
    }
    fields.update(kw)
    return DeadLetter(**_base(fields, "01DEADLETTER"))


def data_quality(**kw: Any) -> DataQuality:
    fields: dict[str, Any] = {
        "source": "binance-ws",
        "stream": "trades",
        "status": FeedStatus.DEGRADED,
        "issue": QualityIssue.GAP,
        "expected": 101,
        "received": 105,
    }
    fields.update(kw)
    return DataQuality(**_instrument(fields, "01QUALITY"))


@functools.cache
def _sample_market(n: int, seed: int) -> tuple[TradeTick | QuoteTick, ...]:
    clock = SimClock()
    normalize = Normalizer(clock, EventIds(clock, seed=seed), "file:t", Validator(), live=False)
    out: list[TradeTick | QuoteTick] = []
    for item in islice(read_binance_capture(SAMPLE), n):
        clock.advance_to(item.ts_event)
        event = normalize(item).event
        if isinstance(event, (TradeTick, QuoteTick)):
            out.append(event)
    return tuple(out)


def sample_market(n: int, seed: int = 3) -> list[TradeTick | QuoteTick]:
    """The trades and quotes of the sample's first `n` records, normalized as ingest does
    (event ids drawn from `seed`), in arrival order."""
    return list(_sample_market(n, seed))
