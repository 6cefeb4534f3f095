"""Read-only routes for viewers and up."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from tickpipe.messages import ExecutionReport
from tickpipe_api import views
from tickpipe_api.audit import AuditEntry
from tickpipe_api.auth import Principal, Role
from tickpipe_api.ports import ApiPorts
from tickpipe_api.security import require

SYMBOL_PATTERN = r"^[a-z0-9_-]{1,32}:[A-Za-z0-9/:._-]{1,48}$"
Symbol = Annotated[
    str | None,
    Query(pattern=SYMBOL_PATTERN, description="`exchange:symbol`, e.g. binance:BTC/USDT"),
]
Limit = Annotated[int, Query(ge=1, le=500)]
Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid token"},
    403: {"description": "Role too low"},
    429: {"description": "Rate limit exceeded (see Retry-After)"},
}

router = APIRouter(responses=AUTH_ERRORS)


def _ports(request: Request) -> ApiPorts:
    ports: ApiPorts = request.app.state.ports
    return ports


@router.get("/positions", tags=["state"])
def get_positions(request: Request, _: Viewer) -> list[views.Position]:
    return views.positions(_ports(request))


@router.get("/pnl", tags=["state"])
def get_pnl(request: Request, _: Viewer) -> dict[str, Any] | None:
    return views.pnl(_ports(request))


@router.get("/orders", tags=["state"])
def get_open_orders(request: Request, _: Viewer, limit: Limit = 100) -> list[ExecutionReport]:
    return _ports(request).feed.open_orders()[:limit]


@router.get("/fills", tags=["state"])
def get_fills(request: Request, _: Viewer, limit: Limit = 100) -> list[ExecutionReport]:
    return _ports(request).feed.fills()[:limit]


@router.get("/risk", tags=["state"])
def get_risk(request: Request, _: Viewer) -> views.RiskState:
    return views.risk_state(_ports(request))


@router.get("/signals", tags=["state"])
def get_signals(request: Request, _: Viewer, symbol: Symbol = None) -> dict[str, Any]:
    """Latest signal per symbol, from the cache."""
    return views.by_symbol(_ports(request), "signals:", symbol)


@router.get("/features", tags=["state"])
def get_features(request: Request, _: Viewer, symbol: Symbol = None) -> dict[str, Any]:
    """Latest feature vector per symbol, from the cache."""
    return views.by_symbol(_ports(request), "features:", symbol)


@router.get("/health", tags=["state"])
def get_health(request: Request, _: Viewer) -> views.Health:
    """Each service's readiness, consumer lag and end-to-end latency (scraped)."""
    return views.health(_ports(request))


@router.get("/snapshot", tags=["state"])
def get_snapshot(request: Request, _: Viewer) -> views.Snapshot:
    """Everything the dashboard shows, in one frame."""
    return views.snapshot(_ports(request))


@router.get("/audit", tags=["control"])
def get_audit(request: Request, _: Operator, limit: Limit = 100) -> list[AuditEntry]:
    """Recent control commands, newest first (this process only; Kafka holds them all)."""
    return _ports(request).audit.recent()[:limit]
