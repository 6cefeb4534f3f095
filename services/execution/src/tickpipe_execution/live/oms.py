"""Live mode's handler: the OMS state is rebuilt from the ledger, not from a snapshot.

Why not a snapshot: after a restart the runner replays the records consumed since the
snapshot and drops their outputs (they were published before). That is right for the paper
exchange, whose answers are a function of the inputs; a live exchange answers with what is
true *now* (fills that came while the process was dead), and those reports would be dropped
with the replay and lost from `executions.v1`. So live mode keeps no snapshot: at start it
folds the committed ledger (exactly what was published) and continues from the committed
offsets; reconciliation then reports everything the exchange did since, once.
The kill switch, which is not in the ledger, is kept in the cache.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence

from tickpipe.bus.base import Bus, BusError
from tickpipe.cache.base import Cache
from tickpipe.messages import ControlCommand, DecodeError, Event, ExecutionReport, decode
from tickpipe.runner import EVENT_TYPE
from tickpipe.service import Emit, ServiceContext
from tickpipe.topics import EXECUTIONS
from tickpipe_execution.domain.ledger import LedgerMismatch, replay
from tickpipe_execution.handlers import ExecutionHandler

log = logging.getLogger(__name__)
KILL_SWITCH_KEY = "execution:live:kill_switch"


class LedgerBackedHandler:
    """Wraps the OMS handler; has no `snapshot`/`restore`, so the runner keeps none."""

    def __init__(
        self,
        inner: ExecutionHandler,
        ledger: Callable[[threading.Event], Iterable[ExecutionReport]],
        cache: Cache,
    ) -> None:
        self.inner = inner
        self._ledger = ledger
        self._cache = cache
        self._loaded = False

    def on_start(self, ctx: ServiceContext) -> Sequence[Emit]:
        # The runner's transactional producer has fenced the dead instance and aborted its
        # open transaction by now (the link is built first), so the ledger's end is readable.
        try:
            orders = replay(self._ledger(ctx.stop))
        except (BusError, LedgerMismatch) as exc:
            # Not a bad input record: without the ledger nothing may be sent. Exit, restart.
            raise SystemExit(f"execution: cannot rebuild the OMS from the ledger: {exc}") from None
        self.inner.orders = orders
        self.inner.kill_switch = self._cache.get(KILL_SWITCH_KEY) == b"1"
        self._loaded = True
        log.info(
            "OMS rebuilt from the ledger",
            extra={"orders": len(orders), "open": len(self.inner.open_orders())},
        )
        return self.inner.on_start(ctx)

    def handle(self, event: Event, topic: str, now_ns: int) -> Sequence[Emit]:
        if not self._loaded:
            # Never trade on an OMS that has not read the ledger.
            raise RuntimeError("live execution handled a record before on_start")
        out = self.inner.handle(event, topic, now_ns)
        if isinstance(event, ControlCommand):
            self._cache.set(KILL_SWITCH_KEY, b"1" if self.inner.kill_switch else b"0")
        return out


def read_ledger(
    bus: Bus,
    stop: threading.Event | None = None,
    quiet_s: float = 1.0,
    timeout_s: float = 120.0,
) -> list[ExecutionReport]:
    """Every committed report on `executions.v1`, in partition order (a fresh group, from
    the start, until the topic has been quiet for `quiet_s` after the assignment). Raises
    BusError when `stop` is set first (the service is shutting down)."""
    link = bus.link(
        group=f"execution-ledger-{uuid.uuid4().hex}",
        topics=[EXECUTIONS],
        client_id="execution-ledger",
    )
    reports: list[ExecutionReport] = []
    deadline = time.monotonic() + timeout_s
    quiet_since: float | None = None
    try:
        while True:
            if time.monotonic() > deadline:
                raise BusError("ledger read timed out")
            if stop is not None and stop.is_set():
                raise BusError("stopped while reading the ledger")
            records = link.poll(1000, 0.1)
            now = time.monotonic()
            if records or not link.ready():
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= quiet_s:
                return reports
            if not records:
                time.sleep(0.01)  # an in-memory bus answers at once: do not spin
            for r in records:
                kind = r.header(EVENT_TYPE)
                try:
                    event = decode(r.value, None if kind is None else kind.decode())
                except DecodeError:
                    continue  # not a report (nothing else is published there)
                if isinstance(event, ExecutionReport):
                    reports.append(event)
    finally:
        link.close()
