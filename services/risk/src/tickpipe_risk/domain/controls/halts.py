"""Operator and data halts: the kill switch, paused symbols, degraded feeds. They stop every
new order for what they cover, risk-reducing ones included."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KILL_SWITCH = "kill_switch"
SYMBOL_PAUSED = "symbol_paused"
DATA_QUALITY = "data_quality_halt"


@dataclass
class Halts:
    kill_switch: bool = False
    paused: set[str] = field(default_factory=set)
    degraded: dict[str, dict[str, str]] = field(default_factory=dict)  # key -> stream -> issue

    def check(self, key: str) -> list[str]:
        reasons = []
        if self.kill_switch:
            reasons.append(KILL_SWITCH)
        if key in self.paused:
            reasons.append(SYMBOL_PAUSED)
        if self.degraded.get(key):
            reasons.append(DATA_QUALITY)
        return reasons

    def feed(self, key: str, stream: str, issue: str | None) -> None:
        """A feed's health: an issue halts `key` until the same stream is healthy again."""
        streams = self.degraded.setdefault(key, {})
        if issue is None:
            streams.pop(stream, None)
            if not streams:
                del self.degraded[key]
        else:
            streams[stream] = issue

    def dump(self) -> dict[str, Any]:
        return {
            "kill_switch": self.kill_switch,
            "paused": sorted(self.paused),
            "degraded": self.degraded,
        }

    @classmethod
    def load(cls, d: Any) -> Halts:
        return cls(d["kill_switch"], set(d["paused"]), d["degraded"])
