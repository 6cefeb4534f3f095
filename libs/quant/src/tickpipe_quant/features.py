"""Feature sets: versioned, named feature vectors computed per emitted bar.

`FeatureEngine` is the streaming implementation (the feature service runs it); `batch.py`
computes the same set with polars over whole files (training and backfills). Both read
their windows and the names from here; `tests/unit/test_batch_parity.py` holds them equal.

The set is named after the bar interval and a version, e.g. `bars1s.v2`: inference refuses
vectors whose set differs from its model's. Change a feature, a window or a name: bump
`FEATURE_VERSION`.
"""

from __future__ import annotations

import math

from tickpipe_quant.bars import Bar
from tickpipe_quant.indicators import (
    Atr,
    Bollinger,
    Ema,
    LogReturn,
    Macd,
    RealizedVol,
    Return,
    RollingSum,
    Rsi,
    Sma,
)
from tickpipe_quant.microstructure import bps, imbalance, microprice, mid, share, spread_bps
from tickpipe_quant.state import SlotState

FEATURE_VERSION = "v2"

# Windows, in bars.
LONG_RETURN = 5
SMA_PERIOD = 20
EMA_FAST, EMA_SLOW, MACD_SIGNAL = 12, 26, 9
RSI_PERIOD = 14
BB_PERIOD, BB_K = 20, 2.0
ATR_PERIOD = 14
VOL_PERIOD = 20
FLOW_PERIOD = 10
INTENSITY_PERIOD = 20

FEATURE_NAMES: tuple[str, ...] = (
    "ret_1",  # close / previous close - 1
    "log_ret_1",
    "log_ret_5",
    "sma_dev_20",  # close / SMA - 1
    "ema_fast_dev",  # close / EMA(12) - 1
    "ema_slow_dev",  # close / EMA(26) - 1
    "macd_rel",  # MACD line / close
    "macd_signal_rel",  # signal line / close
    "macd_hist_rel",  # histogram / close
    "rsi_14",
    "bb_pct_b",  # (close - lower) / (upper - lower); 0.5 for zero-width bands
    "bb_width",  # (upper - lower) / middle
    "atr_rel_14",  # ATR / close
    "realized_vol_20",  # sample std of the last 20 one-bar log returns
    "vwap_dev",  # close / bar VWAP - 1
    "order_flow_imbalance",  # (buy - sell) / (buy + sell) volume, this bar
    "order_flow_imbalance_10",  # the same over the last 10 bars
    "trade_intensity",  # trades in the bar / EMA(20) of that count
    "bar_empty",  # 1.0 for an interval without trades
    "spread_bps",  # (ask - bid) / mid, latest quote
    "close_mid_bps",  # close against the latest quote's mid
    "micro_mid_bps",  # microprice against mid: book pressure
)


def feature_set_name(interval_ns: int) -> str:
    """`bars1s.v2`, `bars1m.v2`, `bars250ms.v2`: the interval is part of the contract."""
    if interval_ns % 60_000_000_000 == 0:
        label = f"{interval_ns // 60_000_000_000}m"
    elif interval_ns % 1_000_000_000 == 0:
        label = f"{interval_ns // 1_000_000_000}s"
    elif interval_ns % 1_000_000 == 0:
        label = f"{interval_ns // 1_000_000}ms"
    else:
        label = f"{interval_ns}ns"
    return f"bars{label}.{FEATURE_VERSION}"


FEATURE_SET = feature_set_name(1_000_000_000)


class FeatureEngine(SlotState):
    """One instrument's indicators. `on_bar` returns the feature vector once every feature is
    defined (after `MACD_SIGNAL + EMA_SLOW - 1` bars and a quote); the indicators update on
    every bar, warm or not."""

    __slots__ = (
        "_ask",
        "_ask_size",
        "_atr",
        "_bb",
        "_bid",
        "_bid_size",
        "_buy",
        "_intensity",
        "_log_ret_1",
        "_log_ret_5",
        "_macd",
        "_ret_1",
        "_rsi",
        "_sell",
        "_sma",
        "_vol",
    )

    def __init__(self) -> None:
        self._ret_1 = Return(1)
        self._log_ret_1 = LogReturn(1)
        self._log_ret_5 = LogReturn(LONG_RETURN)
        self._sma = Sma(SMA_PERIOD)
        self._macd = Macd(EMA_FAST, EMA_SLOW, MACD_SIGNAL)
        self._rsi = Rsi(RSI_PERIOD)
        self._bb = Bollinger(BB_PERIOD, BB_K)
        self._atr = Atr(ATR_PERIOD)
        self._vol = RealizedVol(VOL_PERIOD)
        self._buy = RollingSum(FLOW_PERIOD)
        self._sell = RollingSum(FLOW_PERIOD)
        self._intensity = Ema(INTENSITY_PERIOD)
        self._bid = self._ask = self._bid_size = self._ask_size = math.nan

    def on_quote(self, bid: float, ask: float, bid_size: float, ask_size: float) -> None:
        self._bid, self._ask, self._bid_size, self._ask_size = bid, ask, bid_size, ask_size

    @property
    def touch(self) -> tuple[float, float] | None:
        """(bid, ask) of the latest quote; None before the first."""
        return None if math.isnan(self._bid) else (self._bid, self._ask)

    def on_bar(self, bar: Bar) -> dict[str, float] | None:
        c = bar.close
        macd = self._macd
        macd.update(c)
        bb = self._bb
        bb.update(c)
        avg_count = self._intensity.update(float(bar.count))
        quote_mid = mid(self._bid, self._ask)
        values = {
            "ret_1": self._ret_1.update(c),
            "log_ret_1": self._log_ret_1.update(c),
            "log_ret_5": self._log_ret_5.update(c),
            "sma_dev_20": c / self._sma.update(c) - 1.0,
            "ema_fast_dev": c / macd.fast - 1.0,
            "ema_slow_dev": c / macd.slow - 1.0,
            "macd_rel": macd.value / c,
            "macd_signal_rel": macd.signal / c,
            "macd_hist_rel": macd.hist / c,
            "rsi_14": self._rsi.update(c),
            "bb_pct_b": bb.pct_b,
            "bb_width": bb.width,
            "atr_rel_14": self._atr.update(bar.high, bar.low, c) / c,
            "realized_vol_20": self._vol.update(c),
            "vwap_dev": c / bar.vwap - 1.0,
            "order_flow_imbalance": imbalance(bar.buy_volume, bar.sell_volume),
            "order_flow_imbalance_10": imbalance(
                self._buy.update(bar.buy_volume), self._sell.update(bar.sell_volume)
            ),
            "trade_intensity": share(bar.count, avg_count),
            "bar_empty": 1.0 if bar.empty else 0.0,
            "spread_bps": spread_bps(self._bid, self._ask),
            "close_mid_bps": bps(c, quote_mid),
            "micro_mid_bps": bps(
                microprice(self._bid, self._ask, self._bid_size, self._ask_size), quote_mid
            ),
        }
        if any(math.isnan(v) for v in values.values()):
            return None
        return values
