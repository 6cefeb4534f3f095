"""Run services as separate OS processes (`tickpipe run <service>`): demo, tests, benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType


class ServiceProcesses:
    """Starts services with a shared environment, each with its own HTTP port and log file."""

    def __init__(
        self, env: Mapping[str, str], log_dir: Path, base_port: int | None = 19100
    ) -> None:
        """`base_port` None picks a free loopback port per service (tests run in parallel)."""
        self._env = {**os.environ, **env}
        self._log_dir = log_dir
        self._base_port = base_port
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}

    def start(
        self, name: str, extra_env: Mapping[str, str] | None = None, service: str | None = None
    ) -> None:
        """Start `service` (default: `name`) as `name`: two replicas of one service run
        under two names."""
        self._log_dir.mkdir(parents=True, exist_ok=True)
        port = _free_port() if self._base_port is None else self._base_port + len(self.ports)
        self.ports[name] = port
        env = {**self._env, "TICKPIPE_HTTP_PORT": str(port), **(extra_env or {})}
        with (self._log_dir / f"{name}.log").open("wb") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "tickpipe.cli", "run", service or name],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self, name: str) -> str:
        return (self._log_dir / f"{name}.log").read_text(errors="replace")

    def wait_ready(self, names: list[str], timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        for name in names:
            while not self._ready(name):
                code = self.procs[name].poll()
                if code is not None:
                    raise RuntimeError(f"{name} exited with {code}:\n{self.log(name)[-3000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not ready:\n{self.log(name)[-3000:]}")
                time.sleep(0.1)

    def _ready(self, name: str) -> bool:
        try:
            url = f"http://127.0.0.1:{self.ports[name]}/readyz"
            with urllib.request.urlopen(url, timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def metrics(self, name: str) -> str:
        url = f"http://127.0.0.1:{self.ports[name]}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            return bytes(r.read()).decode()

    def stop(self, timeout_s: float = 15.0) -> dict[str, int]:
        """SIGTERM everything (services flush traces on the way out); returns exit codes."""
        return terminate_all(self.procs, timeout_s)

    def __enter__(self) -> ServiceProcesses:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def terminate_all(procs: Mapping[str, subprocess.Popen[bytes]], timeout_s: float) -> dict[str, int]:
    """SIGTERM every process at once, then wait for each (SIGKILL past `timeout_s`);
    returns the exit codes by name."""
    for p in procs.values():
        if p.poll() is None:
            p.terminate()
    codes = {}
    for name, p in procs.items():
        try:
            codes[name] = p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            codes[name] = p.wait()
    return codes
