"""Service health for operators: each service's /readyz and its consumer lag and end-to-end
latency scraped from /metrics (URLs from `TICKPIPE_API_HEALTH_TARGETS`); and the API's own
/readyz."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from typing import Protocol

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')

router = APIRouter()


@router.get("/readyz", include_in_schema=False)
def readyz(request: Request) -> JSONResponse:
    """200 once the live-feed consumer holds its assignment, as the services' /readyz: a
    replica whose feed is not consuming would serve empty signal streams (/healthz: alive)."""
    ready = bool(request.app.state.ports.feed_ready())
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


class ServiceHealth(BaseModel):
    service: str
    url: str
    ready: bool
    error: str | None = None
    lag: dict[str, float] = {}
    e2e_latency_s: float | None = None  # mean since start, from the histogram's sum/count


class HealthProbe(Protocol):
    def check(self) -> list[ServiceHealth]: ...


def parse_metrics(text: str) -> tuple[dict[str, float], float | None]:
    """Consumer lag per topic and mean end-to-end latency from a Prometheus text page."""
    lag: dict[str, float] = {}
    total = count = 0.0
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m is None:
            continue
        labels = dict(_LABEL.findall(m["labels"]))
        value = float(m["value"])
        if m["name"] == "tickpipe_consumer_lag":
            topic = labels.get("topic", "")
            lag[topic] = lag.get(topic, 0.0) + value
        elif m["name"] == "tickpipe_end_to_end_latency_seconds_sum":
            total += value
        elif m["name"] == "tickpipe_end_to_end_latency_seconds_count":
            count += value
    return lag, (total / count if count else None)


class HttpHealthProbe:
    """Scrapes each target at most once per `ttl_s`, so dashboards cannot hammer services."""

    def __init__(self, targets: Mapping[str, str], timeout_s: float = 1.0, ttl_s: float = 2.0):
        self._targets = dict(targets)
        self._client = httpx.Client(timeout=timeout_s)
        self._ttl = ttl_s
        self._cached: tuple[float, list[ServiceHealth]] | None = None
        self._lock = threading.Lock()

    def check(self) -> list[ServiceHealth]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self._ttl:
                self._cached = (now, [self._one(s, u) for s, u in self._targets.items()])
            return self._cached[1]

    def _one(self, service: str, url: str) -> ServiceHealth:
        base = url.rstrip("/")
        try:
            ready = self._client.get(f"{base}/readyz").status_code == 200
            lag, latency = parse_metrics(self._client.get(f"{base}/metrics").text)
        except httpx.HTTPError as exc:
            return ServiceHealth(service=service, url=url, ready=False, error=type(exc).__name__)
        return ServiceHealth(service=service, url=url, ready=ready, lag=lag, e2e_latency_s=latency)

    def close(self) -> None:
        self._client.close()


class StaticHealthProbe:
    """The in-memory twin: reports what a test sets."""

    def __init__(self, services: list[ServiceHealth] | None = None) -> None:
        self.services = services or []

    def check(self) -> list[ServiceHealth]:
        return list(self.services)
