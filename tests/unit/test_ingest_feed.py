"""Live-feed building blocks: reconnect backoff with jitter, the staleness watchdog, overlap."""

from __future__ import annotations

import random

import pytest

from tickpipe_ingest.domain.feed import Backoff, SeenTrades, StalenessWatchdog

S = 1_000_000_000


def test_backoff_when_failures_repeat_doubles_up_to_the_cap() -> None:
    backoff = Backoff(initial_s=0.5, max_s=4.0, rng=random.Random(1))

    delays = [backoff.next_delay() for _ in range(7)]

    caps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert all(cap / 2 <= d <= cap for d, cap in zip(delays, caps, strict=True))
    assert delays[3] > delays[0]


def test_backoff_when_jittered_spreads_clients_over_the_upper_half() -> None:
    delays = [Backoff(initial_s=2.0, rng=random.Random(seed)).next_delay() for seed in range(500)]

    assert min(delays) >= 1.0 and max(delays) <= 2.0
    assert max(delays) - min(delays) > 0.9  # not all at one instant
    assert sum(delays) / len(delays) == pytest.approx(1.5, abs=0.05)


def test_backoff_when_reset_starts_from_the_initial_delay() -> None:
    backoff = Backoff(initial_s=1.0, max_s=60.0, rng=random.Random(2))
    for _ in range(5):
        backoff.next_delay()

    backoff.reset()

    assert 0.5 <= backoff.next_delay() <= 1.0


def test_staleness_watchdog_when_stream_silent_past_limit_reports_it_once_per_period() -> None:
    dog = StalenessWatchdog(stale_after_ns=10 * S)
    dog.watch("BTC/USDT", "trades", 0)
    dog.watch("BTC/USDT", "quotes", 0)
    dog.touch("BTC/USDT", "quotes", 8 * S)

    assert dog.due(9 * S) == []
    assert dog.due(10 * S) == [("BTC/USDT", "trades", 10 * S)]
    assert dog.due(15 * S) == []  # reported: re-armed for another 10 s
    assert dog.due(18 * S) == [("BTC/USDT", "quotes", 10 * S)]
    assert dog.due(20 * S) == [("BTC/USDT", "trades", 10 * S)]


def test_staleness_watchdog_when_data_flows_reports_nothing() -> None:
    dog = StalenessWatchdog(stale_after_ns=S)
    dog.watch("ETH/USDT", "trades", 0)

    for t in range(1, 50):
        dog.touch("ETH/USDT", "trades", t * S // 2)
        assert dog.due(t * S // 2 + S // 4) == []


def test_staleness_watchdog_when_watch_called_again_keeps_the_first_start() -> None:
    dog = StalenessWatchdog(stale_after_ns=S)
    dog.watch("A/B", "trades", 0)
    dog.watch("A/B", "trades", S // 2)

    assert dog.due(S) == [("A/B", "trades", S)]


def test_staleness_watchdog_when_limit_not_positive_raises() -> None:
    with pytest.raises(ValueError, match="positive"):
        StalenessWatchdog(0)


def test_seen_trades_when_id_repeats_per_symbol_says_so_within_the_window() -> None:
    seen = SeenTrades(window=3)

    assert [seen.first_time("A/B", t) for t in ("1", "2", "1", "3")] == [True, True, False, True]
    assert seen.first_time("C/D", "1") is True
    assert seen.first_time("A/B", "4") is True  # evicts "1"
    assert seen.first_time("A/B", "1") is True
    assert seen.first_time("A/B", "4") is False
