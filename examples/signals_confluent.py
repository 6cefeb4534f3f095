"""Subscribe to tickpipe's signals with plain confluent-kafka, validated by the published
JSON Schema (schemas/signal.v1.json). Needs only `confluent-kafka` and `jsonschema`.

    python examples/signals_confluent.py --bootstrap 127.0.0.1:9092 --group my-team.signals

Transport security comes from the same variables as tickpipe's own clients, e.g. for SASL_SSL
with SCRAM: `TICKPIPE_KAFKA_SECURITY_PROTOCOL=SASL_SSL`, `TICKPIPE_KAFKA_SASL_USERNAME`,
`TICKPIPE_KAFKA_SASL_PASSWORD_FILE`, `TICKPIPE_KAFKA_SSL_CA_FILE` (and for mTLS
`TICKPIPE_KAFKA_SSL_CERT_FILE` / `_KEY_FILE`); `TICKPIPE_KAFKA_BOOTSTRAP` is the default
`--bootstrap` (see `security_config`).

Delivery: at least once. Offsets are committed after a record is handled, so a crash
replays what was not yet committed; deduplicate on `event_id` if that matters. Order holds
per `exchange:symbol` (the key, one partition each). Only committed records are read
(`isolation.level=read_committed`). Fields unknown to your copy of the schema are accepted
(the schema's content model is open): signal.v1 only ever gains optional fields.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message  # noqa: TID251 - a standalone client
from jsonschema import Draft202012Validator

SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "signal.v1.json"
TOPIC = "signals.v1"


def security_config(env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """librdkafka's transport keys from tickpipe's variables (README: Security). A password
    comes from its file (`TICKPIPE_KAFKA_SASL_PASSWORD_FILE`), read here, never logged."""
    protocol = env.get("TICKPIPE_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").strip().upper()
    conf: dict[str, Any] = {"security.protocol": protocol}
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        password_file = env.get("TICKPIPE_KAFKA_SASL_PASSWORD_FILE")
        password = (
            Path(password_file).read_text().strip()
            if password_file
            else env.get("TICKPIPE_KAFKA_SASL_PASSWORD", "")
        )
        if not env.get("TICKPIPE_KAFKA_SASL_USERNAME") or not password:
            raise SystemExit(
                f"{protocol} needs TICKPIPE_KAFKA_SASL_USERNAME and "
                "TICKPIPE_KAFKA_SASL_PASSWORD_FILE"
            )
        conf["sasl.mechanism"] = env.get("TICKPIPE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
        conf["sasl.username"] = env["TICKPIPE_KAFKA_SASL_USERNAME"]
        conf["sasl.password"] = password
    for var, key in (
        ("TICKPIPE_KAFKA_SSL_CA_FILE", "ssl.ca.location"),
        ("TICKPIPE_KAFKA_SSL_CERT_FILE", "ssl.certificate.location"),
        ("TICKPIPE_KAFKA_SSL_KEY_FILE", "ssl.key.location"),
    ):
        if env.get(var):
            conf[key] = env[var]
    extra = json.loads(env.get("TICKPIPE_KAFKA_CONFIG") or "{}")
    return {**extra, **conf}


def validator(schema_path: Path = SCHEMA) -> Draft202012Validator:
    """A validator for `schema_path`, as published: its content model is open
    (`additionalProperties: true`), so the optional fields a later v1 adds validate too.
    A copy of the v0.1.0 schema (closed by mistake) refuses them: replace it with today's
    or with v0.1.0.post1 (docs/schemas.md)."""
    schema = json.loads(schema_path.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def parse(msg: Message, check: Draft202012Validator) -> dict[str, Any]:
    """The signal in `msg`, or ValueError saying why it is not a valid signal.v1."""
    headers = dict(msg.headers() or [])
    if headers.get("event-type") not in (None, b"signal"):
        raise ValueError(f"not a signal: event-type {headers['event-type']!r}")
    try:
        body = json.loads(msg.value() or b"")
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    errors = sorted(check.iter_errors(body), key=lambda e: list(e.path))
    if errors:
        raise ValueError("; ".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors))
    return dict(body)


def consume(
    bootstrap: str,
    group: str,
    on_signal: Callable[[dict[str, Any]], None],
    stop: threading.Event,
    topic: str = TOPIC,
    on_invalid: Callable[[Message, str], None] | None = None,
    security: Mapping[str, Any] | None = None,
) -> None:
    """Call `on_signal` for every valid signal until `stop` is set; commit after handling.
    `security`: librdkafka's transport keys (default: `security_config()`)."""
    check = validator()
    consumer = Consumer(
        {
            **(security_config() if security is None else security),
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 50,
        }
    )
    consumer.subscribe([topic])
    try:
        while not stop.is_set():
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(str(err))
            try:
                on_signal(parse(msg, check))
            except ValueError as exc:
                # A bad record is reported and skipped, never retried forever.
                if on_invalid is not None:
                    on_invalid(msg, str(exc))
            consumer.commit(message=msg, asynchronous=False)
    finally:
        consumer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bootstrap", default=os.environ.get("TICKPIPE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    )
    parser.add_argument("--group", required=True, help="your team's consumer group")
    parser.add_argument("--topic", default=TOPIC, help="with a namespace: <ns>.signals.v1")
    args = parser.parse_args()
    stop = threading.Event()

    def show(signal: dict[str, Any]) -> None:
        key = f"{signal['exchange']}:{signal['symbol']}"
        print(f"{key} direction={signal['direction']} p={signal['probability']:.4f}", flush=True)

    def invalid(msg: Message, why: str) -> None:
        print(f"skipped {msg.topic()}[{msg.partition()}]@{msg.offset()}: {why}", file=sys.stderr)

    try:
        consume(args.bootstrap, args.group, show, stop, args.topic, invalid)
    except KeyboardInterrupt:
        stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
