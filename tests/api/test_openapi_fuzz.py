"""Schemathesis over the OpenAPI document, in-process (ASGI), as an admin: no request it
can generate makes the API fail (5xx) or answer outside its documented contract."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import ignored_auth, negative_data_rejection

from tests.api.conftest import bearer, build_api
from tickpipe_api.auth import Role

APP = build_api().app
ADMIN = bearer(Role.ADMIN, "fuzzer")
# Streams never end on their own; they are covered in test_reads.py with max_events.
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path_regex="stream$")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_when_fuzzed_as_admin_never_fails(case: schemathesis.Case[Any]) -> None:
    # Unknown query parameters are tolerated by design (FastAPI ignores them), and the token
    # is always sent: auth is covered route by route in test_authorization.py.
    case.call_and_validate(headers=ADMIN, excluded_checks=[negative_data_rejection, ignored_auth])
