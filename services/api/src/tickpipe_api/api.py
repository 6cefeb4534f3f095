"""The API factory: routes, the dashboard's static files and an access log without tokens."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from tickpipe_api import health, routes_control, routes_read, routes_stream
from tickpipe_api.ports import ApiPorts

STATIC = Path(__file__).parent / "static"
access_log = logging.getLogger("tickpipe_api.access")

# Everything the page loads comes from this origin: no CDN, no inline script.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def create_app(ports: ApiPorts) -> FastAPI:
    app = FastAPI(
        title="tickpipe operator API",
        version="1",
        description="Positions, PnL, orders, risk and signals; control commands on control.v1.",
        # Swagger UI and ReDoc load from a CDN; the schema stays at /openapi.json.
        docs_url=None,
        redoc_url=None,
    )
    app.state.ports = ports
    app.state.verifier = ports.verifier
    app.state.read_limiter = ports.read_limiter
    app.state.control_limiter = ports.control_limiter
    app.include_router(routes_read.router)
    app.include_router(routes_control.router)
    app.include_router(routes_stream.router)
    app.include_router(health.router)  # /readyz: the live feed holds its assignment
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.middleware("http")
    async def headers_and_access_log(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        # The path only: stream URLs may carry `access_token` in the query string.
        access_log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.url.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - start) * 1000, 2),
            },
        )
        return response

    return app
