"""Operator commands on `control.v1` (compacted; keyed by command target)."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field

from tickpipe.messages.base import Event


class ControlAction(StrEnum):
    KILL_SWITCH_ON = "kill_switch_on"
    KILL_SWITCH_OFF = "kill_switch_off"
    PAUSE_SYMBOL = "pause_symbol"
    RESUME_SYMBOL = "resume_symbol"
    SET_LIMIT = "set_limit"
    RELOAD_MODEL = "reload_model"
    CANCEL_ALL = "cancel_all"


# Commands that supersede each other share a family: on the compacted control.v1 the
# latest of a family survives, and no family can erase another (a limit change never
# compacts away a kill switch).
_FAMILY = {
    ControlAction.KILL_SWITCH_ON: "kill_switch",
    ControlAction.KILL_SWITCH_OFF: "kill_switch",
    ControlAction.PAUSE_SYMBOL: "trading",
    ControlAction.RESUME_SYMBOL: "trading",
    ControlAction.SET_LIMIT: "limit",
    ControlAction.RELOAD_MODEL: "model",
    ControlAction.CANCEL_ALL: "cancel_all",
}


class ControlCommand(Event):
    event_type: ClassVar[str] = "control"
    type: Literal["control"] = "control"
    action: ControlAction
    target: str = Field(default="*", description="What it applies to: `*`, a symbol key, ...")
    args: dict[str, str] = Field(default_factory=dict)
    issued_by: str = Field(min_length=1)
    reason: str | None = None

    @property
    def compaction_key(self) -> str:
        """The Kafka key on `control.v1`: command family, its parameter if any, and target."""
        family = _FAMILY[self.action]
        if self.action is ControlAction.SET_LIMIT:
            family += ":" + ":".join(self.args.get(k, "") for k in ("strategy", "name"))
        return f"{family}:{self.target}"
