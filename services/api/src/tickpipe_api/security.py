"""FastAPI dependencies: who is calling (bearer JWT), may they, and are they within rate."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tickpipe_api.auth import InvalidToken, Principal, Role, TokenVerifier
from tickpipe_api.ratelimit import RateLimiter

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="JWT (HS256) with a `role` claim.")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]

_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def _authenticate(request: Request, token: str | None) -> Principal:
    verifier: TokenVerifier = request.app.state.verifier
    if not token:
        raise HTTPException(401, "missing bearer token", headers=_UNAUTHORIZED)
    try:
        return verifier.verify(token)
    except InvalidToken as exc:
        # The reason is logged, the token never is; clients learn only that it failed.
        log.info("token rejected", extra={"reason": str(exc), "path": request.url.path})
        raise HTTPException(401, "invalid token", headers=_UNAUTHORIZED) from exc


def _authorize(request: Request, principal: Principal, role: Role, limiter: RateLimiter) -> None:
    if not principal.allows(role):
        raise HTTPException(403, f"needs role {role.value} or above")
    wait = limiter.take(principal.subject)
    if wait > 0:
        raise HTTPException(
            429, "rate limit exceeded", headers={"Retry-After": str(math.ceil(wait))}
        )


def require(role: Role, *, control: bool = False) -> Callable[..., Principal]:
    """A dependency admitting `role` and above, charged to the read or the control bucket."""

    def dependency(request: Request, credentials: Bearer) -> Principal:
        principal = _authenticate(request, credentials.credentials if credentials else None)
        limiter = request.app.state.control_limiter if control else request.app.state.read_limiter
        _authorize(request, principal, role, limiter)
        return principal

    return dependency


def require_stream(role: Role) -> Callable[..., Principal]:
    """For EventSource, which cannot send headers: the token may come as `access_token`.

    Query strings end up in browser history and proxy logs, so this is accepted on the
    read-only stream routes only, and our access log drops query strings.
    """

    def dependency(
        request: Request,
        credentials: Bearer,
        access_token: Annotated[str | None, Query(max_length=4096)] = None,
    ) -> Principal:
        token = credentials.credentials if credentials else access_token
        principal = _authenticate(request, token)
        _authorize(request, principal, role, request.app.state.read_limiter)
        return principal

    return dependency
