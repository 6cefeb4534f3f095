"""Schemathesis over the OpenAPI document, in-process (ASGI), as an admin: no request it
can generate makes the API fail (5xx) or answer outside its documented contract."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import ignored_auth, negative_data_rejection

from tests.api.conftest import bearer, build_api
from tickpipe_api.auth import Role

APP = build_api().app
# Streams never end on their own; they are covered in test_reads.py with max_events.
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path_regex="stream$")


@pytest.fixture
def calls() -> Iterator[Counter[str]]:
    """Per API operation: how its fuzzed calls fared against auth, checked once all ran."""
    tally: Counter[str] = Counter()
    yield tally
    assert tally["authorised"] > 0, f"no fuzzed call got past auth: {dict(tally)}"


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_when_fuzzed_as_admin_never_fails(
    case: schemathesis.Case[Any], calls: Counter[str]
) -> None:
    # Unknown query parameters are tolerated by design (FastAPI ignores them), and the token
    # is always sent: auth is covered route by route in test_authorization.py. It is minted
    # here, per case: one minted at import expires on a slow or late run, and every call
    # would then only exercise the 401 path.
    token = bearer(Role.ADMIN, "fuzzer")
    response = case.call_and_validate(
        headers=token, excluded_checks=[negative_data_rejection, ignored_auth]
    )
    # Schemathesis strips the header from its own "missing Authorization" cases, whatever
    # the caller passes; any call that did carry the fresh admin token must get past auth.
    if response.request.headers.get("Authorization") != token["Authorization"]:
        calls["token stripped"] += 1
        return
    assert response.status_code != 401, (
        f"a fresh admin token was refused: {case.method} {case.path} -> "
        f"{response.status_code} {response.text[:200]}"
    )
    calls["authorised"] += 1
