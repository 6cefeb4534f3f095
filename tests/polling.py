"""Waiting in tests: poll for the condition itself, against a deadline, and say what was
awaited when it never came. A fixed sleep is either too short on a slow machine (a flaky
failure) or longer than needed everywhere else, and it hides what the test waits for."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    predicate: Callable[[], bool],
    why: str | Callable[[], str],
    timeout_s: float = 30,
    interval_s: float = 0.05,
) -> None:
    """Return once `predicate()` holds; fail with `why` (a text, or a function giving one at
    the deadline: a log tail, the state seen) if it still does not after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout_s:g} s: {why() if callable(why) else why}"
            )
        time.sleep(interval_s)
