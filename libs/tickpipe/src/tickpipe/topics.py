"""Every topic, its key, partitions and configs, in one place (`tickpipe topics create`)."""

from __future__ import annotations

from dataclasses import dataclass, field

DAY_MS = 24 * 60 * 60 * 1000

TRADES = "md.trades.v1"
QUOTES = "md.quotes.v1"
QUALITY = "md.quality.v1"
FEATURES = "features.v1"
SIGNALS = "signals.v1"
ORDERS = "orders.v1"
EXECUTIONS = "executions.v1"
RISK_DECISIONS = "risk.decisions.v1"
CONTROL = "control.v1"
DLQ = "dlq.v1"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def _retention(days: int | None) -> dict[str, str]:
    return {"retention.ms": "-1" if days is None else str(days * DAY_MS)}


# Partitions bound consumer-group parallelism per service; six fits a small cluster.
TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(TRADES, "exchange:symbol", 6, _retention(7)),
    TopicSpec(QUOTES, "exchange:symbol", 6, _retention(1)),
    TopicSpec(QUALITY, "exchange:symbol", 6, _retention(7)),
    TopicSpec(FEATURES, "exchange:symbol", 6, _retention(7)),
    TopicSpec(SIGNALS, "exchange:symbol", 6, _retention(30)),
    TopicSpec(ORDERS, "exchange:symbol", 6, _retention(30)),
    TopicSpec(EXECUTIONS, "exchange:symbol", 6, _retention(None)),
    TopicSpec(RISK_DECISIONS, "exchange:symbol", 6, _retention(30)),
    TopicSpec(CONTROL, "command target", 1, {"cleanup.policy": "compact"}),
    TopicSpec(DLQ, "source topic", 3, _retention(30)),
)

BY_NAME = {t.name: t for t in TOPICS}


class TopicNames:
    """Maps logical topic names to physical ones under an optional namespace.

    A namespace (`TICKPIPE_TOPIC_NAMESPACE`) lets several pipelines, or test runs, share a
    cluster without seeing each other's data.
    """

    def __init__(self, namespace: str = "") -> None:
        self._prefix = f"{namespace}." if namespace else ""

    def physical(self, logical: str) -> str:
        return self._prefix + logical

    def logical(self, physical: str) -> str:
        if self._prefix and physical.startswith(self._prefix):
            return physical[len(self._prefix) :]
        return physical
