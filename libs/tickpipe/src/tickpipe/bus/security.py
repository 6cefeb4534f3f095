"""Kafka transport security: the one place that turns settings into librdkafka options.

Every Kafka client tickpipe creates (the bus's producers, links, readers and tails, topic
administration, the API, the control CLI, the demo) gets the same keys from
`kafka_client_config(settings)`: `security.protocol`, the SASL mechanism and credentials,
the CA bundle and an optional client certificate (mTLS), extra keys from
`TICKPIPE_KAFKA_CONFIG`, and a logger that routes librdkafka's own log lines through the
JSON logs with repeats collapsed.

Checks are made here, once, before any connection: a missing or unreadable file, a protocol
that needs credentials without them, or a secret in a plain setting is a `SecurityConfigError`
whose message is one line naming the setting (never its value). Whether the brokers accept
what was configured is checked by `tickpipe.bus.admin.check_kafka` at start.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from tickpipe.settings import PlatformSettings

log = logging.getLogger(__name__)

TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})

PROTOCOL_VAR = "TICKPIPE_KAFKA_SECURITY_PROTOCOL"
USERNAME_VAR = "TICKPIPE_KAFKA_SASL_USERNAME"
PASSWORD_VAR = "TICKPIPE_KAFKA_SASL_PASSWORD"
PASSWORD_FILE_VAR = "TICKPIPE_KAFKA_SASL_PASSWORD_FILE"
CA_VAR = "TICKPIPE_KAFKA_SSL_CA_FILE"
CERT_VAR = "TICKPIPE_KAFKA_SSL_CERT_FILE"
KEY_VAR = "TICKPIPE_KAFKA_SSL_KEY_FILE"
CONFIG_VAR = "TICKPIPE_KAFKA_CONFIG"

# Keys TICKPIPE_KAFKA_CONFIG may not set: each has its own typed setting (one source of truth,
# checked files), or is set per client by the bus.
_OWNED_KEYS = {
    "bootstrap.servers": "TICKPIPE_KAFKA_BOOTSTRAP",
    "metadata.broker.list": "TICKPIPE_KAFKA_BOOTSTRAP",
    "security.protocol": PROTOCOL_VAR,
    "sasl.mechanism": "TICKPIPE_KAFKA_SASL_MECHANISM",
    "sasl.mechanisms": "TICKPIPE_KAFKA_SASL_MECHANISM",
    "sasl.username": USERNAME_VAR,
    "ssl.ca.location": CA_VAR,
    "ssl.certificate.location": CERT_VAR,
    "ssl.key.location": KEY_VAR,
    "client.id": "(set per client by tickpipe)",
    "group.id": "(set per client by tickpipe)",
    "transactional.id": "(set per client by tickpipe)",
}
# Keys that carry a secret: a plain setting is shown in `env` dumps, manifests and config
# maps, so secrets come from a file (`*_FILE`) or a SecretStr setting instead.
_SECRET_KEYS = frozenset({"ssl.key.pem", "ssl_key", "sasl.oauthbearer.config"})


class SecurityConfigError(ValueError):
    """Transport security settings that cannot work; the message is one line, names the
    setting and never echoes a value that may be secret."""


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return "password" in lowered or "secret" in lowered or lowered in _SECRET_KEYS


def check_file(path: Path, var: str, kind: str) -> Path:
    """`path` as given in `var`, if it is a readable file holding `kind` (`certificate`,
    `private key`, `secret`); SecurityConfigError otherwise. Contents are never echoed."""
    if not path.exists():
        raise SecurityConfigError(f"{var}: {path}: no such file")
    if not path.is_file():
        raise SecurityConfigError(f"{var}: {path}: not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SecurityConfigError(f"{var}: {path}: cannot be read ({exc.strerror})") from None
    if kind == "certificate" and b"-----BEGIN CERTIFICATE-----" not in data:
        raise SecurityConfigError(f"{var}: {path}: no PEM certificate in it")
    if kind == "private key" and not re.search(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----", data):
        raise SecurityConfigError(f"{var}: {path}: no PEM private key in it")
    if kind == "secret" and not data.strip():
        raise SecurityConfigError(f"{var}: {path}: the file is empty")
    return path


def read_secret(path: Path, var: str) -> str:
    """The secret in the file named by `var` (surrounding whitespace and the final newline
    dropped); SecurityConfigError, without the contents, when it cannot be had."""
    check_file(path, var, "secret")
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SecurityConfigError(f"{var}: {path}: cannot be read as text ({exc})") from None


@dataclass(frozen=True)
class KafkaSecurity:
    """How Kafka clients authenticate and encrypt: the typed settings, before their files
    are read. `of(settings)` for services; infra builds one for its admin principal."""

    protocol: str = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, settings: PlatformSettings) -> KafkaSecurity:
        return cls(
            protocol=settings.kafka_security_protocol,
            mechanism=settings.kafka_sasl_mechanism,
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            password_file=settings.kafka_sasl_password_file,
            ca_file=settings.kafka_ssl_ca_file,
            cert_file=settings.kafka_ssl_cert_file,
            key_file=settings.kafka_ssl_key_file,
            extra=dict(settings.kafka_config),
        )

    @property
    def tls(self) -> bool:
        return self.protocol in TLS_PROTOCOLS

    @property
    def sasl(self) -> bool:
        return self.protocol in SASL_PROTOCOLS

    def describe(self) -> str:
        """Who connects how, for messages: `SASL_SSL as feature` (no secret)."""
        who = f" as {self.username}" if self.sasl and self.username else ""
        return f"{self.protocol}{who}"

    def client_config(self) -> dict[str, Any]:
        """The librdkafka keys (without `bootstrap.servers` and `client.id`), files checked
        and the password read; SecurityConfigError in one line when they cannot work."""
        conf: dict[str, Any] = {"security.protocol": self.protocol}
        conf.update(self._sasl_config())
        conf.update(self._tls_config())
        conf.update(self._extra_config())
        return conf

    def _sasl_config(self) -> dict[str, Any]:
        given = [
            var
            for var, value in (
                (USERNAME_VAR, self.username),
                (PASSWORD_VAR, self.password),
                (PASSWORD_FILE_VAR, self.password_file),
            )
            if value is not None
        ]
        if not self.sasl:
            if given:
                raise SecurityConfigError(
                    f"{', '.join(given)} set, but {PROTOCOL_VAR}={self.protocol} uses no SASL "
                    "(SASL_SSL does)"
                )
            return {}
        if self.password is not None and self.password_file is not None:
            raise SecurityConfigError(f"set only one of {PASSWORD_VAR} and {PASSWORD_FILE_VAR}")
        if not self.username or (self.password is None and self.password_file is None):
            raise SecurityConfigError(
                f"{PROTOCOL_VAR}={self.protocol} needs credentials: set {USERNAME_VAR} and "
                f"{PASSWORD_FILE_VAR} (or {PASSWORD_VAR})"
            )
        if self.password_file is not None:
            password = read_secret(self.password_file, PASSWORD_FILE_VAR)
        else:
            assert self.password is not None
            password = self.password.get_secret_value()
            if not password:
                raise SecurityConfigError(f"{PASSWORD_VAR} is empty")
        if self.mechanism == "PLAIN" and not self.tls:
            log.warning(
                "SASL PLAIN without TLS sends the password in clear text: use SASL_SSL",
                extra={"setting": PROTOCOL_VAR},
            )
        return {
            "sasl.mechanism": self.mechanism,
            "sasl.username": self.username,
            "sasl.password": password,
        }

    def _tls_config(self) -> dict[str, Any]:
        files = {CA_VAR: self.ca_file, CERT_VAR: self.cert_file, KEY_VAR: self.key_file}
        given = [var for var, path in files.items() if path is not None]
        if not self.tls:
            if given:
                raise SecurityConfigError(
                    f"{', '.join(given)} set, but {PROTOCOL_VAR}={self.protocol} uses no TLS "
                    "(SSL or SASL_SSL do)"
                )
            return {}
        if (self.cert_file is None) != (self.key_file is None):
            raise SecurityConfigError(f"a client certificate needs both {CERT_VAR} and {KEY_VAR}")
        conf: dict[str, Any] = {
            # The broker's certificate must name the host dialled (librdkafka's default since
            # 2.0; stated so that TICKPIPE_KAFKA_CONFIG cannot turn it off unnoticed).
            "ssl.endpoint.identification.algorithm": "https",
        }
        if self.ca_file is not None:
            conf["ssl.ca.location"] = str(check_file(self.ca_file, CA_VAR, "certificate"))
        if self.cert_file is not None and self.key_file is not None:
            conf["ssl.certificate.location"] = str(
                check_file(self.cert_file, CERT_VAR, "certificate")
            )
            conf["ssl.key.location"] = str(check_file(self.key_file, KEY_VAR, "private key"))
        return conf

    def _extra_config(self) -> dict[str, Any]:
        for key in self.extra:
            if _is_secret_key(key):
                raise SecurityConfigError(
                    f"{CONFIG_VAR} may not hold {key!r}: secrets come from files "
                    f"({PASSWORD_FILE_VAR}, {KEY_VAR})"
                )
            if key in _OWNED_KEYS:
                raise SecurityConfigError(
                    f"{CONFIG_VAR} may not set {key!r}: use {_OWNED_KEYS[key]}"
                )
            if key.endswith("_cb") or key in ("logger", "error_cb"):
                raise SecurityConfigError(f"{CONFIG_VAR} may not set {key!r}")
        if self.tls and str(self.extra.get("ssl.endpoint.identification.algorithm", "https")) in (
            "none",
            "",
        ):
            log.warning(
                "broker host names are not verified (ssl.endpoint.identification.algorithm=none)",
                extra={"setting": CONFIG_VAR},
            )
        return dict(self.extra)


def kafka_client_config(settings: PlatformSettings, *, logger: bool = True) -> dict[str, Any]:
    """The librdkafka keys every tickpipe Kafka client gets from `settings` (see
    `KafkaSecurity.client_config`), plus a logger for librdkafka's log lines."""
    conf = KafkaSecurity.of(settings).client_config()
    if logger:
        conf["logger"] = client_log()
    return conf


def describe_client(config: Mapping[str, Any]) -> str:
    """`SASL_SSL as feature`: how a client config connects, without its secrets."""
    protocol = str(config.get("security.protocol", "PLAINTEXT")).upper()
    user = config.get("sasl.username")
    return f"{protocol} as {user}" if protocol in SASL_PROTOCOLS and user else protocol


# -- librdkafka's log lines ---------------------------------------------------------------

_DIGITS = re.compile(r"\d+")
_THREAD = re.compile(r"^\[thrd:([^\]]*)\]:\s*")


class LibrdkafkaLog:
    """A `logger` for librdkafka clients: its lines go to Python logging (the JSON logs),
    and a line that repeats (same facility and text, numbers aside) within `window_s` is
    counted instead of logged again; the count rides on the next line logged for it.

    confluent-kafka calls `log(level, "%s [%s] %s", facility, client_name, message)`.
    """

    def __init__(self, name: str = "tickpipe.kafka.client", window_s: float = 60.0) -> None:
        self._log = logging.getLogger(name)
        self._window = window_s
        self._lock = threading.Lock()
        self._seen: dict[tuple[int, str], tuple[float, int]] = {}  # key -> (logged at, repeats)

    def log(self, level: int, fmt: str, *args: Any) -> None:
        facility, client, message = (*map(str, args), "", "", "")[:3] if args else ("", "", fmt)
        thread = _THREAD.match(message)
        if thread:
            message = message[thread.end() :]
        key = (level, facility + " " + _DIGITS.sub("#", message))
        now = time.monotonic()
        with self._lock:
            logged_at, repeats = self._seen.get(key, (-self._window - 1, 0))
            if now - logged_at < self._window:
                self._seen[key] = (logged_at, repeats + 1)
                return
            if len(self._seen) > 1000:
                self._seen.clear()
            self._seen[key] = (now, 0)
        extra: dict[str, Any] = {"facility": facility, "client": client}
        if thread:
            extra["rd_thread"] = thread.group(1)
        if repeats:
            extra["repeated"] = repeats
        self._log.log(level, "librdkafka: %s", message, extra=extra)


_CLIENT_LOG: LibrdkafkaLog | None = None
_CLIENT_LOG_LOCK = threading.Lock()


def client_log() -> LibrdkafkaLog:
    """The process's one librdkafka log adapter (repeats are collapsed across clients)."""
    global _CLIENT_LOG  # noqa: PLW0603 - one per process, made on first use
    with _CLIENT_LOG_LOCK:
        if _CLIENT_LOG is None:
            _CLIENT_LOG = LibrdkafkaLog()
        return _CLIENT_LOG
