"""Raw Kafka transport latency: one confluent-kafka producer -> one consumer, no tickpipe code.

The floor under every hop of the pipeline. Uses the bus's producer/consumer defaults, then
variations given on the command line (`key=value` librdkafka settings; keys starting with
`fetch.` go to the consumer).

    .venv/bin/python bench/transport.py [--rate 3600] [--n 10000] [compression.type=lz4 ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from tickpipe.bus.kafka import CONSUMER_DEFAULTS, PRODUCER_DEFAULTS


def probe(bootstrap: str, rate: float, n: int, overrides: dict[str, str]) -> list[float]:
    topic = f"probe{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 6, 1)])[topic].result(30)
    consumer_conf: dict[str, Any] = {
        **CONSUMER_DEFAULTS,
        "bootstrap.servers": bootstrap,
        "group.id": topic,
    }
    producer_conf: dict[str, Any] = {**PRODUCER_DEFAULTS, "bootstrap.servers": bootstrap}
    for k, v in overrides.items():
        (consumer_conf if k.startswith("fetch.") else producer_conf)[k] = v
    consumer = Consumer(consumer_conf)
    consumer.subscribe([topic])
    while not consumer.assignment():
        consumer.poll(0.1)
    producer = Producer(producer_conf)
    producer.produce(topic, value=b"warm-up")  # producer id and metadata before timing
    producer.flush(30)

    def produce() -> None:
        start = time.monotonic()
        for i in range(n):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            producer.produce(topic, key=b"k%d" % (i % 7), value=str(time.time_ns()).encode())
            producer.poll(0)
        producer.flush(30)

    thread = threading.Thread(target=produce)
    thread.start()
    latencies: list[float] = []
    while len(latencies) < n:
        first = consumer.poll(1.0)
        if first is None:
            continue
        for m in [first, *consumer.consume(499, 0)]:
            value = m.value()
            if isinstance(value, bytes) and value != b"warm-up":
                latencies.append((time.time_ns() - int(value)) / 1e6)
    thread.join()
    consumer.close()
    admin.delete_topics([topic])
    return sorted(latencies)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rate", type=float, default=3600)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("settings", nargs="*", help="librdkafka key=value overrides")
    args = ap.parse_args()
    bootstrap = os.environ.get("TICKPIPE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    overrides = dict(s.split("=", 1) for s in args.settings)
    lat = probe(bootstrap, args.rate, args.n, overrides)
    print(
        f"{overrides or 'defaults'}: n={len(lat)} p50={statistics.median(lat):.2f} ms "
        f"p99={lat[int(0.99 * len(lat))]:.2f} ms max={lat[-1]:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
