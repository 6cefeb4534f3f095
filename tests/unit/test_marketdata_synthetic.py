"""The synthetic market: seeded, many symbols, valid, heavy-tailed sizes, jumps, real spreads."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from itertools import islice, pairwise

import pytest

from tickpipe.marketdata import QuoteData, SyntheticConfig, SyntheticMarket, TradeData
from tickpipe_ingest.domain.quality import CollectingQuality
from tickpipe_ingest.domain.validation import Validator

START = 1_795_000_000_000_000_000
N = 20_000


def _events(config: SyntheticConfig, n: int = N) -> list[TradeData | QuoteData]:
    return list(islice(SyntheticMarket(config, START), n))


def test_synthetic_market_when_seeded_repeats_exactly_and_differs_by_seed() -> None:
    a = _events(SyntheticConfig(seed=7), 2_000)
    b = _events(SyntheticConfig(seed=7), 2_000)
    c = _events(SyntheticConfig(seed=8), 2_000)

    assert a == b
    assert [e.symbol for e in a] != [e.symbol for e in c]


def test_synthetic_market_when_many_symbols_trades_each_with_skewed_activity() -> None:
    events = _events(SyntheticConfig(symbol_count=50, seed=1))

    counts = Counter(e.symbol for e in events)
    assert set(counts) == {f"SYN{i:03d}/USDT" for i in range(50)}
    assert counts["SYN000/USDT"] > 5 * counts["SYN049/USDT"]  # Zipf-like, as on exchanges


def test_synthetic_market_when_validated_passes_every_event_with_no_gaps() -> None:
    quality = CollectingQuality()
    validator = Validator(quality=quality)

    reasons = [
        validator.trade(e, e.ts_event)
        if isinstance(e, TradeData)
        else validator.quote(e, e.ts_event)
        for e in _events(SyntheticConfig(seed=2))
    ]

    assert set(reasons) == {None}
    assert list(quality.events) == []  # ids and sequences step by one per symbol


def test_synthetic_market_when_running_keeps_rate_mix_and_time_order() -> None:
    config = SyntheticConfig(rate=2_000.0, trade_ratio=0.25, seed=3)
    events = _events(config)

    stamps = [e.ts_event for e in events]
    assert stamps == sorted(stamps)
    seconds = (stamps[-1] - START) / 1e9
    assert N / seconds == pytest.approx(2_000, rel=0.05)
    trades = sum(isinstance(e, TradeData) for e in events)
    assert trades / N == pytest.approx(0.25, abs=0.02)


def test_synthetic_market_when_trading_sizes_are_heavy_tailed() -> None:
    events = _events(SyntheticConfig(symbols=("BTC/USDT",), seed=4), 30_000)
    sizes = [e.size for e in events if isinstance(e, TradeData)]

    median = statistics.median(sizes)
    # Pareto(1.3): the largest of ~9k trades dwarfs the median; a thin tail would not.
    assert max(sizes) > 100 * median
    assert statistics.mean(sizes) > 1.5 * median


def test_synthetic_market_when_quoting_spreads_are_ticks_wide_and_never_crossed() -> None:
    events = _events(SyntheticConfig(symbols=("ETH/USDT",), seed=5))
    quotes = [e for e in events if isinstance(e, QuoteData)]

    spreads_bps = [(q.ask - q.bid) / q.bid * 1e4 for q in quotes]
    assert all(q.bid < q.ask and q.bid_size > 0 and q.ask_size > 0 for q in quotes)
    assert 0 < statistics.median(spreads_bps) < 50
    assert len({round(s, 6) for s in spreads_bps}) > 3  # spreads vary, not one constant


def test_synthetic_market_when_jumps_enabled_has_fat_tailed_returns() -> None:
    config = SyntheticConfig(symbols=("SOL/USDT",), rate=200.0, jumps_per_hour=600.0, seed=6)
    trades = [e for e in _events(config, 25_000) if isinstance(e, TradeData)]
    returns = [math.log(b.price / a.price) for a, b in pairwise(trades)]

    mean = statistics.fmean(returns)
    sd = statistics.pstdev(returns)
    kurtosis = statistics.fmean([((r - mean) / sd) ** 4 for r in returns])
    assert kurtosis > 6  # a normal has 3


def test_synthetic_market_when_rate_not_positive_raises() -> None:
    with pytest.raises(ValueError, match="rate"):
        SyntheticMarket(SyntheticConfig(rate=0), START)
