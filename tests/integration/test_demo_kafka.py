"""`tickpipe demo --kafka` against the in-process demo on the whole sample: five processes
over the real local Kafka and Redis place the same orders and fills, and realize the same
PnL and fees (the risk controls judged on wall-clock time are off in the Kafka demo,
see `tickpipe.demo.WALL_CLOCK_CONTROLS`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickpipe.demo import WALL_CLOCK_CONTROLS, run_embedded, run_kafka

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SAMPLE = Path("data/sample/binance-spot-btcusdt-20240808.gz")
SAME = ("trades", "quotes", "bars", "signals", "orders", "rejections", "fills", "dead_letters")


def test_demo_over_kafka_when_run_on_the_sample_matches_the_in_process_demo(
    kafka_bootstrap: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in WALL_CLOCK_CONTROLS:
        monkeypatch.delenv(name, raising=False)  # the demo's own choice, not the caller's
    embedded = run_embedded(SAMPLE)
    kafka = run_kafka(SAMPLE, kafka_bootstrap, redis_url)
    assert embedded.counts["orders"] > 50 and embedded.counts.get("rejections", 0) == 0
    assert {k: kafka.counts.get(k, 0) for k in SAME} == {k: embedded.counts.get(k, 0) for k in SAME}
    for k in ("realized", "fees"):
        assert kafka.pnl[k] == embedded.pnl[k], k
