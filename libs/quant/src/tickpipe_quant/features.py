"""The live feature set: one registry entry per feature (see `registry.py`).

Each `Feature` gives its streaming half (evaluated per bar by `FeatureEngine`, which the
feature service runs) and its batch half (polars, `batch.py`: training, backfills,
backtests); `tests/unit/test_batch_parity.py` holds the two equal for every entry. State
several features share is a `Component`: an indicator from `indicators.py` updated once per
bar, beside the polars expressions of what it exposes. Windows are the components' `params`.

The set is named after the bar interval and a digest of these entries, e.g.
`bars1s.<digest>`: inference refuses vectors whose set differs from its model's.

Adding a feature: one `Feature` here, where it goes in the vector (and a `Component` when it
needs state no component keeps). The parity test picks it up; the set's name changes, so
the shipped model is refused until retrained (`tickpipe train`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tickpipe_quant import exprs
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
from tickpipe_quant.registry import (
    BatchInputs,
    Component,
    Feature,
    FeatureSet,
    StreamingEngine,
    lazy_module,
)

if TYPE_CHECKING:
    import polars as pl
else:
    pl = lazy_module("polars")

Exprs = dict[str, "pl.Expr"]


# -- Components' batch halves: the polars expressions of the indicators' attributes ----------
def _return(x: BatchInputs, lag: int) -> Exprs:
    return {"value": x.close / x.close.shift(lag) - 1.0}


def _log_return(x: BatchInputs, lag: int) -> Exprs:
    return {"value": (x.close / x.close.shift(lag)).log()}


def _sma(x: BatchInputs, period: int) -> Exprs:
    return {"value": exprs.price_rolling_mean(x.close, period)}


def _macd(x: BatchInputs, fast: int, slow: int, signal: int) -> Exprs:
    fast_ema = exprs.seeded_ewm(x.close, fast, 2.0 / (fast + 1))
    slow_ema = exprs.seeded_ewm(x.close, slow, 2.0 / (slow + 1))
    line = fast_ema - slow_ema
    signal_line = exprs.seeded_ewm(line, signal, 2.0 / (signal + 1))
    hist = line - signal_line
    return {"fast": fast_ema, "slow": slow_ema, "value": line, "signal": signal_line, "hist": hist}


def _rsi(x: BatchInputs, period: int) -> Exprs:
    change = x.close - x.close.shift(1)
    moved = change.is_not_null()
    up = pl.when(change > 0).then(change).when(moved).then(0.0)
    down = pl.when(change < 0).then(-change).when(moved).then(0.0)
    gain = exprs.seeded_ewm(up, period, 1.0 / period)
    loss = exprs.seeded_ewm(down, period, 1.0 / period)
    moves = gain + loss
    rsi = pl.when(moves > 0).then(100.0 * (gain / moves)).when(moves.is_not_null()).then(50.0)
    return {"value": rsi}


def _bollinger(x: BatchInputs, period: int, k: float) -> Exprs:
    c = x.close
    std = exprs.price_rolling_std(c, period, ddof=0)
    middle = exprs.price_rolling_mean(c, period)
    upper, lower = middle + k * std, middle - k * std
    band = upper - lower
    pct_b = pl.when(band > 0).then((c - lower) / band).when(band.is_not_null()).then(0.5)
    return {
        "middle": middle,
        "upper": upper,
        "lower": lower,
        "pct_b": pct_b,
        "width": band / middle,
    }


def _atr(x: BatchInputs, period: int) -> Exprs:
    prev = x.close.shift(1)
    true_range = pl.when(prev.is_not_null()).then(
        pl.max_horizontal(x.high - x.low, (x.high - prev).abs(), (x.low - prev).abs())
    )
    return {"value": exprs.seeded_ewm(true_range, period, 1.0 / period)}


def _realized_vol(x: BatchInputs, period: int) -> Exprs:
    log_ret = (x.close / x.close.shift(1)).log()
    return {"value": log_ret.rolling_std(period, ddof=1)}


def _buy_sum(x: BatchInputs, period: int) -> Exprs:
    return {"value": x.buy_volume.rolling_sum(period)}


def _sell_sum(x: BatchInputs, period: int) -> Exprs:
    return {"value": x.sell_volume.rolling_sum(period)}


def _count_ema(x: BatchInputs, period: int) -> Exprs:
    return {"value": exprs.seeded_ewm(x.count.cast(pl.Float64), period, 2.0 / (period + 1))}


# Update order does not matter (no component reads another); the names are the snapshot's.
COMPONENTS = (
    Component("ret_1", Return, "close", _return, {"lag": 1}),
    Component("log_ret_1", LogReturn, "close", _log_return, {"lag": 1}),
    Component("log_ret_5", LogReturn, "close", _log_return, {"lag": 5}),
    Component("sma", Sma, "close", _sma, {"period": 20}),
    Component("macd", Macd, "close", _macd, {"fast": 12, "slow": 26, "signal": 9}),
    Component("rsi", Rsi, "close", _rsi, {"period": 14}),  # Wilder's
    Component("bb", Bollinger, "close", _bollinger, {"period": 20, "k": 2.0}),
    Component("atr", Atr, "bar.high, bar.low, close", _atr, {"period": 14}),
    Component("vol", RealizedVol, "close", _realized_vol, {"period": 20}),
    Component("buy", RollingSum, "bar.buy_volume", _buy_sum, {"period": 10}),
    Component("sell", RollingSum, "bar.sell_volume", _sell_sum, {"period": 10}),
    Component("intensity", Ema, "float(bar.count)", _count_ema, {"period": 20}),
)

# Feature(name, streaming half, batch half). Stream expressions read `bar`, `close`, the
# latest quote (`bid`, `ask`, `bid_size`, `ask_size`), the components and the helpers below.
REGISTRY = FeatureSet(
    COMPONENTS,
    (
        # returns
        Feature("ret_1", "ret_1.value", lambda x: x["ret_1.value"]),
        Feature("log_ret_1", "log_ret_1.value", lambda x: x["log_ret_1.value"]),
        Feature("log_ret_5", "log_ret_5.value", lambda x: x["log_ret_5.value"]),
        # trend
        Feature(
            "sma_dev_20",
            "close / sma.value - 1.0",
            lambda x: x.close / x["sma.value"] - 1.0,
            exact=False,
        ),
        Feature(
            "ema_fast_dev", "close / macd.fast - 1.0", lambda x: x.close / x["macd.fast"] - 1.0
        ),
        Feature(
            "ema_slow_dev", "close / macd.slow - 1.0", lambda x: x.close / x["macd.slow"] - 1.0
        ),
        Feature("macd_rel", "macd.value / close", lambda x: x["macd.value"] / x.close),
        Feature("macd_signal_rel", "macd.signal / close", lambda x: x["macd.signal"] / x.close),
        Feature("macd_hist_rel", "macd.hist / close", lambda x: x["macd.hist"] / x.close),
        # oscillators
        Feature("rsi_14", "rsi.value", lambda x: x["rsi.value"]),
        # (close - lower) / (upper - lower); 0.5 for zero-width bands
        Feature("bb_pct_b", "bb.pct_b", lambda x: x["bb.pct_b"], exact=False),
        Feature("bb_width", "bb.width", lambda x: x["bb.width"], exact=False),  # band / middle
        # volatility
        Feature("atr_rel_14", "atr.value / close", lambda x: x["atr.value"] / x.close),
        # sample std of the last 20 one-bar log returns
        Feature("realized_vol_20", "vol.value", lambda x: x["vol.value"], exact=False),
        # flow
        Feature("vwap_dev", "close / bar.vwap - 1.0", lambda x: x.close / x.vwap - 1.0),
        Feature(
            "order_flow_imbalance",
            "imbalance(bar.buy_volume, bar.sell_volume)",
            lambda x: exprs.imbalance(x.buy_volume, x.sell_volume),
        ),
        Feature(
            "order_flow_imbalance_10",
            "imbalance(buy.value, sell.value)",
            lambda x: exprs.imbalance(x["buy.value"], x["sell.value"]),
            exact=False,
        ),
        # trades in the bar / EMA(20) of that count
        Feature(
            "trade_intensity",
            "share(bar.count, intensity.value)",
            lambda x: exprs.share(x.count.cast(pl.Float64), x["intensity.value"]),
        ),
        Feature("bar_empty", "1.0 if bar.empty else 0.0", lambda x: x.empty.cast(pl.Float64)),
        # book: the latest quote
        Feature("spread_bps", "spread_bps(bid, ask)", lambda x: exprs.spread_bps(x.bid, x.ask)),
        Feature(
            "close_mid_bps",
            "bps(close, mid(bid, ask))",
            lambda x: exprs.bps(x.close, exprs.mid(x.bid, x.ask)),
        ),
        # microprice against mid: book pressure
        Feature(
            "micro_mid_bps",
            "bps(microprice(bid, ask, bid_size, ask_size), mid(bid, ask))",
            lambda x: exprs.bps(
                exprs.microprice(x.bid, x.ask, x.bid_size, x.ask_size), exprs.mid(x.bid, x.ask)
            ),
        ),
    ),
    helpers=(bps, imbalance, microprice, mid, share, spread_bps),
)

FEATURE_NAMES: tuple[str, ...] = REGISTRY.names


def feature_set_name(interval_ns: int) -> str:
    """`bars1s.<digest>`, `bars1m.<digest>`, `bars250ms.<digest>`: the interval and the
    definitions are part of the contract."""
    return REGISTRY.set_name(interval_ns)


FEATURE_SET = feature_set_name(1_000_000_000)


class FeatureEngine(StreamingEngine, features=REGISTRY):
    """One instrument's indicators. `on_bar` returns the feature vector once every feature is
    defined (after MACD's signal warms up, bar 26 + 9 - 1, and a quote); the indicators
    update on every bar, warm or not."""

    __slots__ = ()
