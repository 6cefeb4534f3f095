"""Scaffolding shared by the outage tests (a Redis or the Kafka broker taken away while the
services run): services as processes that keep their HTTP port and every run's log across
restarts, a supervisor that restarts what exits, a /readyz prober that records what each
service answered and when, and a read_committed reader of a topic to its end."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from tests.polling import wait_until
from tickpipe.processes import terminate_all
from tickpipe.runner import EVENT_TYPE
from tickpipe.topics import TopicNames

NS = 1_000_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when there are none)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(
            f'{k}="{v}"' in line for k, v in labels.items()
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


@dataclass(frozen=True)
class Exit:
    """A service process that ended: which run of it, its exit code, and when (wall ns)."""

    service: str
    run: int
    code: int
    at_ns: int


class Fleet:
    """Services as `tickpipe run <service>` processes. Unlike `ServiceProcesses`, a service
    keeps its HTTP port across restarts (so /readyz is polled at one address) and every run
    writes its own log (`<service>.<run>.log`); `supervise` restarts what exits."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self._env = {**os.environ, **env}
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        self.runs: dict[str, int] = {}
        self.exits: list[Exit] = []
        self._lock = threading.RLock()
        self._supervised: set[str] = set()
        self._done: set[str] = set()  # sources that ended by themselves (exit 0)
        self._sources: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- processes --------------------------------------------------------------------------

    def start(self, name: str, extra_env: Mapping[str, str] | None = None) -> None:
        with self._lock:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            port = self.ports.setdefault(name, free_port())
            run = self.runs[name] = self.runs.get(name, 0) + 1
            env = {**self._env, "TICKPIPE_HTTP_PORT": str(port), **(extra_env or {})}
            with (self.log_dir / f"{name}.{run}.log").open("wb") as log:
                self.procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "tickpipe.cli", "run", name],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )

    def alive(self, name: str) -> bool:
        return self.procs[name].poll() is None

    def kill(self, name: str, sig: int = signal.SIGKILL, timeout_s: float = 30.0) -> int:
        """Signals the service and waits for it to end; returns its exit code."""
        with self._lock:
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(sig)
            try:
                code = proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            self.exits.append(Exit(name, self.runs[name], code, time.time_ns()))
            return code

    def log(self, name: str, run: int | None = None) -> str:
        """One run's log (default: all runs, oldest first)."""
        runs = [run] if run is not None else list(range(1, self.runs.get(name, 0) + 1))
        parts = []
        for r in runs:
            path = self.log_dir / f"{name}.{r}.log"
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"--- {name} run {r} ---\n{text}")
        return "\n".join(parts)

    def logs_tail(self, names: Iterable[str] | None = None, chars: int = 1500) -> str:
        return "\n".join(self.log(n)[-chars:] for n in (names or self.procs))

    def metrics(self, name: str) -> str:
        url = f"http://127.0.0.1:{self.ports[name]}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            return bytes(r.read()).decode()

    def readyz(self, name: str, timeout_s: float = 1.0) -> int | None:
        """The status /readyz answers (200, 503), or None when nothing answers."""
        url = f"http://127.0.0.1:{self.ports[name]}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return None

    def wait_ready(self, names: Iterable[str], timeout_s: float = 90.0) -> None:
        for name in names:
            wait_until(
                functools.partial(self._ready_or_dead, name),
                functools.partial(self._not_ready, name),
                timeout_s,
                0.1,
            )

    def _not_ready(self, name: str) -> str:
        return f"{name} not ready:\n{self.log(name)[-3000:]}"

    def _ready_or_dead(self, name: str) -> bool:
        code = self.procs[name].poll()
        if code is not None and name not in self._supervised:
            raise AssertionError(f"{name} exited with {code}:\n{self.log(name)[-3000:]}")
        return self.readyz(name) == 200

    # -- supervision ------------------------------------------------------------------------

    def supervise(self, names: Iterable[str], sources: Iterable[str] = ()) -> None:
        """Restart any of `names` that exits (as a process supervisor would), and record the
        exit; a source in `sources` that exits 0 has ended its input and is left ended."""
        with self._lock:
            self._supervised |= set(names)
            self._sources |= set(sources)
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            with self._lock:
                for name in sorted(self._supervised - self._done):
                    code = self.procs[name].poll()
                    if code is None:
                        continue
                    self.exits.append(Exit(name, self.runs[name], code, time.time_ns()))
                    if code == 0 and name in self._sources:
                        self._done.add(name)
                    else:
                        self.start(name)

    def dump_stacks(self, names: Iterable[str]) -> None:
        """SIGABRT the live ones of `names`: with PYTHONFAULTHANDLER=1 in their environment,
        each writes every thread's Python stack to its log (and dies). For a failure's
        diagnosis: a service stuck in a call shows where."""
        with self._lock:
            self._supervised -= set(names)
            for name in names:
                proc = self.procs.get(name)
                if proc is not None and proc.poll() is None:
                    proc.send_signal(signal.SIGABRT)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(5)

    def stacks(self, name: str) -> str:
        """The main thread's Python stack from `dump_stacks`, as the latest run logged it."""
        text = self.log(name, self.runs.get(name, 1))
        at = text.rfind("Current thread")
        if at < 0:
            return ""
        frames = [ln.strip() for ln in text[at:].splitlines()[1:] if ln.strip().startswith("File")]
        return "\n".join(frames[:8])

    def restarts(self) -> dict[str, list[int]]:
        """Per service, the exit codes of the runs that ended while it was supervised."""
        out: dict[str, list[int]] = {}
        for e in self.exits:
            out.setdefault(e.service, []).append(e.code)
        return out

    def ended(self, name: str) -> bool:
        """Whether a supervised source ended by itself (exit 0)."""
        with self._lock:
            return name in self._done

    def stop(self, timeout_s: float = 20.0) -> dict[str, int]:
        """Stops supervising, then SIGTERMs every service; returns their exit codes."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            return terminate_all(self.procs, timeout_s)


class ReadyProbe:
    """Polls /readyz of each service in the background and keeps every answer:
    (wall ns, status or None when nothing answered)."""

    def __init__(self, fleet: Fleet, names: Iterable[str], interval_s: float = 0.1) -> None:
        self._fleet = fleet
        self.names = list(names)
        self.samples: dict[str, list[tuple[int, int | None]]] = {n: [] for n in self.names}
        self._interval = interval_s
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._poll, args=(n,), daemon=True) for n in self.names
        ]

    def start(self) -> ReadyProbe:
        for t in self._threads:
            t.start()
        return self

    def _poll(self, name: str) -> None:
        while not self._stop.is_set():
            # Generous: /readyz may ask the broker (up to 0.5 s) on a loaded machine, and a
            # probe that hangs up early leaves a BrokenPipe traceback in the service's log.
            status = self._fleet.readyz(name, timeout_s=2.0)
            self.samples[name].append((time.time_ns(), status))
            self._stop.wait(self._interval)

    def between(self, name: str, start_ns: int, end_ns: int) -> list[int | None]:
        return [s for t, s in list(self.samples[name]) if start_ns <= t <= end_ns]

    def last(self, name: str) -> int | None:
        samples = self.samples[name]
        return samples[-1][1] if samples else None

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)


@dataclass(frozen=True)
class Read:
    """A record read back: its event type header, its JSON body, where it was."""

    event_type: str
    body: dict[str, Any]
    partition: int
    offset: int


def read_topic(
    bootstrap: str, names: TopicNames, topic: str, timeout_s: float = 60.0
) -> list[Read]:
    """Every committed record of `topic`, partition by partition in offset order, up to the
    end each partition had when the read began (read_committed: records of aborted
    transactions never show). Call it once the writers are quiet."""
    physical = names.physical(topic)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex}",  # never joined: partitions are assigned
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        meta = consumer.list_topics(physical, timeout=10).topics[physical]
        partitions = sorted(meta.partitions)
        ends: dict[int, int] = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(physical, p), timeout=10, cached=False
            )
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(physical, p, OFFSET_BEGINNING) for p in ends])
        got: dict[int, list[Read]] = {p: [] for p in ends}
        reading = set(ends)
        deadline = time.monotonic() + timeout_s
        while reading:
            assert time.monotonic() < deadline, f"reading {physical} to its end timed out"
            for m in consumer.consume(500, 0.2):
                p = int(m.partition() or 0)
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        # At the last stable offset; with the writers quiet, the end.
                        if int(m.offset() or 0) >= ends.get(p, 0):
                            reading.discard(p)
                        continue
                    raise AssertionError(f"reading {physical}: {err}")
                offset = int(m.offset() or 0)
                headers = dict(m.headers() or [])
                kind = headers.get(EVENT_TYPE, b"")
                got[p].append(
                    Read(
                        kind.decode() if isinstance(kind, bytes) else str(kind),
                        orjson.loads(m.value() or b"{}"),
                        p,
                        offset,
                    )
                )
                if offset + 1 >= ends[p]:
                    reading.discard(p)
        return [r for p in sorted(got) for r in got[p]]
    finally:
        consumer.close()


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a server started in its own session (tickpipe.infra's `spawn`)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def caught_up(
    bootstrap: str,
    names: TopicNames,
    group: str,
    topics: Iterable[str],
    transactional: Iterable[str] = (),
) -> bool:
    """Whether `group` has committed every record of `topics`. Call it once the writers of
    `topics` are quiet. A topic written in transactions (`transactional`) ends at its last
    committed record, not at its high watermark: the transaction's commit marker takes an
    offset after that record, and a consumer commits only past the records it read."""
    return not behind(bootstrap, names, group, topics, transactional)


def behind(
    bootstrap: str,
    names: TopicNames,
    group: str,
    topics: Iterable[str],
    transactional: Iterable[str] = (),
) -> dict[str, tuple[int, int]]:
    """The partitions `group` has not committed to their end (see `caught_up`):
    `"topic/partition": (committed, end)`."""
    in_transactions = set(transactional)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,  # reads the group's offsets; never subscribes, never joins
            "enable.auto.commit": False,
        }
    )
    try:
        ends: dict[tuple[str, int], int] = {}
        for topic in topics:
            physical = names.physical(topic)
            if topic in in_transactions:
                for r in read_topic(bootstrap, names, topic):
                    ends[(physical, r.partition)] = r.offset + 1
                continue
            meta = consumer.list_topics(physical, timeout=10).topics[physical]
            for p in sorted(meta.partitions):
                tp = TopicPartition(physical, p)
                low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
                if high > low:
                    ends[(physical, p)] = high
        if not ends:
            return {}
        tps = [TopicPartition(t, p) for t, p in ends]
        committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(tps, 10)}
        return {
            f"{t}/{p}": (committed.get((t, p), -1), end)
            for (t, p), end in ends.items()
            if committed.get((t, p), -1) < end
        }
    finally:
        consumer.close()
