"""Pipeline benchmark: the five services over Kafka (one process each), and in memory.

For each mode it replays the real Binance BTCUSDT capture (`data/sample/`, 9,757 trades and
28,040 quotes per loop, later loops shifted in time) and prints one table of medians over
`--runs` runs:

- trades/s: the rate the input reached (trades between the first and the last trade's
  `ts_init` at ingest); paced runs ask ingest for `rate` trades/s (and the quotes between them);
- fills, and fills as a share of the in-memory pipeline's on the same data and settings;
- trade -> fill latency p50/p99/max: a trade's `ts_init` at ingest to its fill's `ts_init` at
  execution, for every fill (through the `tickpipe-origin-ts` header), after `--warmup-s`;
- lag at end: records the consumer groups had not committed when the last trade was
  published (sampled every 0.25 s), and drain s: how long after it the backlog was first zero;
- CPU seconds per 1,000 trades for each service, the broker and the bench's own consumer
  (/proc/<pid>/stat over the run; ingest from its start-up to its exit, reaped with wait4);
- peak RSS per service (VmHWM).

In memory is the same five handlers in one process (`EmbeddedPipeline`), pumped as fast as
they go: every trade and quote through every handler that consumes it.

Run with `make bench` (starts a local Kafka and Redis unless TICKPIPE_KAFKA_BOOTSTRAP and
TICKPIPE_REDIS_URL are set):

    .venv/bin/python bench/pipeline.py [--runs 3] [--seconds 30] [--rates 200,1000,max]
    .venv/bin/python bench/pipeline.py --quick          # one run of each, 10 s paced runs
    .venv/bin/python bench/pipeline.py --memory-only --runs 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

SAMPLE = Path("data/sample/binance-spot-btcusdt-20240808.gz")
SERVICES = ["ingest", "feature", "inference", "risk", "execution"]
DOWNSTREAM = SERVICES[1:]
# Risk's throttles run on market time, so a fast replay throttles as live would; they and
# the loss latches are off here so that orders keep flowing for the whole timed run (the
# latches would stop trading within minutes of this strategy's losses). Every other control
# stays on. The in-memory run gets the same settings, so fills compare like for like.
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
# Topics written in Kafka transactions (risk, execution): a group that has read everything
# stays one offset short of the end on each partition that ended with a commit marker.
TRANSACTIONAL_TOPICS = {"orders.v1", "executions.v1", "risk.decisions.v1", "control.v1"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
DRAIN_LIMIT_S = 60.0  # a backlog still there this long after the input ended: not drained


@dataclass(frozen=True)
class Workload:
    """What ingest replays: `loops` of the sample, cut after `limit` records (None: all)."""

    loops: int
    limit: int | None

    def env(self) -> dict[str, str]:
        env = {"TICKPIPE_INGEST_FILE": str(SAMPLE), "TICKPIPE_INGEST_LOOPS": str(self.loops)}
        if self.limit is not None:
            env["TICKPIPE_INGEST_LIMIT"] = str(self.limit)
        return env


@dataclass
class Run:
    """One run's figures (a mode's row is the median of its runs)."""

    mode: str
    trades: int
    records: int
    input_s: float
    fills: int
    latencies_ms: list[float] = field(default_factory=list)
    lag_end: int | None = None
    drain_s: float | None = None
    cpu_s: dict[str, float] = field(default_factory=dict)
    rss_mib: dict[str, float] = field(default_factory=dict)

    @property
    def trades_per_s(self) -> float:
        return self.trades / self.input_s if self.input_s > 0 else math.nan

    def pct(self, q: float) -> float:
        lat = sorted(self.latencies_ms)
        if not lat:
            return math.nan
        return lat[min(len(lat) - 1, int(q * len(lat)))]


# -- processes ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (NaN once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def pid_listening(port: int) -> int | None:
    """The process with a TCP socket listening on `port` (the broker, when not ours)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{cols[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(proc.name)
    return None


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


# -- Kafka ----------------------------------------------------------------------------------


class Lag:
    """Records each service's consumer group has not committed, over its input topics."""

    def __init__(self, bootstrap: str, namespace: str) -> None:
        from confluent_kafka.admin import AdminClient

        from tickpipe.app import load_specs
        from tickpipe.topics import TopicNames

        self._admin = AdminClient({"bootstrap.servers": bootstrap})
        self._names = TopicNames(namespace)
        specs = load_specs()
        self._groups = {f"{namespace}.{s}": specs[s].inputs for s in DOWNSTREAM}

    def total(self) -> int:
        from confluent_kafka import ConsumerGroupTopicPartitions, IsolationLevel, TopicPartition
        from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

        committed: dict[tuple[str, str, int], int] = {}
        for group in self._groups:  # pipeline order, then the ends: never an early zero
            found = self._admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
            for tp in found[group].result(10).topic_partitions:
                committed[(group, tp.topic, tp.partition)] = tp.offset
        wanted = {self._names.physical(t) for inputs in self._groups.values() for t in inputs}
        meta = self._admin.list_topics(timeout=10)
        request = {
            TopicPartition(t, p): OffsetSpec.latest()  # type: ignore[no-untyped-call]
            for t in wanted
            for p in meta.topics[t].partitions
        }
        ends = {
            (tp.topic, tp.partition): info.offset
            for tp, f in self._admin.list_offsets(
                request, isolation_level=IsolationLevel.READ_COMMITTED
            ).items()
            for info in [f.result(10)]
        }
        total = 0
        for group, inputs in self._groups.items():
            for logical in inputs:
                topic = self._names.physical(logical)
                slack = 1 if logical in TRANSACTIONAL_TOPICS else 0
                for p in meta.topics[topic].partitions:
                    end = ends[(topic, p)]
                    done = max(0, committed.get((group, topic, p), 0))
                    if end - done > slack:
                        total += end - done
        return total


def first_last_ts_init(bootstrap: str, topic: str) -> tuple[int, int]:
    """ts_init of the first and the last record of `topic` (the input window)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}"})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        stamps: list[int] = []
        for p in parts:
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            for offset in {low, high - 1} if high > low else ():
                c.assign([TopicPartition(topic, p, offset)])
                m = c.poll(10)
                value = None if m is None or m.error() is not None else m.value()
                if value:
                    stamps.append(orjson.loads(value)["ts_init"])
        return min(stamps), max(stamps)
    finally:
        c.close()


class _Fills:
    """Fills seen on executions.v1, and their trade -> fill latency after the warm-up."""

    def __init__(self, warmup_s: float) -> None:
        self.count = 0
        self.latencies_ms: list[float] = []
        self._warmup_ns = warmup_s * 1e9
        self._first: int | None = None

    def take(self, records: Sequence[Any], origin_header: str, type_header: str) -> None:
        for r in records:
            if r.header(type_header) != b"execution":
                continue
            body = orjson.loads(r.value)
            if body["last_qty"] == "0":
                continue
            self.count += 1
            origin = r.header(origin_header)
            if not origin:
                continue
            if self._first is None:
                self._first = int(origin)
            # Start-up (producer ids, group joins, JIT of the broker) is not steady state.
            if int(origin) - self._first >= self._warmup_ns:
                self.latencies_ms.append((body["ts_init"] - int(origin)) / 1e6)


@dataclass
class _Ingest:
    """The ingest process: CPU from ready (start-up done) to exit, exactly (wait4)."""

    proc: subprocess.Popen[bytes]
    port: int
    cpu_at_ready: float | None = None
    cpu_s: float = math.nan
    rss_mib: float = math.nan
    exited_ns: int | None = None

    def check(self) -> bool:
        """True once ingest has exited (reaped here, with its resource usage)."""
        if self.exited_ns is not None:
            return True
        if self.cpu_at_ready is None and _ready(self.port):
            self.cpu_at_ready = cpu_seconds(self.proc.pid)
        pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        if not pid:
            return False
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.cpu_s = usage.ru_utime + usage.ru_stime - (self.cpu_at_ready or 0.0)
        self.rss_mib = usage.ru_maxrss / 1024
        self.exited_ns = time.time_ns()
        return True


def _watch(link: Any, fills: _Fills, ingest: _Ingest, lag: Lag, log: Any) -> list[tuple[int, int]]:
    """Take fills and sample the backlog (every 0.25 s: (time ns, records)) until ingest has
    exited and every group has committed all its input, plus a second for the last fills;
    or until the backlog outlives DRAIN_LIMIT_S after ingest's exit."""
    from tickpipe.runner import EVENT_TYPE, ORIGIN_TS

    samples: list[tuple[int, int]] = []
    drained_ns: int | None = None
    last_sample = 0.0
    while True:
        fills.take(link.poll(500, 0.05), ORIGIN_TS, EVENT_TYPE)
        now = time.monotonic()
        exited = ingest.check()
        if exited and ingest.proc.returncode:
            raise SystemExit(f"ingest failed:\n{log('ingest')[-3000:]}")
        if now - last_sample >= 0.25 and drained_ns is None:
            last_sample = now
            samples.append((time.time_ns(), lag.total()))
            if exited and samples[-1][1] == 0:
                drained_ns = samples[-1][0]
            elif exited and samples[-1][0] - (ingest.exited_ns or 0) > DRAIN_LIMIT_S * 1e9:
                return samples
        if drained_ns is not None and time.time_ns() - drained_ns > 1e9:
            return samples  # the last fills were committed with the last input


def _lag_and_drain(samples: list[tuple[int, int]], last_ns: int) -> tuple[int, float | None]:
    """The backlog when the last trade was published (the first sample from then on), and
    how long after it the backlog was first zero (None: not within the limit)."""
    after = [(t, n) for t, n in samples if t >= last_ns] or samples[-1:]
    drained = next((t for t, n in after if n == 0), None)
    return after[0][1], None if drained is None else (drained - last_ns) / 1e9


def run_kafka(
    bootstrap: str,
    redis_url: str,
    broker_pid: int | None,
    trades_per_s: float,
    work: Workload,
    mix: tuple[int, int],
    warmup_s: float,
) -> Run:
    from tickpipe.bus.admin import create_topics
    from tickpipe.bus.kafka import KafkaBus
    from tickpipe.processes import ServiceProcesses
    from tickpipe.topics import EXECUTIONS, TRADES, TopicNames

    records_per_loop, trades_per_loop = mix
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    names = TopicNames(namespace)
    create_topics(bootstrap, names)
    env = {
        "TICKPIPE_BUS": "kafka",
        "TICKPIPE_KAFKA_BOOTSTRAP": bootstrap,
        "TICKPIPE_REDIS_URL": redis_url,
        "TICKPIPE_TOPIC_NAMESPACE": namespace,
        "TICKPIPE_LOG_LEVEL": "WARNING",
        **work.env(),
        **REPLAY_RISK,
    }
    if trades_per_s > 0:
        env["TICKPIPE_INGEST_RATE"] = f"{trades_per_s * records_per_loop / trades_per_loop:.1f}"
    fills = _Fills(warmup_s)
    lag = Lag(bootstrap, namespace)
    with tempfile.TemporaryDirectory() as logs:
        procs = ServiceProcesses(env, Path(logs), base_port=None)
        try:
            for name in DOWNSTREAM:
                procs.start(name)
            procs.wait_ready(DOWNSTREAM)
            link = KafkaBus(bootstrap, names).link(
                group=f"{namespace}.bench", topics=[EXECUTIONS], client_id="bench"
            )
            pids = {n: procs.procs[n].pid for n in DOWNSTREAM}
            if broker_pid is not None:
                pids["broker"] = broker_pid
            cpu0 = {n: cpu_seconds(p) for n, p in pids.items()}
            bench0 = time.process_time()
            procs.start("ingest")
            ingest = _Ingest(procs.procs["ingest"], procs.ports["ingest"])
            samples = _watch(link, fills, ingest, lag, procs.log)
            cpu = {n: cpu_seconds(p) - cpu0[n] for n, p in pids.items()}
            cpu["ingest"] = ingest.cpu_s
            cpu["bench"] = time.process_time() - bench0
            rss = {n: peak_rss_mib(p) for n, p in pids.items() if n != "broker"}
            rss["ingest"] = ingest.rss_mib
            link.close()
        finally:
            codes = procs.stop()
    if any(c for n, c in codes.items() if n != "ingest"):
        raise SystemExit(f"a service failed: {codes}")
    first, last = first_last_ts_init(bootstrap, names.physical(TRADES))
    lag_end, drain_s = _lag_and_drain(samples, last)
    records = records_per_loop * work.loops if work.limit is None else work.limit
    mode = f"kafka @ {trades_per_s:,.0f} trades/s" if trades_per_s > 0 else "kafka, max speed"
    return Run(
        mode,
        round(records * trades_per_loop / records_per_loop),
        records,
        (last - first) / 1e9,
        fills.count,
        fills.latencies_ms,
        lag_end,
        drain_s,
        cpu,
        rss,
    )


# -- in memory ------------------------------------------------------------------------------

MEMORY = """
import os, resource, sys, time, orjson
from tickpipe.app import load_specs
from tickpipe.embedded import EmbeddedPipeline
specs = load_specs()
p = EmbeddedPipeline(list(specs.values()))
c = time.process_time(); t = time.perf_counter(); n = p.run()
s, cpu = time.perf_counter() - t, time.process_time() - c
trades = len(p.bus.records("md.trades.v1"))
fills = sum(1 for r in p.bus.records("executions.v1") if orjson.loads(r.value)["last_qty"] != "0")
print(orjson.dumps({"n": n, "s": s, "cpu": cpu, "trades": trades, "fills": fills,
    "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}).decode())
"""


def run_memory(work: Workload) -> Run:
    """The embedded pipeline in a child process (its peak RSS is its own), same settings."""
    env = {**os.environ, **work.env(), **REPLAY_RISK}
    env.pop("TICKPIPE_BUS", None)
    out = subprocess.run(
        [sys.executable, "-c", MEMORY], check=True, capture_output=True, text=True, env=env
    )
    data = orjson.loads(out.stdout.strip().splitlines()[-1])
    return Run(
        "in memory, max speed",
        data["trades"],
        data["n"],
        data["s"],
        data["fills"],
        cpu_s={"all five": data["cpu"]},
        rss_mib={"all five": data["rss"]},
    )


def sample_mix() -> tuple[int, int]:
    """(records, trades) per loop of the sample."""
    from tickpipe.marketdata import TradeData, read_binance_capture

    items = [i for i in read_binance_capture(SAMPLE) if not isinstance(i, Exception)]
    return len(items), sum(isinstance(i, TradeData) for i in items)


# -- the table ------------------------------------------------------------------------------


def _med(values: Sequence[float | None]) -> float:
    got = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(got) if got else math.nan


def _fmt(v: float, spec: str = ",.0f") -> str:
    return "—" if math.isnan(v) else format(v, spec)


@dataclass
class Row:
    mode: str
    runs: list[Run]
    memory: list[Run]

    def cells(self) -> list[str]:
        runs = self.runs
        fills = _med([r.fills for r in runs])
        mem_fills = _med([r.fills for r in self.memory])
        share = fills / mem_fills * 100 if mem_fills else math.nan
        timed = [r for r in runs if r.latencies_ms]
        drains = [r.drain_s for r in runs]
        # A run that did not drain within the limit makes the median unknown: say so.
        drain = (
            f">{DRAIN_LIMIT_S:g}"
            if any(d is None for d in drains) and runs[0].lag_end is not None
            else _fmt(_med(drains), ".1f")
        )
        return [
            self.mode,
            str(len(runs)),
            _fmt(_med([r.trades_per_s for r in runs])),
            _fmt(_med([r.records / r.input_s for r in runs])),
            f"{fills:,.0f} ({share:.0f}%)" if not math.isnan(share) else _fmt(fills),
            _fmt(_med([r.pct(0.5) for r in timed]), ".1f"),
            _fmt(_med([r.pct(0.99) for r in timed]), ".1f"),
            _fmt(_med([max(r.latencies_ms) for r in timed]), ".1f"),
            _fmt(_med([r.lag_end for r in runs])),
            drain if runs[0].lag_end is not None else "—",
        ]

    def cpu_per_1k(self, name: str) -> float:
        return _med([r.cpu_s.get(name, math.nan) / r.trades * 1000 for r in self.runs])

    def rss(self, name: str) -> float:
        return _med([r.rss_mib.get(name, math.nan) for r in self.runs])


def print_tables(rows: list[Row], title: str) -> None:
    console = Console(width=200)
    table = Table(title=title)
    for col in (
        "mode",
        "runs",
        "trades/s",
        "records/s",
        "fills (vs in memory)",
        "p50 ms",
        "p99 ms",
        "max ms",
        "lag at end",
        "drain s",
    ):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for row in rows:
        table.add_row(*row.cells())
    console.print(table)
    names = [*SERVICES, "broker", "bench", "all five"]
    used = [n for n in names if any(n in r.cpu_s for row in rows for r in row.runs)]
    cpu = Table(title="CPU s per 1,000 trades (peak RSS MiB)")
    cpu.add_column("mode")
    for n in used:
        cpu.add_column(n, justify="right")
    cpu.add_column("total", justify="right")
    for row in rows:
        cells = []
        for n in used:
            c, m = row.cpu_per_1k(n), row.rss(n)
            cells.append(_fmt(c, ".3f") + ("" if math.isnan(m) else f" ({m:.0f})"))
        total = sum(v for n in used if not math.isnan(v := row.cpu_per_1k(n)) and n != "bench")
        cpu.add_row(row.mode, *cells, f"{total:.3f}")
    console.print(cpu)


@contextlib.contextmanager
def kafka_and_redis() -> Iterator[tuple[str, str, int | None]]:
    """(bootstrap, redis url, broker pid): the environment's, else started here."""
    bootstrap = os.environ.get("TICKPIPE_KAFKA_BOOTSTRAP")
    redis_url = os.environ.get("TICKPIPE_REDIS_URL")
    if bootstrap and redis_url:
        yield bootstrap, redis_url, pid_listening(int(bootstrap.rsplit(":", 1)[1]))
        return
    from tickpipe.infra.manager import down, status, up

    state = Path(tempfile.mkdtemp(prefix="tickpipe-bench-"))
    try:
        endpoints = up(state, kafka_port=0, controller_port=0, redis_port=0)
        pid = status(state)["kafka"].get("pid")
        yield endpoints.kafka_bootstrap, endpoints.redis_url, pid
    finally:
        down(state, purge=True)


def _rate(text: str) -> float:
    return 0.0 if text in ("max", "0") else float(text)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="runs per mode (medians)")
    ap.add_argument(
        "--rates",
        default="200,1000,max",
        help="Kafka modes, trades/s ('max': unpaced), comma-separated",
    )
    ap.add_argument("--seconds", type=float, default=30.0, help="length of a paced run")
    ap.add_argument("--loops", type=int, default=3, help="sample loops of an unpaced run")
    ap.add_argument("--warmup-s", type=float, default=5.0, help="fills left out of latency")
    ap.add_argument("--quick", action="store_true", help="one run each, 10 s paced, 1 loop")
    ap.add_argument("--memory-only", action="store_true", help="only the in-memory pipeline")
    ap.add_argument(
        "--no-warmup-run",
        action="store_true",
        help="skip the unpaced run (figures discarded) that warms a fresh broker's JIT",
    )
    ap.add_argument("--json", type=Path, help="also write every run's figures here")
    args = ap.parse_args(argv)
    # A stopped bench stops its services too (the `finally` blocks run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        args.runs, args.seconds, args.loops, args.warmup_s = 1, 10.0, 1, 2.0
    mix = sample_mix()
    records_per_loop, trades_per_loop = mix

    def workload(rate: float) -> Workload:
        if rate <= 0:
            return Workload(args.loops, None)
        records = round(rate * args.seconds * records_per_loop / trades_per_loop)
        return Workload(math.ceil(records / records_per_loop), records)

    rates = [] if args.memory_only else [_rate(r) for r in args.rates.split(",") if r]
    works = {r: workload(r) for r in rates} or {0.0: Workload(args.loops, None)}
    memory: dict[Workload, list[Run]] = {w: [] for w in works.values()}
    kafka: dict[float, list[Run]] = {r: [] for r in rates}
    for i in range(args.runs):  # modes alternate within each run: drift hits them alike
        for w, runs in memory.items():
            runs.append(run_memory(w))
            print(f"run {i + 1}: {_summary(runs[-1])}", file=sys.stderr)
    if rates:
        with kafka_and_redis() as (bootstrap, redis_url, broker_pid):
            if not args.no_warmup_run:
                warm = Workload(1, min(20_000, records_per_loop))
                run = run_kafka(bootstrap, redis_url, broker_pid, 0.0, warm, mix, 0.0)
                print(f"warm-up (discarded): {_summary(run)}", file=sys.stderr)
            for i in range(args.runs):
                for rate in rates:
                    run = run_kafka(
                        bootstrap,
                        redis_url,
                        broker_pid,
                        rate,
                        works[rate],
                        mix,
                        args.warmup_s,
                    )
                    kafka[rate].append(run)
                    print(f"run {i + 1}: {_summary(run)}", file=sys.stderr)
    rows = [Row(runs[0].mode, runs, memory[works[r]]) for r, runs in kafka.items()]
    for w, runs in memory.items():
        label = f"in memory ({w.limit:,} records)" if w.limit else f"in memory (×{w.loops})"
        rows.append(Row(label, runs, runs))
    cores = os.cpu_count()
    print_tables(rows, f"tickpipe pipeline benchmark — {SAMPLE.name}, {cores} cores")
    print(
        f"medians of {args.runs} run(s); paced runs {args.seconds:g} s, unpaced ×{args.loops}; "
        f"latency per fill after the first {args.warmup_s:g} s; fills vs the in-memory run on "
        f"the same records; bench peak RSS "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"args": {k: str(v) for k, v in vars(args).items()}, "rows": _dump(rows)},
                indent=1,
            )
        )
    return 0


def _summary(r: Run) -> str:
    return (
        f"{r.mode}: {r.trades_per_s:,.0f} trades/s, {r.fills} fills, p50 {r.pct(0.5):.1f} "
        f"p99 {r.pct(0.99):.1f} ms, lag {r.lag_end}, drain {r.drain_s}"
    )


def _dump(rows: list[Row]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        runs = []
        for r in row.runs:
            d = asdict(r)
            lat = d.pop("latencies_ms")
            d.update(timed=len(lat), p50=r.pct(0.5), p99=r.pct(0.99), max=max(lat, default=None))
            runs.append(d)
        out.append({"mode": row.mode, "cells": row.cells(), "runs": runs})
    return out


if __name__ == "__main__":
    sys.exit(main())
