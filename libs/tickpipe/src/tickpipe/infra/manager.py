"""Start, inspect and stop the local Kafka + Redis pair, tracked in `<state_dir>/state.json`.

The servers run in their own sessions, so they keep running after the calling process (a
`tickpipe infra up`) exits; a later `down` finds them again through the state file.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tickpipe.infra._process import InfraError, free_port, pid_alive, port_is_free, terminate
from tickpipe.infra.kafka_local import MAIN_CLASS, LocalKafka, kafka_ready
from tickpipe.infra.redis_local import PROCESS_NAME, LocalRedis, redis_ready

DEFAULT_STATE_DIR = Path(".tickpipe/infra")
DEFAULT_KAFKA_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
DEFAULT_REDIS_PORT = 6379
KAFKA_PORT_ENV = "TICKPIPE_INFRA_KAFKA_PORT"
CONTROLLER_PORT_ENV = "TICKPIPE_INFRA_KAFKA_CONTROLLER_PORT"
REDIS_PORT_ENV = "TICKPIPE_INFRA_REDIS_PORT"


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap: str
    redis_url: str

    def env(self) -> dict[str, str]:
        """The settings that point tickpipe services at these servers."""
        return {
            "TICKPIPE_BUS": "kafka",
            "TICKPIPE_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "TICKPIPE_REDIS_URL": self.redis_url,
        }


def _resolve(state_dir: Path | str | None) -> Path:
    return Path(state_dir if state_dir is not None else DEFAULT_STATE_DIR).resolve()


def _read_state(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((state_dir / "state.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_state(state_dir: Path, state: dict[str, Any]) -> None:
    tmp = state_dir / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    tmp.replace(state_dir / "state.json")  # atomic: a reader never sees half a file


@contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    # Two concurrent `up`s on one state dir would start two brokers on the same ports.
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pick_port(explicit: int | None, env: str, previous: Any, default: int, taken: set[int]) -> int:
    """Explicit argument, then env, then the port used last time, then the default, then any.

    A port asked for (argument or env) is never swapped for another one: busy is an error.
    """
    asked = explicit or (int(os.environ[env]) if os.environ.get(env) else None)
    if asked:
        if asked in taken or not port_is_free(asked):
            raise InfraError(f"port {asked} is already in use on 127.0.0.1")
        return asked
    for candidate in (previous, default):
        if isinstance(candidate, int) and candidate not in taken and port_is_free(candidate):
            return candidate
    port = free_port()
    while port in taken:
        port = free_port()
    return port


def _running(entry: Any, needle: str) -> int | None:
    if isinstance(entry, dict) and isinstance(entry.get("pid"), int):
        pid: int = entry["pid"]
        if pid_alive(pid, needle):
            return pid
    return None


def up(
    state_dir: Path | str | None = None,
    *,
    kafka_port: int | None = None,
    controller_port: int | None = None,
    redis_port: int | None = None,
    timeout_s: float = 60.0,
) -> Endpoints:
    """Start whatever is not already running and healthy; return both endpoints."""
    root = _resolve(state_dir)
    with _locked(root):
        state = _read_state(root)
        kafka_entry = _ensure_kafka(root, state, kafka_port, controller_port, timeout_s)
        state["kafka"] = kafka_entry
        _write_state(root, state)  # before Redis starts: a failure there leaves Kafka findable
        state["redis"] = _ensure_redis(root, state, redis_port, {kafka_entry["port"]}, timeout_s)
        _write_state(root, state)
        return Endpoints(state["kafka"]["bootstrap"], state["redis"]["url"])


def _ensure_kafka(
    root: Path,
    state: dict[str, Any],
    port: int | None,
    controller_port: int | None,
    timeout_s: float,
) -> dict[str, Any]:
    entry = state.get("kafka")
    pid = _running(entry, MAIN_CLASS)
    if pid is not None and isinstance(entry, dict):
        if kafka_ready(entry["bootstrap"], 10.0):
            return entry
        terminate(pid, 30.0, MAIN_CLASS)  # alive but not serving: replace it
    previous = entry if isinstance(entry, dict) else {}
    chosen = _pick_port(port, KAFKA_PORT_ENV, previous.get("port"), DEFAULT_KAFKA_PORT, set())
    ctl = _pick_port(
        controller_port,
        CONTROLLER_PORT_ENV,
        previous.get("controller_port"),
        DEFAULT_CONTROLLER_PORT,
        {chosen},
    )
    kafka = LocalKafka(root / "kafka", chosen, ctl)
    kafka.start(timeout_s)
    return {
        "pid": kafka.pid,
        "port": kafka.port,
        "controller_port": kafka.controller_port,
        "bootstrap": kafka.bootstrap,
        "log": str(kafka.log_path),
    }


def _ensure_redis(
    root: Path, state: dict[str, Any], port: int | None, taken: set[int], timeout_s: float
) -> dict[str, Any]:
    entry = state.get("redis")
    pid = _running(entry, PROCESS_NAME)
    if pid is not None and isinstance(entry, dict):
        if redis_ready(entry["url"]):
            return entry
        terminate(pid, 10.0, PROCESS_NAME)
    previous = entry if isinstance(entry, dict) else {}
    chosen = _pick_port(port, REDIS_PORT_ENV, previous.get("port"), DEFAULT_REDIS_PORT, taken)
    server = LocalRedis(root / "redis", chosen)
    server.start(min(timeout_s, 15.0))
    return {"pid": server.pid, "port": server.port, "url": server.url, "log": str(server.log_path)}


def down(state_dir: Path | str | None = None, *, purge: bool = False) -> dict[str, int | None]:
    """Stop both servers; returns the pid stopped per server (None: was not running).

    Ports stay in the state file so the next `up` reuses them; `purge` also deletes data.
    """
    root = _resolve(state_dir)
    stopped: dict[str, int | None] = {"kafka": None, "redis": None}
    if not (root / "state.json").is_file():
        return stopped  # never started here: create nothing
    with _locked(root):
        state = _read_state(root)
        for name, needle in (("kafka", MAIN_CLASS), ("redis", PROCESS_NAME)):
            entry = state.get(name)
            pid = _running(entry, needle)
            if pid is not None:
                terminate(pid, 30.0, needle)
            stopped[name] = pid
            if isinstance(entry, dict):
                entry["pid"] = None
            if purge:
                shutil.rmtree(root / name, ignore_errors=True)
        _write_state(root, state)
    return stopped


def status(state_dir: Path | str | None = None) -> dict[str, Any]:
    """Per server: pid, port, endpoint, log path, `running` (process) and `healthy` (answers)."""
    root = _resolve(state_dir)
    state = _read_state(root)
    result: dict[str, Any] = {"state_dir": str(root)}
    for name, needle, key, probe in (
        ("kafka", MAIN_CLASS, "bootstrap", kafka_ready),
        ("redis", PROCESS_NAME, "url", redis_ready),
    ):
        entry = state.get(name)
        info: dict[str, Any] = dict(entry) if isinstance(entry, dict) else {}
        pid = _running(entry, needle)
        info["pid"] = pid
        info["running"] = pid is not None
        info["healthy"] = pid is not None and probe(str(info.get(key)), 3.0)
        result[name] = info
    return result


def endpoints(state_dir: Path | str | None = None) -> Endpoints | None:
    """The endpoints of a running pair, or None."""
    current = status(state_dir)
    if current["kafka"]["running"] and current["redis"]["running"]:
        return Endpoints(current["kafka"]["bootstrap"], current["redis"]["url"])
    return None
