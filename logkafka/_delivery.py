"""Delivery reports and what they tell: which failures no retry can cure, which mean a lost producer
session, what a client error or a failed delivery means in plain words, and the counts of what the
broker acknowledged."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sized
from functools import partial
from typing import Any

from confluent_kafka import KafkaError

from logkafka._queue import count_of

_LATENCIES = 4096  # latencies kept for the percentiles

#: Delivery errors that no retry of the same record can cure (too large, malformed, refused by policy
#: or authorization): the handler counts the record failed instead of spooling it for ever, and
#: ``logkafka replay`` keeps it in the spool with the reason.
PERMANENT = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG, KafkaError.INVALID_MSG_SIZE, KafkaError._INVALID_ARG,
    KafkaError.INVALID_RECORD, KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_TIMESTAMP,
    KafkaError.TOPIC_EXCEPTION, KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.INVALID_REQUIRED_ACKS, KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT, KafkaError.POLICY_VIOLATION,
})

#: The topic or partition does not exist (yet): a running handler spools and tries again later (the
#: topic may be created); ``logkafka replay`` reports the records as not sendable now.
NO_TOPIC = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION})

#: Delivery errors that mean the broker no longer knows this producer's idempotent session (restarted
#: empty, replaced, or confused after timeouts): every later record would fail the same way. The record
#: is spooled and the producer rebuilt (a new session).
STATE_LOST = frozenset({
    KafkaError.UNKNOWN_PRODUCER_ID, KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_ID_MAPPING, KafkaError._FENCED,
    KafkaError._INCONSISTENT, KafkaError._GAPLESS_GUARANTEE,
})


def keeps_record(exc: Exception) -> bool:
    """Whether produce() refused because the producer itself is finished (fatal): the record is kept
    for the next producer, not failed."""
    error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    return error is not None and (error.fatal() or error.code() == KafkaError._FATAL)


def plain_error(err: KafkaError, servers: str, spool: bool = True) -> str | None:
    """A client error in plain words, or None for one not worth a line (a reconnect librdkafka handles)."""
    code = err.code()
    if code == KafkaError._ALL_BROKERS_DOWN:
        where = "memory, then the spool" if spool else "in memory only: no spool"
        return f"cannot reach Kafka at {servers}: no broker answers; records wait ({where})"
    if code == KafkaError._TRANSPORT:
        return None  # one connection dropped; librdkafka reconnects, and all-brokers-down is said above
    if code == KafkaError._RESOLVE:
        return f"cannot resolve the Kafka address {servers}"
    if code in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
        return f"Kafka at {servers} refused the credentials: {err.str()}"
    if code == KafkaError._SSL:
        return f"TLS with Kafka at {servers} failed: {err.str()}"
    return f"Kafka client error: {err.str()}"


def plain_delivery_error(err: KafkaError) -> str:
    """Why a record was not delivered, in plain words (librdkafka's own text for the rarer reasons)."""
    code = err.code()
    if code == KafkaError._MSG_TIMED_OUT:
        return "Kafka did not acknowledge it within message.timeout.ms"
    if code in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
        return "the handler stopped waiting for Kafka"
    if code == KafkaError.MSG_SIZE_TOO_LARGE:
        return "the broker refused it as too large (message.max.bytes)"
    if code == KafkaError.TOPIC_AUTHORIZATION_FAILED:
        return "the broker refused it: not authorized for the topic"
    if code == KafkaError._UNKNOWN_TOPIC or code == KafkaError.UNKNOWN_TOPIC_OR_PART:
        return "the topic does not exist (and the broker does not create it)"
    return err.str()


class _Yield(Exception):
    """Raised in a delivery report to make ``poll()`` return early (see ``Deliveries.on_delivery``)."""


class Deliveries:
    """What became of the records a worker produced: delivery reports, counted as they come.

    Reports are served on whichever thread polls (the draining thread, or the reaper
    under load); a failure is handed to the draining thread (``failures``), which
    spools or counts it. Counters are read by ``stats()`` from any thread.
    """

    def __init__(self, queue: Sized, backlog: int, wake: threading.Event,
                 stream_topics: Iterable[str] | None) -> None:
        self._queue = queue
        self._backlog = backlog
        self._wake = wake
        self._acks = itertools.count()  # reports of success (next() is atomic: two threads serve them)
        # acknowledgements and failures by topic, where one worker serves several (audit and security)
        self._topic_acks: dict[str, itertools.count[int]] | None = (
            {t: itertools.count() for t in stream_topics} if stream_topics else None)
        self._topic_failed: dict[str, int] = {}
        self.produced = 0  # records the producer accepted
        self.failed = 0  # records that failed: refused by produce() or by a delivery report
        self.reported_failed = 0  # reports of failures handled (the record then spooled again, or failed)
        #: Failed reports, appended by whichever thread served them, handled by the draining thread.
        #: Appended before librdkafka forgets the record.
        self.failures: deque[tuple[KafkaError, Any, Any]] = deque()  # (error, message, its headers)
        self._inline_poll = 0  # the draining thread's ident while it serves reports and may yield
        # Delivery latency, log call to acknowledgement, sampled: librdkafka reports failures
        # only, so a sample (its position among produced records, its creation time) counts as
        # acknowledged once that many records are delivered (acknowledgements come in order
        # per partition, so this is close, not exact, across partitions).
        self._samples: deque[tuple[int, float]] = deque()
        self._latencies: deque[float] = deque(maxlen=_LATENCIES)
        self._report = self._on_report  # bound once: a message's reporter() is one partial
        #: The producer's delivery report callback, for messages without headers of their own.
        self.on_delivery: Callable[[KafkaError | None, Any], None] = partial(self._on_report, None)

    def reporter(self, headers: Any) -> Callable[[KafkaError | None, Any], None]:
        """The delivery report callback of one message with ``headers``: librdkafka's report of a failed
        message has no headers, so they are kept here, for the spool (``on_delivery`` serves the rest)."""
        return partial(self._report, headers)

    def _on_report(self, headers: Any, err: KafkaError | None, msg: Any) -> None:
        """A delivery report, on the thread that polled: a failure is handed to the draining thread.

        While the draining thread serves reports and a backlog builds up in the queue, this
        raises :class:`_Yield`: confluent-kafka then makes ``poll()`` return at once (the
        remaining reports wait), so the draining thread goes back to the queue and the reaper
        takes over the reports.
        """
        if err is None:
            next(self._acks)
            if self._topic_acks is not None:
                counter = self._topic_acks.get(msg.topic())
                if counter is not None:
                    next(counter)
            if self._inline_poll == threading.get_ident() and len(self._queue) >= self._backlog:
                self._inline_poll = 0
                raise _Yield
            return
        self.failures.append((err, msg, headers))
        self._wake.set()

    def serve(self, producer: Any) -> None:
        """Serve the reports waiting now, on the draining thread."""
        producer.poll(0)

    def serve_until_backlog(self, producer: Any) -> None:
        """Serve the reports waiting now on the draining thread, but stop as soon as a backlog builds up in
        the queue: the reaper takes over the rest."""
        self._inline_poll = threading.get_ident()
        try:
            producer.poll(0)
        except _Yield:  # a backlog built up while serving them: back to the queue
            pass
        finally:
            self._inline_poll = 0

    def delivered(self) -> int:
        """Records the broker acknowledged: delivery reports of success, counted one by one."""
        return count_of(self._acks)

    def settled(self) -> int:
        """Records with a delivery report handled: acknowledged, or failed and spooled or counted."""
        return self.reported_failed + self.delivered()

    def in_flight(self) -> int:
        """Records the producer accepted that have no delivery report yet."""
        return max(0, self.produced - count_of(self._acks) - self.reported_failed - len(self.failures))

    def count_failed(self, topic: str | None) -> None:
        """One record failed for good (counted, and by topic where the worker serves several)."""
        self.failed += 1
        if self._topic_acks is not None and topic is not None:
            self._topic_failed[topic] = self._topic_failed.get(topic, 0) + 1

    def by_topic(self, topic: str) -> dict[str, dict[str, int]]:
        """Delivered and failed records by topic, for a worker serving several topics (else ``topic``'s)."""
        if self._topic_acks is None:
            return {topic: {"delivered": self.delivered(), "failed": self.failed}}
        return {t: {"delivered": count_of(c), "failed": self._topic_failed.get(t, 0)}
                for t, c in self._topic_acks.items()}

    def sample(self, position: int, created: float) -> None:
        """Measure the latency of the record produced at ``position``, logged at ``created``."""
        self._samples.append((position, created))

    def measure(self) -> None:
        """The samples settled by now have their latency taken."""
        samples, settled = self._samples, self.settled()
        if samples and samples[0][0] <= settled:
            now = time.time()
            while samples and samples[0][0] <= settled:
                self._latencies.append(now - samples.popleft()[1])

    def latency(self) -> dict[str, float | None]:
        """Delivery latency percentiles (seconds, log call to acknowledgement) of recent samples."""
        values = sorted(self._latencies)
        if not values:
            return {"p50": None, "p95": None, "p99": None}
        return {f"p{q}": values[min(len(values) - 1, len(values) * q // 100)] for q in (50, 95, 99)}
