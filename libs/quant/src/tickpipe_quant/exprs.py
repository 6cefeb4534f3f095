"""Polars twins of the streaming building blocks (`indicators.py`, `microstructure.py`), for
the batch halves of the registry's entries. Each follows its twin's conventions; where the
arithmetic can follow the streaming order too, it does, so the two agree bit for bit.

polars is imported on first use (see `registry.lazy_module`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tickpipe_quant.registry import lazy_module

if TYPE_CHECKING:
    import polars as pl
else:
    pl = lazy_module("polars")


def seeded_ewm(x: pl.Expr, period: int, alpha: float) -> pl.Expr:
    """`indicators.Ema`: the mean of the first `period` non-null values (a cumulative sum,
    the streaming order), then ``v += alpha * (x - v)`` (`ewm_mean(adjust=False)`'s update);
    null before."""
    seen = x.is_not_null().cum_sum()
    seed = x.fill_null(0.0).cum_sum() / period
    started = pl.when(seen == period).then(seed).when(seen > period).then(x)
    return pl.when(seen >= period).then(started.ewm_mean(alpha=alpha, adjust=False))


# Windows of prices are taken relative to the first value: polars' rolling variance cancels
# on raw prices (~3e-12 relative error on BTC); shifted it is exact to ~1e-15.
def price_rolling_mean(x: pl.Expr, period: int) -> pl.Expr:
    anchor = x.first()
    return (x - anchor).rolling_mean(period) + anchor


def price_rolling_std(x: pl.Expr, period: int, ddof: int) -> pl.Expr:
    return (x - x.first()).rolling_std(period, ddof=ddof)


def share(part: pl.Expr, whole: pl.Expr) -> pl.Expr:
    """part / whole; 0 when whole is 0; null while whole is null (`microstructure.share`)."""
    return pl.when(whole > 0).then(part / whole).when(whole == 0).then(0.0)


def imbalance(buy: pl.Expr, sell: pl.Expr) -> pl.Expr:
    return share(buy - sell, buy + sell)


def mid(bid: pl.Expr, ask: pl.Expr) -> pl.Expr:
    return (bid + ask) / 2.0


def microprice(bid: pl.Expr, ask: pl.Expr, bid_size: pl.Expr, ask_size: pl.Expr) -> pl.Expr:
    depth = bid_size + ask_size
    return (
        pl.when(depth > 0).then((bid * ask_size + ask * bid_size) / depth).otherwise(mid(bid, ask))
    )


def spread_bps(bid: pl.Expr, ask: pl.Expr) -> pl.Expr:
    return (ask - bid) / mid(bid, ask) * 1e4


def bps(x: pl.Expr, reference: pl.Expr) -> pl.Expr:
    return (x - reference) / reference * 1e4
