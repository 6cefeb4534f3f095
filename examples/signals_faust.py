"""Subscribe to tickpipe's signals with a Faust (faust-streaming) agent, validated by the
published JSON Schema (schemas/signal.v1.json).

    pip install 'faust-streaming>=0.15.3' 'aiokafka>=0.13' jsonschema
    BROKER_URL=kafka://127.0.0.1:9092 SIGNALS_GROUP=my-team.signals \\
        faust -A signals_faust worker --without-web -l info   # from this directory

Settings come from the environment: `BROKER_URL` and `APP_DATADIR` are Faust's own,
`SIGNALS_TOPIC` (`<namespace>.signals.v1` for a namespaced pipeline) and `SIGNALS_GROUP`
(your team's consumer group, which is also the Faust app id) are this example's. Transport
security comes from tickpipe's own variables (`broker_credentials` below): SASL_SSL with
`TICKPIPE_KAFKA_SASL_USERNAME`, `TICKPIPE_KAFKA_SASL_PASSWORD_FILE` and
`TICKPIPE_KAFKA_SSL_CA_FILE`, or mTLS (`SSL`) with `TICKPIPE_KAFKA_SSL_CERT_FILE` / `_KEY_FILE`.

Kafka 4: Faust talks to Kafka only through aiokafka. tests/api/test_examples_kafka.py runs
this worker against Kafka 4.1 with faust-streaming 0.15.3 and aiokafka 0.14.0. Kafka 4.0
removed old protocol versions (KIP-896); aiokafka >= 0.13 picks every request's version
through ApiVersions on each connection, which is how its maintainers support Kafka 4
(aio-libs/aiokafka#1085). faust-streaming itself only requires aiokafka >= 0.10, so pin
`aiokafka>=0.13` yourself.

Delivery: at least once. Faust acknowledges an event once the agent moves past it and commits
acknowledged offsets every few seconds, so a crash replays what was not yet committed;
deduplicate on `event_id` if that matters. Order holds per `exchange:symbol` (the key, one
partition each). Faust reads `read_committed` only with `processing_guarantee="exactly_once"`;
tickpipe's inference service does not write signals in transactions, so the default
(`read_uncommitted`) sees exactly the same records.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import faust
from jsonschema import Draft202012Validator

SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "signal.v1.json"
# The schema's content model is open: fields a later v1 adds validate as they are.
CHECK = Draft202012Validator(json.loads(SCHEMA.read_text()))
TOPIC = os.environ.get("SIGNALS_TOPIC", "signals.v1")
log = logging.getLogger("signals")


def broker_credentials(env: Mapping[str, str] = os.environ) -> Any:
    """Faust's credentials from TICKPIPE_KAFKA_SECURITY_PROTOCOL & co. (None: plaintext)."""
    protocol = env.get("TICKPIPE_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").strip().upper()
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        # Verifies the broker's certificate and host name (create_default_context does).
        context = ssl.create_default_context(cafile=env.get("TICKPIPE_KAFKA_SSL_CA_FILE") or None)
        if env.get("TICKPIPE_KAFKA_SSL_CERT_FILE"):
            context.load_cert_chain(
                env["TICKPIPE_KAFKA_SSL_CERT_FILE"], env.get("TICKPIPE_KAFKA_SSL_KEY_FILE")
            )
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        password_file = env.get("TICKPIPE_KAFKA_SASL_PASSWORD_FILE")
        password = (
            Path(password_file).read_text().strip()
            if password_file
            else env.get("TICKPIPE_KAFKA_SASL_PASSWORD")
        )
        return faust.SASLCredentials(
            username=env.get("TICKPIPE_KAFKA_SASL_USERNAME"),
            password=password,
            ssl_context=context,
            mechanism=env.get("TICKPIPE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
        )
    return faust.SSLCredentials(context) if context is not None else None


app = faust.App(
    os.environ.get("SIGNALS_GROUP", "my-team.signals"),  # app id = consumer group
    broker="kafka://127.0.0.1:9092",  # BROKER_URL in the environment wins
    consumer_auto_offset_reset="earliest",
    # Faust's leader-election topic is for apps with tables and timers; this one has neither,
    # and it would need the right to create topics.
    topic_disable_leader=True,
    broker_credentials=broker_credentials(),
)
# Raw bytes: tickpipe's values are plain JSON, not Faust Records with `__faust` metadata.
signals = app.topic(TOPIC, key_type=bytes, value_type=bytes, value_serializer="raw")


def problems(raw: bytes) -> str | None:
    """Why `raw` is not a valid signal.v1, or None."""
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        return f"not JSON: {exc}"
    errors = sorted(CHECK.iter_errors(body), key=lambda e: list(e.path))
    return "; ".join(f"/{'/'.join(map(str, e.path))}: {e.message}" for e in errors) or None


@app.agent(signals)
async def on_signals(stream: Any) -> None:
    async for event in stream.events():
        where = f"{event.message.topic}[{event.message.partition}]@{event.message.offset}"
        why = problems(event.value)
        if why is not None:
            # A bad record is reported and skipped, never retried forever.
            log.warning("skipped %s: %s", where, why)
            continue
        body = json.loads(event.value)
        key = f"{body['exchange']}:{body['symbol']}"
        log.info(
            "signal %s %s direction=%d p=%.4f",
            key,
            body["event_id"],
            body["direction"],
            body["probability"],
        )
