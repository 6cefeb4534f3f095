"""Live mode's handler: the OMS state is rebuilt from the ledger, not from a snapshot.

Why not a snapshot: after a restart the runner replays the records consumed since the
snapshot and drops their outputs (they were published before). That is right for the paper
exchange, whose answers are a function of the inputs; a live exchange answers with what is
true *now* (fills that came while the process was dead), and those reports would be dropped
with the replay and lost from `executions.v1`. So live mode keeps no snapshot: at start the
OMS folds the committed ledger (exactly what was published) and the kill switch from
`control.v1` (`ExecutionHandler.on_start`), and continues from the committed offsets;
reconciliation then reports everything the exchange did since, once.
"""

from __future__ import annotations

from collections.abc import Sequence

from tickpipe.cache.base import Cache
from tickpipe.messages import ControlCommand, Event
from tickpipe.service import Emit, ServiceContext
from tickpipe_execution.handlers import ExecutionHandler

KILL_SWITCH_KEY = "execution:live:kill_switch"  # written for operators, never read back


class LedgerBackedHandler:
    """Wraps the OMS handler; has no `snapshot`/`restore`, so the runner keeps none and
    `on_start` always rebuilds from the topics."""

    def __init__(self, inner: ExecutionHandler, cache: Cache) -> None:
        self.inner = inner
        self._cache = cache
        self._started = False

    def on_start(self, ctx: ServiceContext) -> Sequence[Emit]:
        # The runner's transactional producer has fenced the dead instance and aborted its
        # open transaction by now (the link is built first), so the ledger's end is readable.
        out = self.inner.on_start(ctx)
        self._started = True
        return out

    def handle(self, event: Event, topic: str, now_ns: int) -> Sequence[Emit]:
        if not self._started:
            # Never trade on an OMS that has not read the ledger.
            raise RuntimeError("live execution handled a record before on_start")
        out = self.inner.handle(event, topic, now_ns)
        if isinstance(event, ControlCommand):
            self._cache.set(KILL_SWITCH_KEY, b"1" if self.inner.kill_switch else b"0")
        return out
