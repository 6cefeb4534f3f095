"""Token bucket: ccxt's rateLimit as a refill rate, reservations in arrival order, sharing."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tickpipe.ratelimit import RateLimiters, TokenBucket


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_token_bucket_when_built_from_ccxt_interval_refills_one_token_per_interval() -> None:
    bucket = TokenBucket.for_interval_ms(50)  # Binance's ccxt rateLimit

    assert bucket.rate == pytest.approx(20.0)
    assert bucket.capacity == 1.0


def test_token_bucket_when_calls_outpace_rate_spaces_them_by_cost_over_rate() -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=10.0, capacity=1.0, monotonic=t)

    waits = [bucket.acquire(sleep=t.sleep) for _ in range(4)]

    assert waits == pytest.approx([0.0, 0.1, 0.1, 0.1])
    assert t.now == pytest.approx(100.3)


def test_token_bucket_when_cost_is_an_endpoint_weight_waits_for_that_many_tokens() -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=20.0, capacity=1.0, monotonic=t)
    bucket.acquire(sleep=t.sleep)

    assert bucket.acquire(cost=5, sleep=t.sleep) == pytest.approx(0.25)


def test_token_bucket_when_idle_banks_at_most_capacity() -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=10.0, capacity=3.0, monotonic=t)
    t.now += 60  # a minute idle banks 3 tokens, not 600

    waits = [bucket.reserve() for _ in range(5)]

    assert waits == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2])


def test_token_bucket_when_reserved_concurrently_queues_waiters_in_order() -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=4.0, capacity=1.0, monotonic=t)

    waits = [bucket.reserve() for _ in range(4)]  # no sleeping in between: all reserved now

    assert waits == pytest.approx([0.0, 0.25, 0.5, 0.75])
    assert bucket.waited_s == pytest.approx(1.5)


def test_token_bucket_when_threads_share_it_never_exceeds_the_rate() -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=100.0, capacity=1.0, monotonic=t)
    waits: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            w = bucket.reserve()
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()

    # 200 calls at one instant: the last may go only after 199 refills of 10 ms.
    assert max(waits) == pytest.approx(1.99)
    assert sorted(waits) == pytest.approx([i / 100 for i in range(200)])


def test_token_bucket_when_awaited_sleeps_without_blocking_the_loop() -> None:
    bucket = TokenBucket(rate=50.0, capacity=1.0)

    async def main() -> list[float]:
        return list(await asyncio.gather(*(bucket.acquire_async() for _ in range(3))))

    waits = asyncio.run(main())

    assert waits[0] == pytest.approx(0.0, abs=0.005)
    assert sorted(waits)[-1] == pytest.approx(0.04, abs=0.01)


@pytest.mark.parametrize(("rate", "capacity"), [(0.0, 1.0), (-1.0, 1.0), (1.0, 0.0)])
def test_token_bucket_when_rate_or_capacity_not_positive_raises(
    rate: float, capacity: float
) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        TokenBucket(rate, capacity)


def test_token_bucket_when_cost_negative_raises() -> None:
    with pytest.raises(ValueError, match="negative"):
        TokenBucket(1.0).reserve(-1)


def test_rate_limiters_when_asked_twice_for_an_exchange_share_one_bucket() -> None:
    limiters = RateLimiters()

    first = limiters.for_exchange("binance", 50)
    again = limiters.for_exchange("binance", 10)  # the first configuration wins
    other = limiters.for_exchange("kraken", 1000)

    assert again is first
    assert first.rate == pytest.approx(20.0)
    assert other is not first
    assert other.rate == pytest.approx(1.0)
