"""The API over in-memory twins: cache, control publisher, live feed and health probe."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from tests.api.testclient import TestClient
from tickpipe.cache.memory import MemoryCache
from tickpipe.clock import LiveClock
from tickpipe.ids import EventIds
from tickpipe_api.api import create_app
from tickpipe_api.auth import Role, TokenVerifier, issue_token
from tickpipe_api.control import MemoryControlPublisher
from tickpipe_api.health import ServiceHealth, StaticHealthProbe
from tickpipe_api.live import LiveFeed
from tickpipe_api.ports import ApiPorts
from tickpipe_api.ratelimit import RateLimiter

KEY = SecretStr("test-signing-key-" + "0123456789abcdef" * 4)  # 64+ bytes: HS512 attack too
ISSUER = "tickpipe"
AUDIENCE = "tickpipe-api"


def token(sub: str = "alice", role: Role = Role.OPERATOR, ttl_s: int = 600) -> str:
    return issue_token(
        KEY,
        subject=sub,
        role=role,
        issuer=ISSUER,
        audience=AUDIENCE,
        now_s=int(time.time()),
        ttl_s=ttl_s,
    )


def bearer(role: Role, sub: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub or role.value, role)}"}


@dataclass
class Api:
    app: FastAPI
    ports: ApiPorts
    cache: MemoryCache
    control: MemoryControlPublisher
    feed: LiveFeed


def build_api(
    *, read_rate: float = 1000.0, read_burst: int = 1000, control_burst: int = 1000
) -> Api:
    clock = LiveClock()
    cache = MemoryCache(clock)
    control = MemoryControlPublisher()
    feed = LiveFeed(100)
    ports = ApiPorts(
        cache=cache,
        control=control,
        feed=feed,
        health=StaticHealthProbe(
            [ServiceHealth(service="risk", url="http://risk", ready=True, lag={"signals.v1": 3})]
        ),
        verifier=TokenVerifier(KEY, ISSUER, AUDIENCE),
        read_limiter=RateLimiter(read_rate, read_burst, time.monotonic),
        control_limiter=RateLimiter(1.0, control_burst, time.monotonic),
        clock=clock,
        ids=EventIds(clock),
        stream_interval_s=0.05,
    )
    return Api(create_app(ports), ports, cache, control, feed)


@pytest.fixture
def api() -> Api:
    return build_api()


@pytest.fixture
def client(api: Api) -> Iterator[TestClient]:
    with TestClient(api.app) as c:
        yield c
