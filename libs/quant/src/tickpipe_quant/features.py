"""Feature sets: versioned, named feature vectors computed per closed bar.

The feature service and model training both use `FeatureEngine`, so live features and
training features come from the same code.
"""

from __future__ import annotations

import math

from tickpipe_quant.bars import Bar
from tickpipe_quant.indicators import Ema, RollingStd, Rsi

FEATURE_SET = "bars1s.v1"
FEATURE_NAMES: tuple[str, ...] = (
    "log_ret_1",
    "log_ret_5",
    "ema_fast_dev",
    "ema_slow_dev",
    "rsi_14",
    "realized_vol_20",
    "order_flow_imbalance",
    "vwap_dev",
    "spread_bps",
    "trade_intensity",
)


class FeatureEngine:
    """Per-instrument state; `on_bar` returns the feature vector once every input is warm."""

    def __init__(self) -> None:
        self._closes: list[float] = []
        self._ema_fast = Ema(12)
        self._ema_slow = Ema(26)
        self._rsi = Rsi(14)
        self._vol = RollingStd(20)
        self._count_ema = Ema(20)
        self._spread_bps = math.nan

    def on_quote(self, bid: float, ask: float) -> None:
        mid = (bid + ask) / 2
        self._spread_bps = (ask - bid) / mid * 1e4

    def on_bar(self, bar: Bar) -> dict[str, float] | None:
        closes = self._closes
        closes.append(bar.close)
        if len(closes) > 6:
            del closes[0]
        log_ret_1 = math.log(bar.close / closes[-2]) if len(closes) >= 2 else math.nan
        log_ret_5 = math.log(bar.close / closes[0]) if len(closes) == 6 else math.nan
        fast = self._ema_fast.update(bar.close)
        slow = self._ema_slow.update(bar.close)
        rsi = self._rsi.update(bar.close)
        vol = self._vol.update(log_ret_1) if not math.isnan(log_ret_1) else math.nan
        intensity = self._count_ema.update(float(bar.count))
        total = bar.buy_volume + bar.sell_volume
        values = {
            "log_ret_1": log_ret_1,
            "log_ret_5": log_ret_5,
            "ema_fast_dev": bar.close / fast - 1.0,
            "ema_slow_dev": bar.close / slow - 1.0,
            "rsi_14": rsi,
            "realized_vol_20": vol,
            "order_flow_imbalance": (bar.buy_volume - bar.sell_volume) / total if total else 0.0,
            "vwap_dev": bar.close / bar.vwap - 1.0,
            "spread_bps": self._spread_bps,
            "trade_intensity": bar.count / intensity if intensity > 0 else math.nan,
        }
        if any(math.isnan(v) for v in values.values()):
            return None
        return values
