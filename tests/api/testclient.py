"""Starlette's TestClient, imported once without its "use httpx2" deprecation warning.

Starlette 1.x warns at import time when only `httpx` is installed; warnings are errors in
this project. Remove this shim once `httpx2` is in the dev dependencies.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

__all__ = ["TestClient"]
