"""Pipeline benchmark: trades at a steady rate through the five Kafka-connected services.

Prints throughput, end-to-end latency (a trade's ts_init at ingest -> its fill's ts_init at
execution, for every trade that led to a fill), and each service's peak RSS; then the same
pipeline on the in-memory bus. Run with `make bench` (starts local Kafka and Redis unless
TICKPIPE_KAFKA_BOOTSTRAP / TICKPIPE_REDIS_URL are set).

    .venv/bin/python bench/pipeline.py [--trades-per-s 1000] [--loops 3] [--skip-kafka]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

from tickpipe.bus.admin import create_topics
from tickpipe.bus.kafka import KafkaBus
from tickpipe.marketdata import TradeData, read_binance_capture
from tickpipe.processes import ServiceProcesses
from tickpipe.runner import EVENT_TYPE, ORIGIN_TS
from tickpipe.topics import EXECUTIONS, TopicNames

SAMPLE = Path("data/sample/binance-spot-btcusdt-20240808.gz")
DOWNSTREAM = ["feature", "inference", "risk", "execution"]
# Risk's throttles run on market time, so a fast replay throttles as live would; they and
# the loss latches are off here so that orders keep flowing for the whole timed run (the
# latches would stop trading within minutes of this strategy's losses). Every other control
# stays on.
REPLAY_RISK = {
    "TICKPIPE_RISK_MAX_ORDERS_PER_SYMBOL": "0",
    "TICKPIPE_RISK_MAX_ORDERS_GLOBAL": "0",
    "TICKPIPE_RISK_FILL_THROTTLE_COUNT": "0",
    "TICKPIPE_RISK_DUPLICATE_WINDOW_S": "0",
    "TICKPIPE_RISK_MAX_DAILY_LOSS": "none",
    "TICKPIPE_RISK_MAX_DRAWDOWN": "none",
    "TICKPIPE_RISK_ACCOUNT_MAX_DAILY_LOSS": "none",
    "TICKPIPE_RISK_ACCOUNT_MAX_DRAWDOWN": "none",
}


@dataclass
class Result:
    mode: str
    records: int
    trades: int
    seconds: float
    latencies_ms: list[float]
    rss_mib: dict[str, float]
    fills: int | None = None  # when none are timed (in-memory): how many there were

    def row(self) -> list[str]:
        lat = sorted(self.latencies_ms)

        def pct(q: float) -> str:
            if not lat:
                return "—"
            return f"{lat[min(len(lat) - 1, int(q * len(lat)))]:.2f}"

        return [
            self.mode,
            f"{self.trades / self.seconds:,.0f}",
            f"{self.records / self.seconds:,.0f}",
            str(len(lat)) if lat or self.fills is None else f"{self.fills} (untimed)",
            f"{statistics.median(lat):.2f}" if lat else "—",
            pct(0.99),
            f"{lat[-1]:.2f}" if lat else "—",
            ", ".join(f"{k} {v:.0f}" for k, v in self.rss_mib.items()),
        ]


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _sample_mix() -> tuple[int, int]:
    items = [i for i in read_binance_capture(SAMPLE) if not isinstance(i, Exception)]
    return len(items), sum(isinstance(i, TradeData) for i in items)


def run_kafka(
    bootstrap: str,
    redis_url: str,
    trades_per_s: float,
    loops: int | None,
    warmup_s: float,
    tail_s: float = 5.0,
) -> Result:
    records_per_loop, trades_per_loop = _sample_mix()
    rate = None if trades_per_s <= 0 else trades_per_s * records_per_loop / trades_per_loop
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    names = TopicNames(namespace)
    create_topics(bootstrap, names)
    env = {
        "TICKPIPE_BUS": "kafka",
        "TICKPIPE_KAFKA_BOOTSTRAP": bootstrap,
        "TICKPIPE_REDIS_URL": redis_url,
        "TICKPIPE_TOPIC_NAMESPACE": namespace,
        "TICKPIPE_INGEST_FILE": str(SAMPLE),
        "TICKPIPE_INGEST_LOOPS": str(loops or 1),
        "TICKPIPE_LOG_LEVEL": "WARNING",
        **REPLAY_RISK,
    }
    if rate:
        env["TICKPIPE_INGEST_RATE"] = f"{rate:.1f}"
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as logs:
        procs = ServiceProcesses(env, Path(logs), base_port=None)
        try:
            for name in DOWNSTREAM:
                procs.start(name)
            procs.wait_ready(DOWNSTREAM)
            link = KafkaBus(bootstrap, names).link(
                group=f"{namespace}.bench", topics=[EXECUTIONS], client_id="bench"
            )
            started = time.monotonic()
            first_origin: int | None = None
            procs.start("ingest")
            last = time.monotonic()
            while True:
                records = link.poll(500, 0.2)
                for r in records:
                    origin = r.header(ORIGIN_TS)
                    body = orjson.loads(r.value)
                    if (
                        r.header(EVENT_TYPE) != b"execution"
                        or body["last_qty"] == "0"
                        or not origin
                    ):
                        continue
                    if first_origin is None:
                        first_origin = int(origin)
                    # Start-up (producer ids, group joins, JIT of the broker) is not steady state.
                    if int(origin) - first_origin >= warmup_s * 1e9:
                        latencies.append((body["ts_init"] - int(origin)) / 1e6)
                if records:
                    last = time.monotonic()
                if procs.procs["ingest"].poll() is not None and time.monotonic() - last > tail_s:
                    break
            # The ingest process publishes everything; the pipeline drained within tail_s.
            seconds = last - started
            link.close()
            rss = {n: _peak_rss_mib(p.pid) for n, p in procs.procs.items() if p.poll() is None}
        finally:
            codes = procs.stop()
    if any(codes.values()):
        raise SystemExit(f"a service failed: {codes}")
    mode = f"kafka @ {trades_per_s:,.0f} trades/s" if rate else "kafka, max speed"
    return Result(
        mode,
        records_per_loop * (loops or 1),
        trades_per_loop * (loops or 1),
        seconds,
        latencies,
        rss,
    )


def run_memory(loops: int) -> Result:
    """The embedded pipeline in a child process, so its peak RSS is its own."""
    code = f"""
import os, resource, time, orjson
os.environ["TICKPIPE_INGEST_LOOPS"] = "{loops}"
os.environ["TICKPIPE_INGEST_FILE"] = "{SAMPLE}"
from tickpipe.app import load_specs
from tickpipe.embedded import EmbeddedPipeline
specs = load_specs()
p = EmbeddedPipeline(list(specs.values()))
t = time.perf_counter(); n = p.run(); s = time.perf_counter() - t
fills = sum(1 for r in p.bus.records("executions.v1") if orjson.loads(r.value)["last_qty"] != "0")
print(orjson.dumps({{"n": n, "s": s, "fills": fills,
    "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}).decode())
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    data = orjson.loads(out.stdout.strip().splitlines()[-1])
    _, trades_per_loop = _sample_mix()
    return Result(
        "in-memory, max speed",
        data["n"],
        trades_per_loop * loops,
        data["s"],
        [],
        {"all five": data["rss"]},
        fills=data["fills"],
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trades-per-s", type=float, default=1000.0)
    ap.add_argument("--loops", type=int, default=3)
    ap.add_argument("--skip-kafka", action="store_true")
    ap.add_argument(
        "--warmup-s",
        type=float,
        default=5.0,
        help="fills from trades in the first seconds are left out of latency",
    )
    args = ap.parse_args()
    results: list[Result] = []
    if not args.skip_kafka:
        bootstrap = os.environ.get("TICKPIPE_KAFKA_BOOTSTRAP")
        redis_url = os.environ.get("TICKPIPE_REDIS_URL")
        state = None
        if not bootstrap or not redis_url:
            from tickpipe.infra.manager import down, up

            state = Path(tempfile.mkdtemp(prefix="tickpipe-bench-"))
            endpoints = up(state, kafka_port=0, controller_port=0, redis_port=0)
            bootstrap, redis_url = endpoints.kafka_bootstrap, endpoints.redis_url
        try:
            results.append(
                run_kafka(bootstrap, redis_url, args.trades_per_s, args.loops, args.warmup_s)
            )
            results.append(run_kafka(bootstrap, redis_url, 0, args.loops, args.warmup_s))
        finally:
            if state is not None:
                down(state, purge=True)
    results.append(run_memory(args.loops))
    table = Table(
        title=f"tickpipe pipeline benchmark — {SAMPLE.name} ×{args.loops}, {os.cpu_count()} cores"
    )
    for col in (
        "mode",
        "trades/s",
        "records/s",
        "fills",
        "p50 ms",
        "p99 ms",
        "max ms",
        "peak RSS MiB",
    ):
        table.add_column(col, justify="left" if col in ("mode", "peak RSS MiB") else "right")
    for r in results:
        table.add_row(*r.row())
    Console(width=180).print(table)
    print(
        f"latency: trade ts_init at ingest -> fill ts_init at execution, per fill after the first "
        f"{args.warmup_s:g} s; "
        f"bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
