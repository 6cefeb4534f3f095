"""Read models: what the routes return, assembled from the cache and the live feed."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tickpipe.cache.base import get_json
from tickpipe.messages import ExecutionReport, RiskDecision
from tickpipe_api.health import ServiceHealth
from tickpipe_api.ports import ApiPorts

LEGACY_KILL_SWITCH_KEY = "risk:kill_switch"  # before risk kept one per account


class Position(BaseModel):
    symbol: str
    data: dict[str, Any]


class RiskState(BaseModel):
    kill_switch: bool
    rejections_by_reason: dict[str, int]
    recent_rejections: list[RiskDecision]
    # Paused symbols, disabled strategies and limit changes, as the risk service caches them.
    controls: dict[str, Any] | None


class Health(BaseModel):
    feed_ready: bool
    services: list[ServiceHealth]


class Snapshot(BaseModel):
    """One dashboard frame."""

    pnl: dict[str, Any] | None
    positions: list[Position]
    open_orders: list[ExecutionReport]
    fills: list[ExecutionReport]
    signals: dict[str, Any]
    risk: RiskState
    health: Health


def by_symbol(ports: ApiPorts, prefix: str, symbol: str | None = None) -> dict[str, Any]:
    """Latest cached JSON per `exchange:symbol` under `prefix` (`signals:`, `features:`)."""
    keys = [prefix + symbol] if symbol else ports.cache.keys(prefix)
    out: dict[str, Any] = {}
    for key in keys:
        value = get_json(ports.cache, key)
        if value is not None:
            out[key[len(prefix) :]] = value
    return out


def positions(ports: ApiPorts) -> list[Position]:
    prefix = f"positions:{ports.account}:"
    return [Position(symbol=k, data=v) for k, v in by_symbol(ports, prefix).items()]


def pnl(ports: ApiPorts) -> dict[str, Any] | None:
    value = get_json(ports.cache, f"pnl:{ports.account}")
    return value if isinstance(value, dict) else None


def risk_state(ports: ApiPorts, recent: int = 50) -> RiskState:
    reasons, rejections = ports.feed.rejections()
    controls = get_json(ports.cache, f"risk:{ports.account}:controls")
    flag = ports.cache.get(f"risk:{ports.account}:kill_switch")
    if flag is None:
        flag = ports.cache.get(LEGACY_KILL_SWITCH_KEY)
    return RiskState(
        kill_switch=flag == b"1",
        rejections_by_reason=reasons,
        recent_rejections=rejections[:recent],
        controls=controls if isinstance(controls, dict) else None,
    )


def health(ports: ApiPorts) -> Health:
    return Health(feed_ready=ports.feed_ready(), services=ports.health.check())


def snapshot(ports: ApiPorts) -> Snapshot:
    return Snapshot(
        pnl=pnl(ports),
        positions=positions(ports),
        open_orders=ports.feed.open_orders()[:50],
        fills=ports.feed.fills()[:50],
        signals=by_symbol(ports, "signals:"),
        risk=risk_state(ports, recent=20),
        health=health(ports),
    )
