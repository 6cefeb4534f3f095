"""Topic administration: creates every topic from `tickpipe.topics` (idempotently)."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # re-exported at runtime, not in the stubs

from tickpipe.topics import TOPICS, TopicNames


def create_topics(
    bootstrap: str, names: TopicNames, replication_factor: int = 1, timeout_s: float = 30.0
) -> dict[str, str]:
    """Create all topics; returns topic -> `created` | `exists`. Raises on any other error."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
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


def delete_topics(bootstrap: str, names: TopicNames, timeout_s: float = 30.0) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.delete_topics([names.physical(t.name) for t in TOPICS])
    for future in futures.values():
        try:
            future.result(timeout_s)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise
