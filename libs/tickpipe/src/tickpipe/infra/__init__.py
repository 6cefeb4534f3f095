"""Real local infrastructure without Docker: a Kafka broker (KRaft, JVM from Maven Central
jars) and `redis-server`, as child processes (see `tickpipe infra --help`)."""

from tickpipe.infra._process import InfraError, free_port
from tickpipe.infra.jars import KAFKA_VERSION, ensure_kafka_jars
from tickpipe.infra.kafka_local import LocalKafka, kafka_ready
from tickpipe.infra.manager import Endpoints, down, status, up
from tickpipe.infra.redis_local import LocalRedis, ensure_redis_server, redis_ready

__all__ = [
    "KAFKA_VERSION",
    "Endpoints",
    "InfraError",
    "LocalKafka",
    "LocalRedis",
    "down",
    "ensure_kafka_jars",
    "ensure_redis_server",
    "free_port",
    "kafka_ready",
    "redis_ready",
    "status",
    "up",
]
