"""A real single-node Apache Kafka broker (KRaft) run as a child JVM from the cached jars."""

from __future__ import annotations

import base64
import secrets
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from confluent_kafka.admin import AdminClient

from tickpipe.infra._process import InfraError, free_port, pid_alive, spawn, tail, terminate
from tickpipe.infra.jars import ensure_kafka_jars, java_executable
from tickpipe.infra.tls import write_private

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


def kafka_ready(
    bootstrap: str, timeout_s: float = 5.0, client_config: Mapping[str, Any] | None = None
) -> bool:
    """True when the broker answers a metadata request (over `client_config`'s transport:
    plaintext when None)."""
    # log_level 0 keeps librdkafka from printing connection errors while we probe.
    admin = AdminClient({**(client_config or {}), "bootstrap.servers": bootstrap, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout_s)
    except Exception:
        return False
    return True


@dataclass(frozen=True)
class BrokerSecurity:
    """What a secure broker needs (`tickpipe infra up --secure`, see tickpipe.infra.secure):

    - `port` (the bootstrap): SASL_SSL, SCRAM-SHA-512, TLS 1.3 only;
    - `mtls_port`: SSL with a client certificate required, the principal its CN;
    - the controller listener: SSL with a client certificate required (the broker's own);
    - PEM files only (Kafka reads them with `ssl.keystore.type=PEM`): the CA bundle that
      signs every certificate, and the broker's key and certificate chain in one file;
    - SCRAM users added when the storage is formatted (`kafka-storage format --add-scram`),
      the passwords read from their files into an argument file, never onto a command line;
    - the KRaft `StandardAuthorizer`, nothing allowed without an ACL but to `super_users`.
    """

    mtls_port: int
    ca_file: Path
    keystore_file: Path
    scram_users: Mapping[str, Path]  # principal -> its password's file
    super_users: tuple[str, ...] = ("admin", "broker")
    admin_config: Mapping[str, Any] = field(default_factory=dict)  # how readiness connects


class LocalKafka:
    """One broker+controller in `work_dir` (config, data and `server.log`); with `security`,
    SASL_SSL and mTLS listeners instead of PLAINTEXT (see BrokerSecurity)."""

    def __init__(
        self,
        work_dir: Path,
        port: int | None = None,
        controller_port: int | None = None,
        security: BrokerSecurity | None = None,
    ) -> None:
        self.work_dir = Path(work_dir).resolve()
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self.security = security
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

    @property
    def mtls_bootstrap(self) -> str | None:
        return f"127.0.0.1:{self.security.mtls_port}" if self.security else None

    def _secure_props(self, sec: BrokerSecurity) -> dict[str, str]:
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        return {
            "listeners": (
                f"SASL_SSL://127.0.0.1:{self.port},SSL://127.0.0.1:{sec.mtls_port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": (
                f"SASL_SSL://127.0.0.1:{self.port},SSL://127.0.0.1:{sec.mtls_port}"
            ),
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:SSL",
            # The broker's own links (to its controller, to itself as partition leader) use
            # its certificate; its principal is `broker` (a super user).
            "inter.broker.listener.name": "SSL",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram,
            "ssl.protocol": "TLSv1.3",
            "ssl.enabled.protocols": "TLSv1.3",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(sec.keystore_file),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(sec.ca_file),
            "ssl.client.auth": "none",
            "listener.name.ssl.ssl.client.auth": "required",
            "listener.name.controller.ssl.client.auth": "required",
            # A certificate's CN is its principal: `CN=feature` is User:feature, as over SCRAM.
            "ssl.principal.mapping.rules": "RULE:^CN=([A-Za-z0-9._-]+)$/$1/,DEFAULT",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": ";".join(f"User:{u}" for u in sec.super_users),
        }

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
        if self.security is not None:
            props.update(self._secure_props(self.security))
        server = self.work_dir / "server.properties"
        server.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        log4j = self.work_dir / "log4j2.properties"
        log4j.write_text(_LOG4J2.format(log=self.log_path))
        return server, log4j

    def _format(self, java: str, classpath: str, server: Path) -> None:
        if (self.data_dir / "meta.properties").is_file():
            return  # formatted by an earlier start: keep its data
        # No --standalone: it is refused when controller.quorum.voters is set.
        args = ["kafka.tools.StorageTool", "format", "-t", new_cluster_id(), "-c", str(server)]
        argfile = self.work_dir / "format.args"
        if self.security is not None:
            for user, password_file in self.security.scram_users.items():
                password = password_file.read_text().strip()
                args += ["--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]"]
            # The JVM reads these arguments from a file (`java @file`): the passwords stay
            # off the command line, where any local user could read them.
            write_private(argfile, "\n".join(args) + "\n")
            args = [f"@{argfile}"]
        try:
            cmd = [java, "-cp", classpath, *args]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        finally:
            argfile.unlink(missing_ok=True)
        if done.returncode != 0:
            output = done.stdout + done.stderr
            for password_file in (self.security.scram_users if self.security else {}).values():
                output = output.replace(password_file.read_text().strip(), "[redacted]")
            raise InfraError(f"formatting Kafka storage failed:\n{output}")

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
            probe = self.security.admin_config if self.security else None
            if self._logged_started(offset) and kafka_ready(self.bootstrap, 2.0, probe):
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
