"""Everything the API is built from. Production wiring is in `app.py`; tests pass twins."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tickpipe.cache.base import Cache
from tickpipe.clock import Clock
from tickpipe.ids import EventIds
from tickpipe_api.audit import AuditLog
from tickpipe_api.auth import TokenVerifier
from tickpipe_api.control import ControlPublisher
from tickpipe_api.health import HealthProbe
from tickpipe_api.live import LiveFeed
from tickpipe_api.ratelimit import RateLimiter


@dataclass
class ApiPorts:
    cache: Cache
    control: ControlPublisher
    feed: LiveFeed
    health: HealthProbe
    verifier: TokenVerifier
    read_limiter: RateLimiter
    control_limiter: RateLimiter
    clock: Clock
    ids: EventIds
    account: str = "paper"
    audit: AuditLog = field(default_factory=AuditLog)
    # Whether the background consumer feeding `feed` is assigned (always true for twins).
    feed_ready: Callable[[], bool] = lambda: True
    stream_interval_s: float = 0.5
