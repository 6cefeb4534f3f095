"""Pre-trade controls, one per module: pure functions and small state machines.

None reads a clock or does I/O: time comes in as `now_ns`. `tickpipe_risk.domain.checks`
composes them and returns every failing reason code, not just the first.
"""
