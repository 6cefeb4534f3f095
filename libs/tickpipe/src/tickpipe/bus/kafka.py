"""Kafka bus over confluent-kafka (librdkafka).

Producers are idempotent (`acks=all`) with the murmur2 partitioner, so keys land on the same
partitions as with the Java client. Links consume in batches and commit only after their
outputs are acknowledged; transactional links (risk, execution) commit outputs and input
offsets in one Kafka transaction per consumed batch that has outputs.

A batch without outputs (most quotes, most trades) needs no round trip: its offsets ride
with the next commit, or are committed after `commit_interval_s`. Redelivery after a crash
then repeats only records that changed in-memory state, which a restart rebuilds anyway.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka import (
    Producer as _RdProducer,
)

from tickpipe.bus.base import Assigned, BusError, Offsets, OutRecord, Record, Revoked
from tickpipe.topics import TopicNames

log = logging.getLogger(__name__)

PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 1,
    "partitioner": "murmur2_random",
    # Measured on loopback: lz4 took the median hop from ~2 ms to ~5 ms (the broker
    # decompresses batches to validate them). Small JSON records gain little from it.
    "compression.type": "none",
    "socket.nagle.disable": True,
}

CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "isolation.level": "read_committed",
    # Latency: the broker answers a fetch within 10 ms even when little data is waiting,
    # and the client re-fetches quickly instead of backing off.
    "fetch.wait.max.ms": 10,
    "fetch.queue.backoff.ms": 10,
    "socket.nagle.disable": True,
    "session.timeout.ms": 10_000,
    "heartbeat.interval.ms": 1_000,
    # Partition n of every input goes to the same member (the topics are co-partitioned by
    # instrument): keyed state per partition number (tickpipe.service.KeyedState) and the
    # arrival buffer need an instrument's trades and quotes in one place.
    "partition.assignment.strategy": "range",
}


# Readers join no group and commit nothing; like the links, they see committed records only.
READER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "isolation.level": "read_committed",
    # A start offset deleted by retention before the first fetch surfaces as an error
    # instead of a silent jump to the end.
    "auto.offset.reset": "error",
    # End-of-partition events tell `at_end` where the committed history ends.
    "enable.partition.eof": True,
    "fetch.wait.max.ms": 50,
    "socket.nagle.disable": True,
}
OFFSET_END = -1  # librdkafka's logical offset: the end of the partition


@dataclass(frozen=True)
class KafkaTimeouts:
    """How long a blocking Kafka call may wait in all. Every wait is sliced (`SLICE_S`) and
    ends early, with a BusError, once the service's stop event is set: SIGTERM ends a
    service promptly whatever the broker is doing."""

    delivery_s: float = 60.0  # a produced record's acknowledgement (message.timeout.ms)
    transaction_s: float = 60.0  # committing a transaction (transaction.timeout.ms)
    init_s: float = 120.0  # init_transactions: fencing a previous instance


SLICE_S = 1.0


class _Health:
    """Whether librdkafka last said it can reach any broker (its `error_cb`)."""

    def __init__(self) -> None:
        self.brokers_down = False
        self._last_probe = 0.0

    def reachable(self, list_topics: Callable[..., object]) -> bool:
        """librdkafka says when every broker is down, not when one is back: while down, a
        metadata request (at most once a second) finds out, records or not."""
        if self.brokers_down and time.monotonic() - self._last_probe >= SLICE_S:
            self._last_probe = time.monotonic()
            try:
                list_topics(timeout=0.5)
                self.reached()
            except KafkaException:
                pass  # still away
        return not self.brokers_down

    def on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            if not self.brokers_down:
                log.warning("no broker reachable", extra={"error": str(err)})
            self.brokers_down = True
        elif err.code() not in (KafkaError._TRANSPORT, KafkaError._RESOLVE):
            log.warning("kafka client error", extra={"error": str(err)})

    def reached(self) -> None:
        if self.brokers_down:
            log.info("broker reachable again")
        self.brokers_down = False


class _Watchdog:
    """Exits the process when a librdkafka call blocks far past its timeout.

    librdkafka 2.x can ignore the timeout of a transactional call when the broker goes away
    mid-transaction (send_offsets_to_transaction never returns, confluentinc/librdkafka#5456):
    the service would stop trading silently, deaf even to SIGTERM (the Python handler cannot
    run while the main thread is inside librdkafka). Crash-only instead: nothing of the open
    transaction was committed, and the restart's init_transactions fences and aborts it.
    """

    GRACE_S = 10.0

    def __init__(self, client_id: str) -> None:
        self._client_id = client_id
        self._since: float | None = None
        self._what = ""
        self._limit = 0.0
        self._thread: threading.Thread | None = None

    @contextmanager
    def blocking(self, what: str, total_s: float) -> Iterator[None]:
        self._what, self._limit = what, total_s + self.GRACE_S
        self._since = time.monotonic()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="kafka-watchdog", daemon=True)
            self._thread.start()
        try:
            yield
        finally:
            self._since = None

    def stuck(self) -> bool:
        since = self._since
        return since is not None and time.monotonic() - since > SLICE_S + 1.0

    def _run(self) -> None:
        while True:
            time.sleep(1.0)
            since = self._since
            if since is not None and time.monotonic() - since > self._limit:
                log.critical(
                    "a Kafka call did not return: exiting to restart",
                    extra={"call": self._what, "client_id": self._client_id},
                )
                logging.shutdown()
                os._exit(1)


def _on_commit(err: KafkaError | None, partitions: list[TopicPartition]) -> None:
    """The outcome of an asynchronous offset commit (served by the consumer's poll)."""
    if err is not None and err.code() != KafkaError._NO_OFFSET:
        log.warning("offset commit failed: those records come again", extra={"error": str(err)})


def _stopped(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set()


class _KafkaProducer:
    def __init__(
        self,
        conf: dict[str, Any],
        names: TopicNames,
        stop: threading.Event | None = None,
        timeouts: KafkaTimeouts | None = None,
        health: _Health | None = None,
    ) -> None:
        self._names = names
        self._errors: list[str] = []
        self._stop = stop
        self._timeouts = timeouts or KafkaTimeouts()
        self._health = health or _Health()
        conf = {
            "message.timeout.ms": int(self._timeouts.delivery_s * 1000),
            "error_cb": self._health.on_error,
            **conf,
        }
        self._rd = _RdProducer(conf)

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err}")

    def send(self, record: OutRecord) -> None:
        topic = self._names.physical(record.topic)
        while True:
            try:
                self._rd.produce(
                    topic,
                    value=record.value,
                    key=record.key,
                    headers=list(record.headers),
                    on_delivery=self._on_delivery,
                )
                return
            except BufferError:
                # Local queue full: serve delivery reports to make room, then retry.
                if _stopped(self._stop):
                    raise BusError("stopped while the producer queue was full") from None
                self._rd.poll(0.05)

    def poll(self) -> None:
        self._rd.poll(0)

    def ready(self) -> bool:
        return self._health.reachable(self._rd.list_topics)

    def flush(self, timeout_s: float | None = None) -> None:
        """Waits for every record's acknowledgement (librdkafka retries while the broker is
        away), at most `timeout_s` (default: the delivery timeout) and never past stop."""
        deadline = time.monotonic() + (
            self._timeouts.delivery_s if timeout_s is None else timeout_s
        )
        remaining = self._rd.flush(0)
        while remaining:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BusError(f"{remaining} records not acknowledged in time")
            if _stopped(self._stop):
                raise BusError(f"stopped with {remaining} records not acknowledged")
            remaining = self._rd.flush(min(SLICE_S, left))
        if self._errors:
            errors, self._errors = self._errors, []
            raise BusError("delivery failed: " + "; ".join(errors[:5]))

    @property
    def raw(self) -> _RdProducer:
        return self._rd

    def close(self) -> None:
        # Delivers what is queued if it can within a few seconds; unacknowledged records
        # were never committed against, so they are produced again after a restart.
        self._rd.flush(0 if _stopped(self._stop) else 5)


class KafkaLink:
    def __init__(
        self,
        *,
        bootstrap: str,
        names: TopicNames,
        group: str,
        topics: Sequence[str],
        client_id: str,
        transactional_id: str | None,
        overrides: dict[str, Any] | None = None,
        commit_interval_s: float = 0.1,
        stop: threading.Event | None = None,
        timeouts: KafkaTimeouts | None = None,
        client_config: dict[str, Any] | None = None,
    ) -> None:
        self._names = names
        self._stop = stop
        self._timeouts = timeouts or KafkaTimeouts()
        self._health = _Health()
        self._watch = _Watchdog(client_id)
        # Offsets may be committed only for records whose batch completed: a batch polled
        # and not completed (or a failed completion) leaves its offsets uncommitted.
        self._in_batch = False
        self._failed = False
        self._assigned = False
        self._commit_interval = commit_interval_s
        self._last_commit = time.monotonic()
        # Transport security and extra keys (tickpipe.bus.security) for both clients.
        common = {"bootstrap.servers": bootstrap, **(client_config or {}), "client.id": client_id}
        consumer_conf = {
            **CONSUMER_DEFAULTS,
            **common,
            "group.id": group,
            "error_cb": self._health.on_error,
            "on_commit": _on_commit,
            **(overrides or {}),
        }
        producer_conf = {**PRODUCER_DEFAULTS, **common}
        if transactional_id is not None:
            producer_conf["transactional.id"] = transactional_id
            producer_conf["transaction.timeout.ms"] = int(self._timeouts.transaction_s * 1000)
        self._producer = _KafkaProducer(producer_conf, names, stop, self._timeouts, self._health)
        self._transactional = transactional_id is not None
        self._in_transaction = False
        if self._transactional:
            # Fences any zombie instance with the same id and aborts its open transaction.
            self._retry(
                "init_transactions", self._producer.raw.init_transactions, self._timeouts.init_s
            )
        self._consumer = Consumer(consumer_conf)
        self._consumer.subscribe(
            [names.physical(t) for t in topics],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._next: dict[tuple[str, int], int] = {}
        self._paused: set[tuple[str, int]] = set()  # physical: asked paused (flow control)
        self._lost = False
        self._assigned_cb: Assigned | None = None
        self._revoked_cb: Revoked | None = None
        self._reassigned = False
        self._resume: dict[tuple[str, int], int] = {}
        self._replay_until: dict[tuple[str, int], int] = {}

    def _retry(self, what: str, call: Any, total_s: float) -> None:
        """`call(timeout)` in slices while librdkafka says a retry may succeed (a broker
        away): until it succeeds, `total_s` runs out, or the service is stopped (one slice
        is always tried, so a stopping service still makes its last commit if it can)."""
        deadline = time.monotonic() + total_s
        while True:
            try:
                with self._watch.blocking(what, total_s):
                    call(max(0.1, min(SLICE_S, deadline - time.monotonic())))
                return
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                retriable = isinstance(err, KafkaError) and err.retriable()
                if _stopped(self._stop):
                    raise BusError(f"stopped during {what}: {exc}") from exc
                if not retriable or time.monotonic() >= deadline:
                    raise BusError(f"{what} failed: {exc}") from exc

    def resume_from(self, offsets: Offsets) -> None:
        self._resume.update({(self._names.physical(t), p): o for (t, p), o in offsets.items()})

    def on_partitions(self, assigned: Assigned, revoked: Revoked) -> None:
        self._assigned_cb, self._revoked_cb = assigned, revoked

    def _logical(self, partitions: list[TopicPartition]) -> list[tuple[str, int]]:
        return [(self._names.logical(str(tp.topic)), int(tp.partition)) for tp in partitions]

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._assigned_cb is not None:
            self._assigned_cb(self._logical(partitions))  # may call resume_from for them
        resumed = [tp for tp in partitions if (tp.topic, tp.partition) in self._resume]
        if resumed:
            committed = {
                (tp.topic, tp.partition): tp.offset for tp in consumer.committed(resumed, 30)
            }
            for tp in resumed:
                key = (tp.topic, tp.partition)
                tp.offset = self._resume.pop(key)
                if committed.get(key, -1) > tp.offset:
                    self._replay_until[key] = committed[key]
            # Setting offsets in on_assign takes effect through assign().
            consumer.assign(partitions)
        self._assigned = True
        self._reassigned = True  # pauses are applied at the next poll, once assigned
        log.info(
            "partitions assigned", extra={"partitions": len(partitions), "resumed": len(resumed)}
        )

    def pause(self, partitions: Sequence[tuple[str, int]]) -> None:
        tps = {(self._names.physical(t), p) for t, p in partitions}
        self._paused |= tps
        self._set_paused(self._consumer.pause, tps & self._assignment())

    def resume(self, partitions: Sequence[tuple[str, int]]) -> None:
        # Resumed whether assigned now or not: a partition must never stay paused unseen.
        tps = {(self._names.physical(t), p) for t, p in partitions}
        self._paused -= tps
        self._set_paused(self._consumer.resume, tps)

    def _assignment(self) -> set[tuple[str, int]]:
        return {(str(tp.topic), int(tp.partition)) for tp in self._consumer.assignment()}

    def _set_paused(self, call: Any, tps: set[tuple[str, int]]) -> None:
        if not tps:
            return
        try:
            call([TopicPartition(t, p) for t, p in sorted(tps)])
        except KafkaException as exc:  # a partition revoked meanwhile: not ours to pause
            log.debug("pause/resume not applied", extra={"error": str(exc)})

    def _apply_pauses(self) -> None:
        """After an assignment, the pause state of every assigned partition is what was
        asked: librdkafka's own across a rebalance is not relied on either way."""
        assigned = self._assignment()
        self._set_paused(self._consumer.pause, assigned & self._paused)
        self._set_paused(self._consumer.resume, assigned - self._paused)
        self._reassigned = False

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """The group dropped this member (its session timed out: the broker was away):
        crash-only. A member that rejoined after a broker restart was seen to fetch nothing
        from some of its partitions again (transactional services, librdkafka 2.x); a
        restart resumes from the committed offsets, and nothing uncommitted was lost. Not
        reported as revoked: nothing can be committed for them now."""
        for tp in partitions:
            self._next.pop((tp.topic, tp.partition), None)
        self._lost = True

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Completed batches not yet committed (deferred: no outputs) are committed before
        the partitions go (plain links), so the next owner starts where this one stopped
        and a snapshot taken now agrees with the offsets. A transactional link commits
        nothing here: those records are redelivered (and their outputs, if any, were
        committed with them or aborted)."""
        keys = [(str(tp.topic), int(tp.partition)) for tp in partitions]
        done = {k: self._next[k] for k in keys if k in self._next}
        committed: Offsets = {}
        if done and not self._transactional and not self._failed:
            try:
                self._consumer.commit(
                    offsets=[TopicPartition(t, p, o) for (t, p), o in done.items()],
                    asynchronous=True,
                )
                committed = {(self._names.logical(t), p): o for (t, p), o in done.items()}
            except KafkaException as exc:
                log.warning("commit at revocation failed", extra={"error": str(exc)})
        for k in keys:
            self._next.pop(k, None)
        if self._revoked_cb is not None:
            self._revoked_cb(self._logical(partitions), committed)

    def poll(self, max_records: int, timeout_s: float, linger_s: float = 0.0) -> list[Record]:
        # consume(n, t) waits all of t unless n arrive: block on the first record only,
        # then take whatever else is already fetched.
        if self._reassigned:
            self._apply_pauses()
        first = self._consumer.poll(timeout_s)
        if self._lost:
            self._failed = True  # the batch in flight, if any, is not this member's now
            raise BusError("the consumer group dropped this member: restart to rejoin")
        if first is None:
            return []
        self._in_batch = True  # polled again before completing: the batch grows
        messages = (
            [first, *self._consumer.consume(max_records - 1, linger_s)]
            if max_records > 1
            else [first]
        )
        out: list[Record] = []
        for m in messages:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                if err.fatal():
                    raise BusError(f"fatal consumer error: {err}")
                log.warning("consumer error", extra={"error": str(err)})
                continue
            out.append(self._record(m))
        if out:
            self._health.reached()
        return out

    def _record(self, m: Message) -> Record:
        # A message without error always has topic, partition and offset.
        topic, partition, offset = str(m.topic()), int(m.partition() or 0), int(m.offset() or 0)
        self._next[(topic, partition)] = offset + 1
        replay = offset < self._replay_until.get((topic, partition), -1)
        return _to_record(m, self._names, replay)

    def _offsets(self) -> list[TopicPartition]:
        return [TopicPartition(t, p, o) for (t, p), o in self._next.items()]

    def complete(self, outputs: Sequence[OutRecord]) -> Offsets | None:
        if self._failed:
            raise BusError("complete after a failed batch: restart to resume")
        if outputs or (
            self._next and time.monotonic() - self._last_commit >= self._commit_interval
        ):
            result: Offsets | None = self._commit(outputs)
        else:
            result = None  # deferred: nothing to publish, offsets ride with the next commit
        self._in_batch = False
        return result

    def _commit(self, outputs: Sequence[OutRecord]) -> Offsets:
        try:
            if self._transactional:
                self._complete_transaction(outputs)
            else:
                for rec in outputs:
                    self._producer.send(rec)
                if outputs:
                    self._producer.flush()
                if self._next:
                    # Asynchronous: a synchronous commit blocks, deaf to the stop event and
                    # serving no callbacks (so not seeing the broker gone), for as long as
                    # the broker is away. The outputs are acknowledged already; a commit
                    # that fails only means those records come again (at least once).
                    self._consumer.commit(offsets=self._offsets(), asynchronous=True)
        except (KafkaException, BusError) as exc:
            # Crash-only: nothing of this batch is committed (a transaction is aborted); the
            # process restarts and resumes from the last committed offsets.
            self._failed = True
            raise BusError(f"could not complete batch: {exc}") from exc
        self._health.reached()
        committed = {(self._names.logical(t), p): o for (t, p), o in self._next.items()}
        self._next.clear()
        self._last_commit = time.monotonic()
        return committed

    def _complete_transaction(self, outputs: Sequence[OutRecord]) -> None:
        rd = self._producer.raw
        rd.begin_transaction()
        self._in_transaction = True
        for rec in outputs:
            self._producer.send(rec)
        if self._next:
            offsets, group = self._offsets(), self._consumer.consumer_group_metadata()
            self._retry(
                "send_offsets_to_transaction",
                lambda t: rd.send_offsets_to_transaction(offsets, group, t),
                self._timeouts.transaction_s,
            )
        self._retry("commit_transaction", rd.commit_transaction, self._timeouts.transaction_s)
        self._in_transaction = False

    def ready(self) -> bool:
        """Assigned partitions and a broker in reach (what `/readyz` reports)."""
        if self._watch.stuck():
            return False  # inside a Kafka call past its slice: the broker is not answering
        reachable = self._health.reachable(self._consumer.list_topics)
        return self._assigned and reachable and not self._failed

    def lag(self) -> dict[str, int]:
        # Cached high watermarks come with every fetch response: no broker round trip.
        lag: dict[str, int] = {}
        for tp in self._consumer.position(self._consumer.assignment()):
            _, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if high is None or high < 0 or tp.offset is None or tp.offset < 0:
                continue
            topic = self._names.logical(str(tp.topic))
            lag[topic] = lag.get(topic, 0) + max(0, high - tp.offset)
        return lag

    def close(self) -> None:
        """A clean stop commits what completed; after a failure, or with a batch polled and
        not completed, nothing is committed (an open transaction is aborted)."""
        try:
            clean = not self._failed and not self._in_batch
            committed: Offsets = {}
            if clean and self._next and self._assigned:
                try:
                    committed = self._commit(())  # a clean stop leaves nothing to redeliver
                except BusError as exc:
                    clean = False
                    log.warning("final commit failed", extra={"error": str(exc)})
            if clean and self._assigned and self._revoked_cb is not None:
                # Everything done is committed: the partitions go with a consistent state.
                # (The consumer's own revocation while closing then has nothing to add.)
                revoked, self._revoked_cb = self._revoked_cb, None
                revoked(self._logical(self._consumer.assignment()), committed)
            if self._in_transaction:
                self._abort()
            self._consumer.close()
        finally:
            self._producer.close()

    def _abort(self) -> None:
        try:
            self._producer.raw.abort_transaction(SLICE_S * 5)
        except KafkaException as exc:
            # The broker aborts it anyway once transaction.timeout.ms passes, or the next
            # instance's init_transactions fences and aborts it.
            log.warning("abort failed", extra={"error": str(exc)})
        self._in_transaction = False


def _to_record(m: Message, names: TopicNames, replay: bool = False) -> Record:
    key, value, headers = m.key(), m.value(), m.headers() or ()
    return Record(
        replay=replay,
        topic=names.logical(str(m.topic())),
        partition=int(m.partition() or 0),
        offset=int(m.offset() or 0),
        key=key.encode() if isinstance(key, str) else key,
        value=value.encode() if isinstance(value, str) else (value or b""),
        headers=tuple(
            (k, v.encode() if isinstance(v, str) else (v or b""))
            for k, v in (headers.items() if isinstance(headers, dict) else headers)
        ),
        timestamp_ms=m.timestamp()[1],
    )


class KafkaReader:
    """A group-less reader (see `Bus.reader`): partitions assigned explicitly, no commits."""

    def __init__(self, conf: dict[str, Any], names: TopicNames) -> None:
        self._names = names
        self._consumer = Consumer(conf)
        self._closed = False
        self._assigned: set[tuple[str, int]] = set()
        self._ended: set[tuple[str, int]] = set()

    def start(self, topics: Sequence[str], from_ms: int | None) -> None:
        """Assigns every partition of `topics` at its start offset; raises BusError if any
        topic is missing or a start offset cannot be looked up."""
        try:
            starts = [tp for t in topics for tp in self._starts(self._names.physical(t), from_ms)]
        except KafkaException as exc:
            raise BusError(f"could not find where to start reading: {exc}") from exc
        self._assigned = {(tp.topic, tp.partition) for tp in starts}
        self._consumer.assign(starts)

    def _starts(self, topic: str, from_ms: int | None) -> list[TopicPartition]:
        found = self._consumer.list_topics(topic, timeout=10).topics.get(topic)
        if found is None or not found.partitions:
            raise BusError(f"topic {topic} not found")
        if from_ms is None:
            return [TopicPartition(topic, p, OFFSET_END) for p in found.partitions]
        wanted = [TopicPartition(topic, p, from_ms) for p in found.partitions]
        offsets = self._consumer.offsets_for_times(wanted, timeout=10)
        failed = [f"{tp.partition}: {tp.error}" for tp in offsets if tp.error is not None]
        if failed:
            # An offset of -1 with an error would silently skip the history: refuse instead.
            raise BusError(f"offsets_for_times failed for {topic}: {'; '.join(failed)}")
        # Past the newest record, offsets_for_times answers -1 (no error): the end, as wanted.
        return list(offsets)

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        first = self._consumer.poll(timeout_s)
        if first is None:
            return []
        messages = (
            [first, *self._consumer.consume(max_records - 1, 0)] if max_records > 1 else [first]
        )
        out: list[Record] = []
        for m in messages:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self._ended.add((str(m.topic()), int(m.partition() or 0)))
                    continue
                # Stop rather than read on past a possible gap: a reader restarts from a time.
                raise BusError(f"reader error: {err}")
            self._ended.discard((str(m.topic()), int(m.partition() or 0)))
            out.append(_to_record(m, self._names))
        return out

    def at_end(self) -> bool:
        return self._assigned <= self._ended

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._consumer.close()


class KafkaBus:
    def __init__(
        self,
        bootstrap: str,
        names: TopicNames | None = None,
        consumer_overrides: dict[str, Any] | None = None,
        *,
        stop: threading.Event | None = None,
        timeouts: KafkaTimeouts | None = None,
        client_config: dict[str, Any] | None = None,
    ) -> None:
        """`client_config`: keys every client gets (transport security and extra keys, see
        `tickpipe.bus.security.kafka_client_config`); none: plaintext, librdkafka's defaults."""
        self.bootstrap = bootstrap
        self.names = names or TopicNames()
        self._consumer_overrides = consumer_overrides
        self._stop = stop
        self._timeouts = timeouts or KafkaTimeouts()
        self._client_config = dict(client_config or {})

    def _common(self, client_id: str) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap, **self._client_config, "client.id": client_id}

    def producer(self, client_id: str) -> _KafkaProducer:
        conf = {**PRODUCER_DEFAULTS, **self._common(client_id)}
        return _KafkaProducer(conf, self.names, self._stop, self._timeouts)

    def link(
        self,
        *,
        group: str,
        topics: Sequence[str],
        client_id: str,
        transactional_id: str | None = None,
    ) -> KafkaLink:
        return KafkaLink(
            bootstrap=self.bootstrap,
            names=self.names,
            group=group,
            topics=topics,
            client_id=client_id,
            transactional_id=transactional_id,
            overrides=self._consumer_overrides,
            stop=self._stop,
            timeouts=self._timeouts,
            client_config=self._client_config,
        )

    def reader(self, topics: Sequence[str], *, from_ms: int | None, client_id: str) -> KafkaReader:
        conf = {
            **READER_DEFAULTS,
            **self._common(client_id),
            "group.id": client_id,  # librdkafka requires one; the reader never joins it
            **(self._consumer_overrides or {}),
        }
        reader = KafkaReader(conf, self.names)
        try:
            reader.start(topics, from_ms)
        except BaseException:
            reader.close()
            raise
        return reader

    def tail(
        self, topics: Sequence[str], *, count: int, client_id: str, timeout_s: float = 30.0
    ) -> list[Record]:
        """The last `count` records of each partition (see `Bus.tail`)."""
        conf = {
            **READER_DEFAULTS,
            **self._common(client_id),
            "group.id": client_id,  # librdkafka requires one; nothing joins it
            **(self._consumer_overrides or {}),
            # The end shows as an event per partition; a start deleted by retention meanwhile
            # only shortens the tail.
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
        return _read_tail(conf, self.names, topics, max(0, count), timeout_s, self._stop)

    def close(self) -> None:
        return None


def _read_tail(
    conf: dict[str, Any],
    names: TopicNames,
    topics: Sequence[str],
    count: int,
    timeout_s: float,
    stop: threading.Event | None,
) -> list[Record]:
    consumer = Consumer(conf)
    try:
        ends = _tail_starts(consumer, names, topics, count)
        got: dict[tuple[str, int], list[Record]] = {tp: [] for tp in ends}
        reading = set(ends)
        deadline = time.monotonic() + timeout_s
        while reading:
            if _stopped(stop):
                raise BusError(f"stopped while reading the end of {', '.join(topics)}")
            if time.monotonic() > deadline:
                raise BusError(f"reading the end of {', '.join(topics)} took over {timeout_s}s")
            for m in consumer.consume(500, 0.2):
                tp = (str(m.topic()), int(m.partition() or 0))
                err = m.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise BusError(f"reading the end of {tp[0]}: {err}")
                    reading.discard(tp)  # at the end (the last stable offset)
                elif tp in reading:
                    record = _to_record(m, names)
                    got[tp].append(record)
                    if record.offset + 1 >= ends[tp]:
                        reading.discard(tp)
        return [r for tp in ends for r in got[tp][-count:]]
    except KafkaException as exc:
        raise BusError(f"could not read the end of {', '.join(topics)}: {exc}") from exc
    finally:
        consumer.close()


def _tail_starts(
    consumer: Consumer, names: TopicNames, topics: Sequence[str], count: int
) -> dict[tuple[str, int], int]:
    """Assigns each non-empty partition `count` records before its end; returns the ends."""
    starts: list[TopicPartition] = []
    ends: dict[tuple[str, int], int] = {}  # (physical topic, partition) -> end offset
    for logical in topics:
        topic = names.physical(logical)
        found = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise BusError(f"topic {topic} not found")
        for p in sorted(found.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=10, cached=False
            )
            if count and high > low:
                starts.append(TopicPartition(topic, p, max(low, high - count)))
                ends[(topic, p)] = high
    if starts:
        consumer.assign(starts)
    return ends
