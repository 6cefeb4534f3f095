"""A real single-node Apache Kafka broker (KRaft) run as a child JVM from the cached jars."""

from __future__ import annotations

import base64
import secrets
import subprocess
import time
from pathlib import Path
from types import TracebackType

from confluent_kafka.admin import AdminClient

from tickpipe.infra._process import InfraError, free_port, pid_alive, spawn, tail, terminate
from tickpipe.infra.jars import ensure_kafka_jars, java_executable

MAIN_CLASS = "kafka.Kafka"
STARTED_LINE = "Kafka Server started"
HEAP = ("-Xms256m", "-Xmx512m")  # modest: two cores, parallel test runs

# Single-node values: the defaults (3 replicas, min.isr 2) make the offsets and transaction
# topics unplaceable, and `init_transactions()` then hangs for minutes.
_SINGLE_NODE = {
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
}

_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
"""


def new_cluster_id() -> str:
    """16 random bytes, URL-safe base64 without padding; never a leading `-` (a CLI flag)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def kafka_ready(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """True when the broker answers a metadata request."""
    # log_level 0 keeps librdkafka from printing connection errors while we probe.
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout_s)
    except Exception:
        return False
    return True


class LocalKafka:
    """One broker+controller in `work_dir` (config, data and `server.log`)."""

    def __init__(
        self, work_dir: Path, port: int | None = None, controller_port: int | None = None
    ) -> None:
        self.work_dir = Path(work_dir).resolve()
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self.pid: int | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "server.log"

    @property
    def _stdout_path(self) -> Path:
        return self.work_dir / "kafka.out"  # JVM errors written before log4j is up

    def _write_config(self) -> tuple[Path, Path]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir),
            **_SINGLE_NODE,
        }
        server = self.work_dir / "server.properties"
        server.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        log4j = self.work_dir / "log4j2.properties"
        log4j.write_text(_LOG4J2.format(log=self.log_path))
        return server, log4j

    def _format(self, java: str, classpath: str, server: Path) -> None:
        if (self.data_dir / "meta.properties").is_file():
            return  # formatted by an earlier start: keep its data
        # No --standalone: it is refused when controller.quorum.voters is set.
        cmd = [java, "-cp", classpath, "kafka.tools.StorageTool", "format"]
        cmd += ["-t", new_cluster_id(), "-c", str(server)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise InfraError(f"formatting Kafka storage failed:\n{done.stdout}{done.stderr}")

    def start(self, timeout_s: float = 60.0) -> None:
        if self.pid is not None and pid_alive(self.pid, MAIN_CLASS):
            return
        libs = ensure_kafka_jars()
        java = java_executable()
        classpath = f"{libs}/*"
        server, log4j = self._write_config()
        self._format(java, classpath, server)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        started = time.monotonic()
        self.pid = spawn(
            [
                java,
                *HEAP,
                f"-Dlog4j2.configurationFile={log4j}",
                f"-Dkafka.logs.dir={self.work_dir}",
                "-cp",
                classpath,
                MAIN_CLASS,
                str(server),
            ],
            cwd=self.work_dir,
            output=self._stdout_path,
        )
        try:
            self._wait_ready(self.pid, offset, started + timeout_s)
        except BaseException:
            self.stop()
            raise

    def _logged_started(self, offset: int) -> bool:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return STARTED_LINE.encode() in log.read()
        except OSError:
            return False

    def _wait_ready(self, pid: int, offset: int, deadline: float) -> None:
        # Both signals: the log line says the broker finished starting, the metadata
        # request that a client can really reach it on the advertised listener.
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                raise InfraError(f"Kafka exited while starting:\n{self._diagnostics(offset)}")
            if self._logged_started(offset) and kafka_ready(self.bootstrap, 2.0):
                return
            time.sleep(0.1)
        raise InfraError(f"Kafka did not start in time:\n{self._diagnostics(offset)}")

    def _diagnostics(self, offset: int) -> str:
        """The first errors (the cause, not the shutdown noise after it) and a short tail."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                lines = log.read().decode(errors="replace").splitlines()
        except OSError:
            lines = []
        errors: list[str] = []
        for i, line in enumerate(lines):
            if (" ERROR " in line or " FATAL " in line) and len(errors) < 6:
                errors.append(line)
                if i + 1 < len(lines) and not lines[i + 1].startswith("["):
                    errors.append(f"  {lines[i + 1]}")  # the exception and its message
        recent = [line for line in lines if not line.startswith(("\t", "Caused by", "\tat"))]
        return "\n".join(
            [
                f"--- errors in {self.log_path} ---",
                *(errors or ["(none)"]),
                "--- last lines ---",
                *recent[-12:],
                f"--- {self._stdout_path} ---",
                tail(self._stdout_path, 10),
            ]
        )

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.pid is not None:
            terminate(self.pid, timeout_s, MAIN_CLASS)
            self.pid = None

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
