"""A real `redis-server` run as a child process, memory only."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from tickpipe.infra._process import InfraError, free_port, pid_alive, spawn, tail, terminate

PROCESS_NAME = "redis-server"
_KNOWN_PATHS = ("/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server")


def find_redis_server() -> str | None:
    found = shutil.which(PROCESS_NAME)
    if found is not None:
        return found
    return next((p for p in _KNOWN_PATHS if os.access(p, os.X_OK)), None)


def ensure_redis_server() -> str:
    """Path of `redis-server`, installing the Debian/Ubuntu package when it is missing."""
    found = find_redis_server()
    if found is not None:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise InfraError(
            "redis-server is missing; install it (e.g. `sudo apt-get install -y redis-server`)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in ([apt, "update"], [apt, "install", "-y", "--no-install-recommends", PROCESS_NAME]):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            output = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
            raise InfraError(f"`{' '.join(cmd)}` failed installing redis-server:\n{output}")
    found = find_redis_server()
    if found is None:
        raise InfraError("apt-get installed redis-server but it is not on PATH")
    return found


def redis_ready(url: str, timeout_s: float = 2.0, **options: Any) -> bool:
    """True when Redis answers PING (`options`: redis-py's TLS and credential arguments)."""
    try:
        with redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, **options
        ) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


@dataclass(frozen=True)
class RedisTls:
    """A TLS-only Redis (`port 0`, `tls-port`, TLS 1.3) whose users come from an ACL file
    (`default` off); `admin_options` are the redis-py arguments readiness connects with."""

    cert_file: Path
    key_file: Path
    ca_file: Path
    acl_file: Path
    auth_clients: str = "optional"  # a client certificate, when given, must be the CA's
    admin_options: Mapping[str, Any] = field(default_factory=dict)


class LocalRedis:
    """One `redis-server` on 127.0.0.1, no persistence, logging to `work_dir/redis.log`;
    with `tls`, TLS only and ACL users (see RedisTls)."""

    def __init__(self, work_dir: Path, port: int | None = None, tls: RedisTls | None = None):
        self.work_dir = Path(work_dir).resolve()
        self.port = port or free_port()
        self.tls = tls
        self.pid: int | None = None

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def _tls_config(self, tls: RedisTls) -> Path:
        conf = self.work_dir / "redis.conf"
        lines = [
            "port 0",
            f"tls-port {self.port}",
            "bind 127.0.0.1",
            f"tls-cert-file {tls.cert_file}",
            f"tls-key-file {tls.key_file}",
            f"tls-ca-cert-file {tls.ca_file}",
            f"tls-auth-clients {tls.auth_clients}",
            'tls-protocols "TLSv1.3"',
            f"aclfile {tls.acl_file}",
            'save ""',
            "appendonly no",
            "daemonize no",
            f"dir {self.work_dir}",
        ]
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def _ready(self, timeout_s: float) -> bool:
        options = dict(self.tls.admin_options) if self.tls else {}
        return redis_ready(self.url, timeout_s, **options)

    @property
    def log_path(self) -> Path:
        return self.work_dir / "redis.log"

    def start(self, timeout_s: float = 15.0) -> None:
        if self.pid is not None and pid_alive(self.pid, PROCESS_NAME):
            return
        server = ensure_redis_server()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if self.tls is not None:
            argv = [server, str(self._tls_config(self.tls))]
        else:
            argv = [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            argv += ["--appendonly", "no", "--daemonize", "no", "--dir", str(self.work_dir)]
        self.pid = spawn(argv, cwd=self.work_dir, output=self.log_path)
        deadline = time.monotonic() + timeout_s
        try:
            while not self._ready(0.5):
                if not pid_alive(self.pid):
                    raise InfraError(f"redis-server exited:\n{tail(self.log_path)}")
                if time.monotonic() > deadline:
                    raise InfraError(f"redis-server did not answer PING:\n{tail(self.log_path)}")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.pid is not None:
            terminate(self.pid, timeout_s, PROCESS_NAME)
            self.pid = None

    def __enter__(self) -> LocalRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
