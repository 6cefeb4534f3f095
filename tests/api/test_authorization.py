"""Every route × every role, plus no token: who may do what."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api, bearer, build_api
from tests.api.factories import signal
from tests.api.testclient import TestClient
from tickpipe_api.auth import Role

SYMBOL = "binance:BTC/USDT"
# (method, path) -> (least role, request kwargs). Every API route must be listed here.
ROUTES: dict[tuple[str, str], tuple[Role, dict[str, Any]]] = {
    ("GET", "/positions"): (Role.VIEWER, {}),
    ("GET", "/pnl"): (Role.VIEWER, {}),
    ("GET", "/orders"): (Role.VIEWER, {}),
    ("GET", "/fills"): (Role.VIEWER, {}),
    ("GET", "/risk"): (Role.VIEWER, {}),
    ("GET", "/signals"): (Role.VIEWER, {"params": {"symbol": SYMBOL}}),
    ("GET", "/features"): (Role.VIEWER, {}),
    ("GET", "/health"): (Role.VIEWER, {}),
    ("GET", "/snapshot"): (Role.VIEWER, {}),
    ("GET", "/dashboard/stream"): (Role.VIEWER, {"params": {"max_events": 1}}),
    (
        "GET",
        "/signals/stream",
    ): (Role.VIEWER, {"params": {"max_events": 1}, "headers": {"Last-Event-ID": "0"}}),
    ("GET", "/audit"): (Role.OPERATOR, {}),
    ("POST", "/control/kill-switch"): (Role.OPERATOR, {"json": {"engaged": True}}),
    ("POST", "/control/pause"): (Role.OPERATOR, {"json": {"symbol": SYMBOL}}),
    ("POST", "/control/resume"): (Role.OPERATOR, {"json": {"symbol": SYMBOL}}),
    ("POST", "/control/limits"): (
        Role.OPERATOR,
        {"json": {"name": "max_order_qty", "value": "2.5"}},
    ),
    ("POST", "/control/models/reload"): (
        Role.OPERATOR,
        {"json": {"name": "baseline", "version": "v2"}},
    ),
}
RANK = [Role.VIEWER, Role.OPERATOR, Role.ADMIN]


def _call(client: TestClient, method: str, path: str, role: Role | None, kw: dict[str, Any]):  # type: ignore[no-untyped-def]
    headers = {**kw.get("headers", {}), **(bearer(role) if role else {})}
    return client.request(
        method, path, params=kw.get("params"), json=kw.get("json"), headers=headers
    )


def test_routes_when_listed_in_matrix_cover_every_api_route(api: Api) -> None:
    paths = api.app.openapi()["paths"]
    routes = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    assert routes == set(ROUTES)


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES))
@pytest.mark.parametrize("role", [None, *RANK], ids=lambda r: r.value if r else "no-token")
def test_route_when_called_with_role_allows_exactly_roles_at_or_above(
    method: str, path: str, role: Role | None
) -> None:
    api = build_api()
    api.feed.on_event(signal())
    needed, kw = ROUTES[(method, path)]
    with TestClient(api.app) as client:
        response = _call(client, method, path, role, kw)
    if role is None:
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    elif RANK.index(role) < RANK.index(needed):
        assert response.status_code == 403
    else:
        assert response.status_code in (200, 202), response.text
