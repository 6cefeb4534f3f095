"""Run summaries: counts per stage and PnL, from topic records and the cache."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from tickpipe.bus.base import Record
from tickpipe.runner import EVENT_TYPE
from tickpipe.topics import (
    DLQ,
    EXECUTIONS,
    FEATURES,
    ORDERS,
    QUOTES,
    RISK_DECISIONS,
    SIGNALS,
    TRADES,
)


@dataclass
class Summary:
    counts: dict[str, int] = field(default_factory=dict)
    pnl: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def rows(self) -> list[tuple[str, str]]:
        order = (
            "trades",
            "quotes",
            "bars",
            "signals",
            "orders",
            "rejections",
            "fills",
            "dead_letters",
        )
        rows = [(k, f"{self.counts.get(k, 0):,}") for k in order]
        rows += [(f"pnl {k}", v) for k, v in self.pnl.items()]
        return rows


_STAGE = {
    TRADES: "trades",
    QUOTES: "quotes",
    FEATURES: "bars",
    SIGNALS: "signals",
    ORDERS: "orders",
    DLQ: "dead_letters",
}


def count_records(summary: Summary, records: Iterable[Record]) -> None:
    for r in records:
        stage = _STAGE.get(r.topic)
        if stage is not None:
            summary.add(stage)
        elif r.topic == EXECUTIONS and r.header(EVENT_TYPE) == b"execution":
            if orjson.loads(r.value).get("last_qty", "0") not in ("0", 0):
                summary.add("fills")
        elif r.topic == RISK_DECISIONS and not orjson.loads(r.value).get("approved", True):
            summary.add("rejections")
