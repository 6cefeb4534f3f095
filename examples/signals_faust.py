"""Subscribe to tickpipe's signals with Faust (faust-streaming) — NOT tested in this repo.

Status (evaluated for tickpipe issue 9; faust-streaming is not a tickpipe dependency):

* faust-streaming 0.15.3 talks to Kafka through aiokafka (its only Kafka client) and
  requires `aiokafka>=0.10.0`.
* Kafka 4.0 removed old protocol versions (KIP-896). aiokafka < 0.13 selected request
  versions from a guessed broker version (`api_version`); aiokafka >= 0.13 negotiates every
  request through ApiVersions and still carries the baseline versions Kafka 4 keeps (Fetch
  v4+, Produce v3+, Metadata v4+, OffsetCommit v2+, JoinGroup v2+ ...). Its maintainers say
  current releases work with Kafka 4.x (aio-libs/aiokafka#1085). faust-streaming 0.15.3 has
  code paths for aiokafka >= 0.13 (`_AIOKAFKA_HAS_API_VERSION`).
* So: pin `faust-streaming>=0.15.3` together with `aiokafka>=0.13` (Faust's own floor of
  0.10 would allow an aiokafka that cannot talk to our Kafka 4.1 broker). We have not run
  it against the broker: it is not in tickpipe's lock, and it would add a second Kafka
  client stack (DESIGN.md: one, librdkafka). Prefer `signals_confluent.py`.

    pip install 'faust-streaming>=0.15.3' 'aiokafka>=0.13' jsonschema
    faust -A examples.signals_faust worker -l info
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import faust  # type: ignore[import-not-found]  # not a tickpipe dependency (see above)
from jsonschema import Draft202012Validator

SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "signal.v1.json"
CHECK = Draft202012Validator(json.loads(SCHEMA.read_text()))

app = faust.App(
    "my-team-signals",  # the consumer group: one per subscribing team
    broker="kafka://127.0.0.1:9092",
    consumer_auto_offset_reset="earliest",
    topic_disable_leader=True,
)
# Raw bytes: tickpipe's payload is plain JSON, not a Faust Record with `__faust` metadata.
signals = app.topic("signals.v1", key_type=bytes, value_type=bytes, value_serializer="raw")


@app.agent(signals)
async def on_signals(stream: Any) -> None:
    async for raw in stream:
        body = json.loads(raw)
        errors = list(CHECK.iter_errors(body))
        if errors:
            print("skipped invalid signal:", errors[0].message)
            continue
        print(f"{body['exchange']}:{body['symbol']} direction={body['direction']}")
