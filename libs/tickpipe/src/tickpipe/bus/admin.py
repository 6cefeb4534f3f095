"""Topic administration: creates every topic from `tickpipe.topics` (idempotently); and the
start-up check that the brokers accept a client's transport settings (`check_kafka`)."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # re-exported at runtime, not in the stubs

from tickpipe.bus.base import BusError
from tickpipe.bus.security import (
    CA_VAR,
    CERT_VAR,
    PASSWORD_FILE_VAR,
    PROTOCOL_VAR,
    USERNAME_VAR,
    describe_client,
    kafka_client_config,
)
from tickpipe.settings import PlatformSettings
from tickpipe.topics import TOPICS, TopicNames

log = logging.getLogger(__name__)


def _config(bootstrap: str, client_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """`client_config` None: the transport settings of the environment (`TICKPIPE_KAFKA_*`),
    as every tickpipe client gets them."""
    if client_config is None:
        client_config = kafka_client_config(PlatformSettings(kafka_bootstrap=bootstrap))
    return {**client_config, "bootstrap.servers": bootstrap}


def create_topics(
    bootstrap: str,
    names: TopicNames,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
    *,
    client_config: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Create all topics; returns topic -> `created` | `exists`. Raises on any other error
    (KafkaAccessError, in one line, when the brokers refuse this client)."""
    conf = _config(bootstrap, client_config)
    check_kafka(bootstrap, conf)
    admin = AdminClient(conf)
    new = [
        NewTopic(
            names.physical(t.name),
            num_partitions=t.partitions,
            replication_factor=replication_factor,
            config=t.config,
        )
        for t in TOPICS
    ]
    result: dict[str, str] = {}
    for topic, future in admin.create_topics(new, request_timeout=timeout_s).items():
        try:
            future.result(timeout_s)
            result[topic] = "created"
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            result[topic] = "exists"
    return result


def delete_topics(
    bootstrap: str,
    names: TopicNames,
    timeout_s: float = 30.0,
    *,
    client_config: Mapping[str, Any] | None = None,
) -> None:
    conf = _config(bootstrap, client_config)
    check_kafka(bootstrap, conf)
    admin = AdminClient(conf)
    futures = admin.delete_topics([names.physical(t.name) for t in TOPICS])
    for future in futures.values():
        try:
            future.result(timeout_s)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise


# -- the start-up check -------------------------------------------------------------------


class KafkaAccessError(BusError):
    """The brokers refuse this client's transport settings (credentials, certificates, a
    protocol that does not match the listener): retrying cannot help. One line."""


# librdkafka's "[thrd:…]: <proto>://host:port/id: " prefix, "(after 3ms in state X)" suffix.
_THREAD = re.compile(r"^\s*\[thrd:[^\]]*\]:\s*")
_PREFIX = re.compile(r"^\s*(?:\w+://)?[^\s/]+:\d+/\w+:\s*")
_SUFFIX = re.compile(r"\s*\((?:after \d+ms in state \w+|\d+ identical error)[^)]*\)\s*$")
_STATE = re.compile(r"in state (\w+)")


def _reason(text: str) -> str:
    """The cause in one of librdkafka's messages, without where and when."""
    text = _PREFIX.sub("", _THREAD.sub("", text))
    while True:
        trimmed = _SUFFIX.sub("", text)
        if trimmed == text:
            return text.strip()
        text = trimmed


@dataclass
class _Seen:
    """What librdkafka reported during the check, as (what, raw text, reason): errors from
    `error_cb` (what = the error's name) and log lines (what = `log`)."""

    lines: list[tuple[str, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, err: KafkaError) -> None:
        with self.lock:
            self.lines.append((err.name(), err.str(), _reason(err.str())))

    def log(self, level: int, fmt: str, *args: Any) -> None:
        text = str(args[-1]) if args else fmt
        with self.lock:
            self.lines.append(("log", text, _reason(text)))

    def snapshot(self) -> list[tuple[str, str, str]]:
        with self.lock:
            return list(self.lines)


@dataclass(frozen=True)
class _Verdict:
    fatal: bool
    message: str


# The broker's alerts, and librdkafka's note that no certificate of this client's is from a
# CA the broker named.
_CLIENT_CERT_ALERTS = (
    "bad certificate",
    "certificate required",
    "unknown ca",
    "unknown cert",
    "no matching issuer",
)


def _judge(lines: list[tuple[str, str, str]], config: Mapping[str, Any]) -> _Verdict | None:
    """What the lines say, worst first; None while they say nothing conclusive."""
    protocol = str(config.get("security.protocol", "PLAINTEXT")).upper()
    for what, _, reason in lines:
        low = reason.lower()
        failed = any(word in low for word in ("fail", "error", "invalid", "unsupported"))
        if what == "_AUTHENTICATION" or ("sasl" in low and failed):
            return _Verdict(
                True,
                f"authentication refused: {reason} (check {USERNAME_VAR} and {PASSWORD_FILE_VAR})",
            )
    for _, _, reason in lines:
        low = reason.lower()
        if "certificate verify failed" in low:
            return _Verdict(
                True,
                f"the broker's certificate is not trusted: {reason} "
                f"(check {CA_VAR} and the broker's host name)",
            )
        if any(alert in low for alert in _CLIENT_CERT_ALERTS):
            return _Verdict(
                True,
                f"the broker refused the client certificate (mTLS): {reason} (check {CERT_VAR})",
            )
        if "protocol version" in low or "unsupported protocol" in low:
            return _Verdict(True, f"no TLS version in common with the broker: {reason}")
        failed = any(word in low for word in ("fail", "error", "alert", "handshake"))
        if ("ssl" in low or "tls" in low) and failed and not low.startswith("disconnected"):
            return _Verdict(
                True,
                f"TLS failed: {reason} (a plaintext listener? check {PROTOCOL_VAR}={protocol})",
            )
    # Connected, then closed by the broker at the first requests, again and again: it speaks
    # another protocol (TLS, SASL) than this client.
    closed = [
        raw
        for what, raw, reason in lines
        if what == "log" and reason.lower().startswith("disconnected")  # once per event
    ]
    if len(closed) >= 2:
        state = _STATE.search(closed[-1])
        during = f" during {state.group(1)}" if state else ""
        return _Verdict(
            True,
            f"the broker closed every connection{during}: does its listener speak {protocol}? "
            f"(check {PROTOCOL_VAR})",
        )
    for _, _, reason in lines:
        low = reason.lower()
        if "connection refused" in low or "failed to resolve" in low:
            return _Verdict(False, f"no broker reachable: {reason}")
    return None


def check_kafka(
    bootstrap: str,
    config: Mapping[str, Any],
    *,
    timeout_s: float = 10.0,
    stop: threading.Event | None = None,
) -> None:
    """One metadata request before a client starts work. Returns as soon as a broker
    answers. A refusal that retrying cannot fix (authentication, TLS, a listener speaking
    another protocol) raises KafkaAccessError within seconds, its message one line. A broker
    that cannot be reached (refused, or silent for `timeout_s`) is logged in one line and
    the caller goes on: librdkafka keeps retrying, as during any outage."""
    seen = _Seen()
    conf = {
        **config,
        "bootstrap.servers": bootstrap,
        "client.id": "tickpipe-check",
        "error_cb": seen.error,
        "logger": seen,
    }
    where = f"{describe_client(config)} to {bootstrap}"
    try:
        admin = AdminClient(conf)
    except KafkaException as exc:  # a key librdkafka does not know, a CA it cannot load
        raise KafkaAccessError(f"kafka {where}: client settings refused: {exc}") from None
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin.list_topics(timeout=0.25)
            return
        except KafkaException:
            pass
        admin.poll(0)
        verdict = _judge(seen.snapshot(), config)
        if verdict is not None and verdict.fatal:
            raise KafkaAccessError(f"kafka {where}: {verdict.message}")
        if verdict is not None or time.monotonic() >= deadline:
            message = verdict.message if verdict else f"no answer in {timeout_s:.0f}s"
            log.error(
                "kafka not reachable at start; the client keeps retrying",
                extra={"error": f"kafka {where}: {message}"},
            )
            return
        if stop is not None and stop.is_set():
            return
