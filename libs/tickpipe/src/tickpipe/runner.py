"""Runners own the consume-process-produce loop around a service's pure handler.

A StreamRunner publishes a batch's outputs and only then commits the batch's input offsets
(atomically, for transactional links). Bad input and handler failures become dead letters
with a reason; they are counted and the service moves on.

Any bytes are input: a consumed record that cannot be decoded as an event its topic carries
(no value, a missing or unreadable `event-type` header, an unknown or misplaced type, bytes
that are not a valid event) is dead-lettered with the reason (`DecodeError`'s codes), and
the dead letter always fits on `dlq.v1` (`DeadLetter.of` bounds it). A header that cannot
be read but is not needed to decode (a non-numeric `tickpipe-origin-ts`) is ignored, not
passed on, and counted in `tickpipe_bad_headers_total`; the record is processed.

Flow control: a handler that holds records back until another topic's come (`Paced`: the
arrival buffer of market data) names the streams that run ahead; the runner pauses the
partitions carrying them until the handler no longer names them, so a consumer catching up
on a backlog reads its topics in step instead of overrunning the buffer. A poll that
returns nothing while partitions are paused resumes them all: a stream that lags for good
must not stall the others (the buffer then gives up on its gap, and counts it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, NoOpTracer, Span, StatusCode, Tracer

from tickpipe.bus.base import Headers, Link, Offsets, OutRecord, Producer, Reader, Record
from tickpipe.clock import Clock
from tickpipe.ids import EventIds
from tickpipe.messages import DeadLetter, DecodeError, Event, Instrument, decode_record, encode
from tickpipe.service import (
    BatchHandler,
    Emit,
    Handler,
    KeyedState,
    Paced,
    Rejected,
    ServiceContext,
    SnapshotFormat,
    Source,
    Starts,
    Stateful,
    Stops,
)
from tickpipe.state import Snapshot, SnapshotStore
from tickpipe.telemetry import metrics
from tickpipe.telemetry.tracing import inject, start_process_span, start_send_span
from tickpipe.topics import DLQ

log = logging.getLogger(__name__)

EVENT_TYPE = "event-type"
SCHEMA_VERSION = "schema-version"
# ts_init (ns) of the trade at ingest that this record descends from: end-to-end latency.
ORIGIN_TS = "tickpipe-origin-ts"
_FORWARDED = ("traceparent", "tracestate", ORIGIN_TS)
# A forwarded header longer than this is not passed on (traceparent is 55 bytes, tracestate
# at most 512): outputs and dead letters must never grow past the broker's record limit.
_FORWARDED_MAX = 1024
# An origin time is decimal digits of a non-negative nanosecond time (up to 19 of them).
_ORIGIN_DIGITS = 19
# Dead letters logged per (source, reason): the first few, then one in this many.
_LOG_FIRST, _LOG_EVERY = 10, 1000


def _origin_ok(value: bytes) -> bool:
    """Whether an origin-time header can be read (and so passed on)."""
    return value.isdigit() and len(value) <= _ORIGIN_DIGITS


def forwarded_headers(record: Record) -> Headers:
    """Trace context and origin time passed on unchanged (when no spans are recorded); a
    header too long to pass on, or an origin time that is not a number, is left behind."""
    return tuple(
        (k, v)
        for k, v in record.headers
        if k in _FORWARDED and len(v) <= _FORWARDED_MAX and (k != ORIGIN_TS or _origin_ok(v))
    )


def encode_emit(emit: Emit, headers: Headers) -> OutRecord:
    event = emit.event
    key = emit.record_key()
    return OutRecord(
        topic=emit.topic,
        key=None if key is None else key.encode(),
        value=encode(event),
        headers=(
            *headers,
            (EVENT_TYPE, event.event_type.encode()),
            (SCHEMA_VERSION, str(event.schema_version).encode()),
        ),
    )


def dispatch(handler: Handler, event: Event, topic: str, now_ns: int) -> Sequence[Emit] | Exception:
    """One event through a handler: its emits, or the exception that dead-letters it.
    Every engine (the runner, the bars backtest) hands events to handlers through here."""
    try:
        return handler.handle(event, topic, now_ns)
    except Exception as exc:
        return exc


def failure(exc: Exception) -> tuple[str, str]:
    """The dead letter's reason and detail for a handler's exception."""
    if isinstance(exc, Rejected):
        return exc.reason, exc.detail
    return "handler_error", f"{type(exc).__name__}: {exc}"


class _Labels:
    """Caches labelled metric children: `.labels()` per record is measurable overhead."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._cache: dict[tuple[str, str], Any] = {}

    def get(self, metric: Any, topic: str) -> Any:
        key = (metric._name, topic)
        child = self._cache.get(key)
        if child is None:
            child = metric.labels(self.service, topic)
            self._cache[key] = child
        return child


class StreamRunner:
    def __init__(
        self,
        *,
        service: str,
        group: str,
        handler: Handler,
        link: Link,
        clock: Clock,
        ids: EventIds,
        tracer: Tracer,
        batch_size: int = 500,
        snapshots: SnapshotStore | None = None,
        snapshot_format: SnapshotFormat | None = None,
        snapshot_interval_s: float = 1.0,
        linger_s: float = 0.0,
        broadcast: Reader | None = None,
    ) -> None:
        self.service = service
        self._broadcast = broadcast
        self._linger_s = linger_s
        self._batch_handler = handler if isinstance(handler, BatchHandler) else None
        self._stateful = handler if isinstance(handler, Stateful) else None
        self._snapshots = snapshots if self._stateful is not None else None
        self._snapshot_interval = snapshot_interval_s
        self._last_snapshot = time.monotonic()
        self._format = snapshot_format or SnapshotFormat()
        self._committed: Offsets = {}
        self._group = group
        self._handler = handler
        self._link = link
        self._clock = clock
        self._ids = ids
        self._tracer = tracer
        self._batch_size = batch_size
        self._labels = _Labels(service)
        self._batch_seconds = metrics.BATCH_SECONDS.labels(service)
        # Without an exporter, spans would be thrown away: skip them, forward the context.
        self._tracing = not isinstance(tracer, NoOpTracer)
        self._replayed = metrics.REPLAYED.labels(service)
        self._bad_seen: dict[tuple[str, str], int] = {}
        self._last_lag = 0.0
        self._paced = handler if isinstance(handler, Paced) else None
        # Paused partitions, each with the (topic, key) streams it was paused for.
        self._paused: dict[tuple[str, int], set[tuple[str, bytes]]] = {}
        self._paused_gauge = metrics.PAUSED_PARTITIONS.labels(service)
        # Per-record observations, recorded once per batch and topic (`_flush_timings`):
        # a histogram observation per record was a measurable share of the hot path.
        self._handler_times: dict[str, list[float]] = {}
        self._origin_ages: dict[str, list[float]] = {}
        # Keyed state follows its partitions (`KeyedState`): the keys seen or restored per
        # partition number, snapshotted per partition.
        keyed = handler if isinstance(handler, KeyedState) else None
        self._keyed = keyed if self._snapshots is not None else None
        self._task_keys: dict[int, set[str]] = {}
        link.on_partitions(self._on_assigned, self._on_revoked)
        self._restore()

    def _restore(self) -> None:
        if self._snapshots is None or self._stateful is None or self._keyed is not None:
            return  # keyed state is restored partition by partition, as assigned
        snapshot = self._snapshots.load()
        if snapshot is None:
            return
        state = self._format.upgrade(self.service, snapshot.version, snapshot.state)
        self._stateful.restore(state)
        self._committed = dict(snapshot.offsets)
        self._link.resume_from(snapshot.offsets)
        log.info("state restored", extra={"partitions": len(snapshot.offsets)})

    def _after_commit(self, committed: Offsets | None) -> None:
        if committed is None or self._snapshots is None or self._stateful is None:
            return
        self._committed.update(committed)
        if time.monotonic() - self._last_snapshot >= self._snapshot_interval:
            if self._keyed is not None:
                for partition, keys in self._task_keys.items():
                    self._save_partition(self._keyed, self._snapshots, partition, keys)
            else:
                state = self._stateful.snapshot()
                self._snapshots.save(Snapshot(dict(self._committed), state, self._format.version))
            self._last_snapshot = time.monotonic()

    # -- partitions coming and going --------------------------------------------------------

    def _on_assigned(self, partitions: Sequence[tuple[str, int]]) -> None:
        """A keyed handler takes over each new partition's state from its snapshot, and the
        link starts those partitions where that snapshot was taken."""
        if self._keyed is None or self._snapshots is None:
            return
        assigned = set(partitions)
        for partition in sorted({p for _, p in partitions} - self._task_keys.keys()):
            keys = self._task_keys[partition] = set()
            snapshot = self._snapshots.part(partition).load()
            if snapshot is None:
                continue
            state = self._format.upgrade(self.service, snapshot.version, snapshot.state)
            keys.update(self._keyed.restore_keys(state))
            offsets = {tp: o for tp, o in snapshot.offsets.items() if tp in assigned}
            self._committed.update(offsets)
            self._link.resume_from(offsets)
            log.info("state restored", extra={"partition": partition, "keys": len(keys)})

    def _on_revoked(self, partitions: Sequence[tuple[str, int]], committed: Offsets) -> None:
        """A keyed handler saves and forgets the state of partitions taken away; every
        runner forgets their offsets."""
        self._committed.update(committed)
        if self._keyed is not None and self._snapshots is not None:
            for partition in sorted({p for _, p in partitions} & self._task_keys.keys()):
                keys = self._task_keys.pop(partition)
                self._save_partition(self._keyed, self._snapshots, partition, keys)
                self._keyed.drop_keys(keys)
        for tp in partitions:
            self._committed.pop(tp, None)

    def _save_partition(
        self, keyed: KeyedState, store: SnapshotStore, partition: int, keys: set[str]
    ) -> None:
        offsets = {tp: o for tp, o in self._committed.items() if tp[1] == partition}
        if not offsets:
            return  # nothing consumed from it yet: nothing to resume from
        state = keyed.snapshot_keys(keys)
        store.part(partition).save(Snapshot(offsets, state, self._format.version))

    def start(self, ctx: ServiceContext) -> int:
        """The handler's start-up work (`on_start`), before the first record: what it returns
        is published (and committed) on its own. Returns the records published."""
        if not isinstance(self._handler, Starts):
            return 0
        emits = self._handler.on_start(ctx)
        outputs = [encode_emit(e, ()) for e in emits]
        if outputs:
            self._after_commit(self._link.complete(outputs))
            self._count(metrics.MESSAGES_OUT, (o.topic for o in outputs))
        return len(outputs)

    def ready(self) -> bool:
        return self._link.ready()

    def report_lag(self, every_s: float = 5.0) -> None:
        """Refresh the consumer-lag gauge, at most every `every_s` seconds."""
        now = time.monotonic()
        if now - self._last_lag < every_s:
            return
        lag = self._link.lag()
        if lag:  # nothing yet (no assignment, no position): ask again at the next step
            self._last_lag = now
        for topic, n in lag.items():
            self._labels.get(metrics.CONSUMER_LAG, topic).set(n)

    def step(self, timeout_s: float) -> int:
        """Consume one batch, process it, publish and commit. Returns records consumed."""
        records = self._poll(timeout_s)
        if not records:
            if self._paused:
                self._resume(list(self._paused))  # nothing else to read: let them run
            self._after_commit(self._link.complete(()))
            return 0
        started = time.perf_counter()
        if self._batch_handler is not None:
            per_record = self._process_batch(self._batch_handler, records)
        else:
            per_record = [self._process(r) for r in records]
        outputs: list[OutRecord] = []
        for record, out in zip(records, per_record, strict=True):
            if record.replay:
                self._replayed.inc()  # published before the restart: state only
            else:
                outputs.extend(out)
        self._after_commit(self._link.complete(outputs))
        self._count(metrics.MESSAGES_IN, (r.topic for r in records))
        self._count(metrics.MESSAGES_OUT, (o.topic for o in outputs))
        self._flush_timings()
        if self._paced is not None:
            self._pace(self._paced, records)
        self._batch_seconds.observe(time.perf_counter() - started)
        return len(records)

    def _poll(self, timeout_s: float) -> list[Record]:
        """The group's records, after any broadcast ones (read by every replica, outside the
        group: their offsets are not the link's to commit)."""
        if self._broadcast is None:
            return self._link.poll(self._batch_size, timeout_s, self._linger_s)
        first = self._broadcast.poll(self._batch_size, 0.0)
        rest = self._link.poll(self._batch_size, 0.0 if first else timeout_s, self._linger_s)
        return first + rest if first else rest

    def _pace(self, handler: Paced, records: list[Record]) -> None:
        """Pause the partitions of the streams the handler says run ahead; resume those it
        no longer names."""
        ahead = handler.running_ahead()
        if not ahead and not self._paused:
            return  # the common case
        wanted = {(topic, key.encode()) for topic, key in ahead}
        done = []
        for tp, streams in self._paused.items():
            streams.intersection_update(wanted)
            if not streams:
                done.append(tp)
        self._resume(done)
        waiting = wanted.difference(*self._paused.values())
        if not waiting:
            return
        # A stream starts running ahead in the batch that pushed it over: its record is here.
        pause: dict[tuple[str, int], set[tuple[str, bytes]]] = {}
        for r in records:
            stream = (r.topic, r.key or b"")
            if stream in waiting:
                pause.setdefault((r.topic, r.partition), set()).add(stream)
        if not pause:
            return
        self._link.pause(list(pause))
        for tp, streams in pause.items():
            self._paused.setdefault(tp, set()).update(streams)
            self._labels.get(metrics.FLOW_PAUSES, tp[0]).inc()
        self._paused_gauge.set(len(self._paused))
        log.debug("paused partitions running ahead", extra={"partitions": sorted(pause)})

    def _resume(self, partitions: list[tuple[str, int]]) -> None:
        if not partitions:
            return
        self._link.resume(partitions)
        for tp in partitions:
            del self._paused[tp]
        self._paused_gauge.set(len(self._paused))
        log.debug("resumed partitions", extra={"partitions": sorted(partitions)})

    def _flush_timings(self) -> None:
        for metric, pending in (
            (metrics.HANDLER_SECONDS, self._handler_times),
            (metrics.END_TO_END_SECONDS, self._origin_ages),
        ):
            for topic, values in pending.items():
                if values:
                    self._labels.get(metric, topic).observe_many(values)
                    values.clear()

    def _timing(self, pending: dict[str, list[float]], topic: str) -> list[float]:
        values = pending.get(topic)
        if values is None:
            values = pending[topic] = []
        return values

    def _count(self, counter: Any, topics: Iterable[str]) -> None:
        counts: dict[str, int] = {}
        for topic in topics:
            counts[topic] = counts.get(topic, 0) + 1
        for topic, n in counts.items():
            self._labels.get(counter, topic).inc(n)

    def _process(self, record: Record) -> list[OutRecord]:
        if not self._tracing:
            return self._handle(record, INVALID_SPAN)
        span = start_process_span(self._tracer, record, self._group)
        with trace.use_span(span, end_on_exit=True):
            return self._handle(record, span)

    def _handle(self, record: Record, span: Span) -> list[OutRecord]:
        event = self._decode(record, span)
        if isinstance(event, OutRecord):
            return [event]
        if self._keyed is not None:
            self._track(record, event)
        now = self._clock.now_ns()
        self._observe_origin(record, now)
        started = time.perf_counter()
        outcome = dispatch(self._handler, event, record.topic, now)
        self._timing(self._handler_times, record.topic).append(time.perf_counter() - started)
        if isinstance(outcome, Exception):
            return [self._failed(record, span, event, outcome)]
        return self._encode(record, span, event, outcome)

    def _process_batch(self, handler: BatchHandler, records: list[Record]) -> list[list[OutRecord]]:
        """One handler call for the whole batch (e.g. one model run), results per record."""
        spans = [
            start_process_span(self._tracer, r, self._group) if self._tracing else INVALID_SPAN
            for r in records
        ]
        results: list[list[OutRecord]] = [[] for _ in records]
        items: list[tuple[Event, str]] = []
        index: list[int] = []
        for i, record in enumerate(records):
            event = self._decode(record, spans[i])
            if isinstance(event, OutRecord):
                results[i] = [event]
            else:
                if self._keyed is not None:
                    self._track(record, event)
                items.append((event, record.topic))
                index.append(i)
        now = self._clock.now_ns()
        for i in index:
            self._observe_origin(records[i], now)
        started = time.perf_counter()
        try:
            handled: Sequence[Sequence[Emit] | Exception] = handler.handle_batch(items, now)
        except Exception:
            # Isolate the culprit: one record at a time, so only it is dead-lettered.
            handled = [dispatch(self._handler, e, topic, now) for e, topic in items]
        elapsed = (time.perf_counter() - started) / max(1, len(items))
        for (event, _), i, outcome in zip(items, index, handled, strict=True):
            record, span = records[i], spans[i]
            self._timing(self._handler_times, record.topic).append(elapsed)
            if isinstance(outcome, Exception):
                results[i] = [self._failed(record, span, event, outcome)]
            else:
                results[i] = self._encode(record, span, event, outcome)
        for span in spans:
            span.end()
        return results

    def _track(self, record: Record, event: Event) -> None:
        """Which partition's state the event's key belongs to (keyed state)."""
        key = event.key if isinstance(event, Instrument) else None
        if key is not None:
            keys = self._task_keys.get(record.partition)
            if keys is None:
                keys = self._task_keys[record.partition] = set()
            keys.add(key)

    def _decode(self, record: Record, span: Span) -> Event | OutRecord:
        """The record's event, or its dead letter: decoding takes any bytes."""
        try:
            return decode_record(record.value, record.header(EVENT_TYPE), record.topic)
        except DecodeError as exc:
            return self._dead_letter(record, exc.reason, exc.detail, span)

    def _observe_origin(self, record: Record, now: int) -> None:
        origin = record.header(ORIGIN_TS)
        if origin is None:
            return
        if _origin_ok(origin):
            self._timing(self._origin_ages, record.topic).append(max(0, now - int(origin)) / 1e9)
        else:
            self._bad_header(record, ORIGIN_TS, origin)

    def _bad_header(self, record: Record, name: str, value: bytes) -> None:
        """A header that cannot be read is ignored (and not forwarded); the record is fine."""
        metrics.child(metrics.BAD_HEADERS, self.service, record.topic, name).inc()
        if n := self._log_due(record.topic, f"header {name}"):
            log.warning(
                "bad header ignored",
                extra={
                    "header": name,
                    "value": repr(value[:64]),
                    "source": record.topic,
                    "offset": record.offset,
                    "count": n,
                },
            )

    def _log_due(self, source: str, what: str) -> int:
        """How many of this kind of bad input `source` has had, when that is one to log (the
        first few, then one in `_LOG_EVERY`), else 0: a flood of bad input is counted in full
        by the metrics and does not flood the log."""
        n = self._bad_seen[(source, what)] = self._bad_seen.get((source, what), 0) + 1
        return n if n <= _LOG_FIRST or n % _LOG_EVERY == 0 else 0

    def _failed(self, record: Record, span: Span, event: Event, exc: Exception) -> OutRecord:
        if not isinstance(exc, Rejected):
            log.error("handler failed", exc_info=exc, extra={"event_id": event.event_id})
            metrics.ERRORS.labels(self.service, "handler").inc()
        reason, detail = failure(exc)
        return self._dead_letter(record, reason, detail, span, event)

    def _encode(
        self, record: Record, span: Span, event: Event, emits: Sequence[Emit]
    ) -> list[OutRecord]:
        if not emits:
            return []
        if self._tracing:
            headers = inject(trace.set_span_in_context(span))
            origin = record.header(ORIGIN_TS)
            if origin is not None and _origin_ok(origin):
                headers = (*headers, (ORIGIN_TS, origin))
        else:
            headers = forwarded_headers(record)
        try:
            return [encode_emit(e, headers) for e in emits]
        except Exception as exc:  # an output that cannot be encoded: the input's dead letter
            return [self._failed(record, span, event, exc)]

    def _dead_letter(
        self,
        record: Record,
        reason: str,
        detail: str,
        span: Span,
        event: Event | None = None,
    ) -> OutRecord:
        span.set_status(StatusCode.ERROR, reason)
        # A replayed record's dead letter was published before the restart (step drops its
        # outputs): counted then, not again.
        if not record.replay:
            metrics.child(metrics.DEAD_LETTERS, self.service, record.topic, reason).inc()
            if n := self._log_due(record.topic, reason):
                log.warning(
                    "dead letter",
                    extra={
                        "reason": reason,
                        "detail": detail[:500],
                        "source": record.topic,
                        "offset": record.offset,
                        "count": n,
                    },
                )
        letter = DeadLetter.of(
            event_id=self._ids.new(),
            ts_ns=self._clock.now_ns(),
            causation_id=None if event is None else event.event_id,
            service=self.service,
            source=record.topic,
            reason=reason,
            detail=detail,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
        )
        if self._tracing:
            headers = inject(trace.set_span_in_context(span))
        else:
            headers = forwarded_headers(record)
        return encode_emit(Emit(DLQ, letter, key=record.topic), headers)

    def close(self) -> None:
        try:
            if isinstance(self._handler, Stops):
                self._handler.on_stop()
        finally:
            if self._broadcast is not None:
                self._broadcast.close()
            self._link.close()


class SourceRunner:
    """Publishes a source's events; each market-data record starts a trace (PRODUCER span)."""

    def __init__(
        self,
        *,
        service: str,
        source: Source,
        producer: Producer,
        tracer: Tracer,
        flush_every: int = 1000,
    ) -> None:
        self.service = service
        self._source = source
        self._producer = producer
        self._tracer = tracer
        self._flush_every = flush_every
        self._labels = _Labels(service)
        self._tracing = not isinstance(tracer, NoOpTracer)
        self.published = 0

    def publish(self, emits: Iterable[Emit], stop: threading.Event | None = None) -> int:
        n = 0
        for emit in emits:
            origin = (ORIGIN_TS, str(emit.event.ts_init).encode())
            if self._tracing:
                span = start_send_span(self._tracer, emit.topic, emit.record_key())
                headers: Headers = (*inject(trace.set_span_in_context(span)), origin)
                self._producer.send(encode_emit(emit, headers))
                span.end()
            else:
                self._producer.send(encode_emit(emit, (origin,)))
            self._labels.get(metrics.MESSAGES_OUT, emit.topic).inc()
            n += 1
            if n % self._flush_every == 0:
                self._producer.flush()
            if stop is not None and stop.is_set():
                break
        self.published += n
        return n

    def run(self, stop: threading.Event | None = None) -> int:
        """Publish until the source ends or `stop` is set (checked between records)."""
        n = self.publish(self._source, stop)
        self._producer.flush()
        return n
