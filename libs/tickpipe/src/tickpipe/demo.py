"""`tickpipe demo`: the five services over the sample data, in one process or as five."""

from __future__ import annotations

import os
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tickpipe.app import load_specs
from tickpipe.bus.security import KafkaSecurity
from tickpipe.cache.base import get_json
from tickpipe.marketdata import format_columns, read_market_data
from tickpipe.processes import ServiceProcesses
from tickpipe.settings import PlatformSettings
from tickpipe.summary import Summary, count_records
from tickpipe.topics import TOPICS

console = Console(stderr=True)

# Risk controls judged on wall-clock time. In one process the replay runs on market time and
# the paper exchange's fill reaches risk before the next signal; over Kafka the replay runs
# as fast as five processes on this machine go, a fill comes some milliseconds after the
# next signal (meanwhile the order still counts as open, and its answer as slow), and a busy
# machine can age a signal past the staleness limits. The two deployments cannot agree on
# these, so the Kafka demo turns them off (unless set in the environment) to show the same
# orders and fills as the in-process demo. Live, they stay on: there time is the point.
WALL_CLOCK_CONTROLS = {
    "TICKPIPE_RISK_MAX_OPEN_NOTIONAL": "none",
    "TICKPIPE_RISK_ACCOUNT_MAX_OPEN_NOTIONAL": "none",
    "TICKPIPE_RISK_CB_SLOW_S": "3600",
    "TICKPIPE_RISK_MAX_SIGNAL_AGE_S": "0",
    "TICKPIPE_RISK_MAX_REFERENCE_AGE_S": "0",
}


def print_summary(title: str, summary: Summary) -> None:
    table = Table(title=title)
    table.add_column("stage")
    table.add_column("count / value", justify="right")
    for k, v in summary.rows():
        table.add_row(k, v)
    Console().print(table)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def run_embedded(data: Path, columns: dict[str, str] | None = None) -> Summary:
    """The backtest's ticks engine over `data`: the same five handlers, one process.
    `columns` names a table's columns (`--columns`, see docs/data-formats.md)."""
    from tickpipe.backtest.config import BacktestConfig
    from tickpipe.backtest.engine import run_ticks

    config = BacktestConfig(data=(data,))
    if columns:
        config = config.with_settings({"ingest.columns": columns})
    total = sum(1 for _ in read_market_data(data, columns=columns))
    with _progress() as progress:
        task = progress.add_task("replaying market data", total=total)
        result = run_ticks(config, lambda n: progress.advance(task, n))
    return result.summary


def run_kafka(
    data: Path,
    bootstrap: str,
    redis_url: str,
    account: str = "paper",
    idle_s: float = 3.0,
    settings: PlatformSettings | None = None,
    columns: dict[str, str] | None = None,
) -> Summary:
    """Five processes over Kafka and Redis; the demo counts what lands on the topics. Its
    own clients connect as `settings` say (TICKPIPE_KAFKA_SECURITY_PROTOCOL & co.), and the
    services inherit the same environment, so they all run as the demo's principal: over
    `tickpipe infra up --secure` that is `admin`, since the demo creates topics in a fresh
    namespace that the per-service ACLs do not cover."""
    from tickpipe.bus.admin import create_topics
    from tickpipe.bus.kafka import KafkaBus
    from tickpipe.bus.security import kafka_client_config
    from tickpipe.cache.redis import RedisCache, RedisSecurity
    from tickpipe.topics import TopicNames

    settings = settings or PlatformSettings()
    client_config = kafka_client_config(settings)
    namespace = f"demo{int(time.time())}"
    names = TopicNames(namespace)
    create_topics(bootstrap, names, client_config=client_config)
    env = {
        **{k: v for k, v in WALL_CLOCK_CONTROLS.items() if k not in os.environ},
        "TICKPIPE_BUS": "kafka",
        "TICKPIPE_KAFKA_BOOTSTRAP": bootstrap,
        "TICKPIPE_REDIS_URL": redis_url,
        "TICKPIPE_TOPIC_NAMESPACE": namespace,
        "TICKPIPE_INGEST_FILE": str(data),
        **({"TICKPIPE_INGEST_COLUMNS": format_columns(columns)} if columns else {}),
    }
    with ServiceProcesses(env, Path(".tickpipe/demo-logs")) as procs:
        specs = load_specs()
        downstream = [name for name, spec in specs.items() if not spec.is_source]
        for name in downstream:
            procs.start(name)
        procs.wait_ready(downstream)
        summary = Summary()
        link = KafkaBus(bootstrap, names, client_config=client_config).link(
            group=f"{namespace}.demo-summary",
            topics=[t.name for t in TOPICS],
            client_id="demo-summary",
        )
        sources = [name for name, spec in specs.items() if spec.is_source]
        for name in sources:
            procs.start(name)

        def sources_done() -> bool:
            return all(procs.procs[name].poll() is not None for name in sources)

        total = sum(1 for _ in read_market_data(data, columns=columns))
        with _progress() as progress:
            task = progress.add_task("market data through five services", total=total)
            last = time.monotonic()
            while True:
                records = link.poll(1000, 0.2)
                if records:
                    last = time.monotonic()
                    before = summary.counts.get("trades", 0) + summary.counts.get("quotes", 0)
                    count_records(summary, records)
                    after = summary.counts.get("trades", 0) + summary.counts.get("quotes", 0)
                    progress.advance(task, after - before)
                elif sources_done() and time.monotonic() - last > idle_s:
                    break
        link.close()
    cache = RedisCache(redis_url, namespace=namespace, security=RedisSecurity.of(settings))
    summary.pnl = get_json(cache, f"pnl:{account}") or {}
    cache.close()
    return summary


def main(data: Path, kafka: bool, columns: dict[str, str] | None = None) -> int:
    try:
        read_market_data(data, columns=columns)  # a file it cannot read: one line, up front
    except ValueError as exc:
        console.print(f"tickpipe demo: {exc}", highlight=False, markup=False, soft_wrap=True)
        return 2
    if not kafka:
        print_summary(f"tickpipe demo (in-memory bus) — {data.name}", run_embedded(data, columns))
        return 0
    settings = PlatformSettings()
    bootstrap = os.environ.get("TICKPIPE_KAFKA_BOOTSTRAP")
    redis_url = settings.redis_url
    if not bootstrap or not redis_url:
        from tickpipe.infra.manager import up

        endpoints = up(Path(".tickpipe/infra"))
        bootstrap, redis_url = endpoints.kafka_bootstrap, endpoints.redis_url
    summary = run_kafka(data, bootstrap, redis_url, settings=settings, columns=columns)
    transport = f"Kafka {bootstrap} {KafkaSecurity.of(settings).describe()}"
    print_summary(f"tickpipe demo ({transport}, Redis) — {data.name}", summary)
    off = [k.removeprefix("TICKPIPE_RISK_").lower() for k in WALL_CLOCK_CONTROLS]
    console.print(
        f"Off in this demo: {', '.join(off)} (judged on wall-clock time, which differs between "
        "one process and five; set them to turn them on). Orders, fills, "
        "realized PnL and fees equal the in-process demo's; unrealized PnL is marked at the "
        "price risk last saw when the last fill came, so it can differ."
    )
    return 0
