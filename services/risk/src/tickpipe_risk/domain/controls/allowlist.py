"""Symbol allowlist: only configured instruments trade (empty: all)."""

from __future__ import annotations

REASON = "symbol_not_allowed"


def check_allowlist(key: str, allowed: frozenset[str]) -> list[str]:
    return [REASON] if allowed and key not in allowed else []
