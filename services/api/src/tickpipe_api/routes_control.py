"""Control routes (operator and up): each publishes one `ControlCommand` on `control.v1`."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from tickpipe.messages import ControlAction, ControlCommand
from tickpipe_api.auth import Principal, Role
from tickpipe_api.ports import ApiPorts
from tickpipe_api.routes_read import AUTH_ERRORS, SYMBOL_PATTERN
from tickpipe_api.security import require

log = logging.getLogger(__name__)

Operator = Annotated[Principal, Depends(require(Role.OPERATOR, control=True))]
Reason = Annotated[str | None, Field(default=None, max_length=500)]

# > 0, plain notation: what the risk service can parse as a limit.
POSITIVE_DECIMAL = r"^([1-9][0-9]{0,17}(\.[0-9]{1,12})?|0\.[0-9]{0,11}[1-9][0-9]{0,11})$"

router = APIRouter(
    prefix="/control",
    tags=["control"],
    responses={
        **AUTH_ERRORS,
        400: {"description": "Body is not JSON"},
        503: {"description": "control.v1 did not acknowledge"},
    },
)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KillSwitch(_Body):
    engaged: bool = Field(description="true stops all new orders; false resumes.")
    reason: Reason = None


class SymbolCommand(_Body):
    symbol: str = Field(pattern=SYMBOL_PATTERN)
    reason: Reason = None


class LimitChange(_Body):
    # Which names exist is the risk service's business (it dead-letters unknown ones); the
    # API only keeps the shape sane rather than copying risk's list and drifting from it.
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,63}$", examples=["max_order_qty"])
    # A string with an exact pattern: the schema then says precisely what is accepted, and
    # the value travels as typed (decimals on the bus are strings).
    value: str = Field(pattern=POSITIVE_DECIMAL, examples=["2.5"])
    strategy: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Only this strategy's limit"
    )
    reason: Reason = None


class ModelReload(_Body):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    version: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    target: str = Field(
        default="*", pattern=r"^[A-Za-z0-9_.*-]{1,64}$", description="`*` or a strategy id"
    )
    reason: Reason = None


class Accepted(BaseModel):
    event_id: str
    action: ControlAction
    target: str
    issued_by: str


def _issue(
    request: Request,
    who: Principal,
    action: ControlAction,
    target: str,
    args: dict[str, str],
    reason: str | None,
) -> Accepted:
    ports: ApiPorts = request.app.state.ports
    now = ports.clock.now_ns()
    command = ControlCommand(
        event_id=ports.ids.new(),
        ts_event=now,
        ts_init=now,
        action=action,
        target=target,
        args=args,
        issued_by=who.subject,
        reason=reason,
    )
    try:
        ports.control.publish(command)
    except Exception as exc:
        ports.audit.record(command, "failed", type(exc).__name__)
        raise HTTPException(503, "control command not acknowledged; not applied") from exc
    ports.audit.record(command, "published")
    return Accepted(event_id=command.event_id, action=action, target=target, issued_by=who.subject)


@router.post("/kill-switch", status_code=202)
def kill_switch(request: Request, body: KillSwitch, who: Operator) -> Accepted:
    action = ControlAction.KILL_SWITCH_ON if body.engaged else ControlAction.KILL_SWITCH_OFF
    return _issue(request, who, action, "*", {}, body.reason)


@router.post("/pause", status_code=202)
def pause_symbol(request: Request, body: SymbolCommand, who: Operator) -> Accepted:
    return _issue(request, who, ControlAction.PAUSE_SYMBOL, body.symbol, {}, body.reason)


@router.post("/resume", status_code=202)
def resume_symbol(request: Request, body: SymbolCommand, who: Operator) -> Accepted:
    return _issue(request, who, ControlAction.RESUME_SYMBOL, body.symbol, {}, body.reason)


@router.post("/limits", status_code=202)
def set_limit(request: Request, body: LimitChange, who: Operator) -> Accepted:
    args = {"name": body.name, "value": body.value}
    if body.strategy is not None:
        args["strategy"] = body.strategy
    return _issue(request, who, ControlAction.SET_LIMIT, "*", args, body.reason)


@router.post("/models/reload", status_code=202)
def reload_model(request: Request, body: ModelReload, who: Operator) -> Accepted:
    args = {"name": body.name, "version": body.version}
    return _issue(request, who, ControlAction.RELOAD_MODEL, body.target, args, body.reason)
