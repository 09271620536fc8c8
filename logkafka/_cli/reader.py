"""Reading log topics: one way to connect, assign partitions, find offsets by time and merge in time order.

Every reader of Kafka (``tail``, ``demo``, ``check``'s read-back, and the readers to come) uses these.
The consumer assigns partitions itself: it joins no group and commits nothing. :func:`read` yields the
messages of several topics merged by their Kafka timestamps (see :class:`~logkafka._cli.merge.TimeMerge`);
:mod:`logkafka._cli.records` says what each one holds.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from logkafka._cli.common import CliError, unreachable
from logkafka._cli.connection import client_config, new_consumer
from logkafka._cli.merge import TimeMerge
from logkafka._topics import offsets_for_time

#: Without ``--follow``: stop when no record came for this long, even if the broker never said "end of partition".
DEFAULT_IDLE = 5.0
#: Without ``--follow``: once every partition reported its end, wait this long for stragglers.
EOF_GRACE = 0.5
#: How long the first metadata request may take before the cluster counts as unreachable.
CONNECT_TIMEOUT = 8.0
#: How long a record may wait for earlier records of other partitions before it is printed anyway.
ORDER_WINDOW = 0.5
#: How long records wait beyond --order-window for a partition that owes a report (assigned or resumed, or
#: it sent records and not yet its end) before it counts as silent.
EXPECT_GRACE = 5.0

Key = tuple[str, int]  # (topic, partition)


@dataclass(slots=True)
class Message:
    """One consumed message."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    timestamp_ms: int | None = None  # the Kafka timestamp; None when the broker gives none


class ClientErrors:
    """The client's error callback: keeps the latest error, and whether every broker is down."""

    def __init__(self) -> None:
        self.last: str | None = None
        self.all_down = False
        self.fatal: str | None = None

    def __call__(self, err: Any) -> None:
        self.last = err.str()
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.all_down = True
        if err.fatal():
            self.fatal = err.str()


def consumer_settings(args: argparse.Namespace, servers: str | None = None) -> dict[str, Any]:
    """The consumer's settings: ``--consumer-config``, the servers, and a throwaway group that commits nothing."""
    config = client_config(args, "consumer", servers)
    config.setdefault("client.id", "logkafka-tail")
    config.setdefault("log_level", 0)  # errors are reported once, clearly, not as librdkafka's log lines
    config.update({
        "group.id": f"logkafka-tail-{uuid.uuid4().hex}",  # partitions are assigned: no group is joined
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
    })
    return config


def wait_for_cluster(consumer_config: Mapping[str, Any]) -> None:
    """Connect a consumer and ask for the cluster's metadata: :class:`CliError` when it does not answer
    within ``CONNECT_TIMEOUT`` s, with librdkafka's reason."""
    errors = ClientErrors()
    client = new_consumer({**consumer_config, "error_cb": errors})
    try:
        _metadata(client, str(consumer_config.get("bootstrap.servers")), errors, lambda: False)
    finally:
        client.close()


def _metadata(consumer: Any, servers: str, errors: ClientErrors, stopping: Callable[[], bool]) -> Any:
    """The cluster's metadata; :class:`CliError` when it does not answer within ``CONNECT_TIMEOUT`` s."""
    start = time.monotonic()
    while True:
        try:
            return consumer.list_topics(timeout=1.0)
        except KafkaException:
            waited = time.monotonic() - start
            consumer.consume(1, 0)  # serves the error callback: the reason, and whether every broker is down
            detail = errors.last or (f"no answer within {waited:.0f} s "
                                     "(is the address right? do the TLS and SASL settings match the listener?)")
            if errors.fatal or waited >= CONNECT_TIMEOUT or (errors.last is not None and waited >= 2.0):
                raise unreachable(servers, detail) from None
            if stopping():
                return None


def partitions_of(metadata: Any, topics: Sequence[str], servers: str,
                  warn: Callable[[str], None]) -> list[TopicPartition]:
    """Every partition of ``topics`` in the cluster's ``metadata``, from its first offset. A topic that does
    not exist is skipped with a warning; :class:`CliError` when none of them exists."""
    assignment = []
    missing = []
    for name in topics:
        t = metadata.topics.get(name)
        if t is None or t.error is not None or not t.partitions:
            reason = "does not exist" if t is None or t.error is None or \
                t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART else t.error.str()
            missing.append(f"{name} ({reason})")
            continue
        assignment += [TopicPartition(name, p, OFFSET_BEGINNING) for p in sorted(t.partitions)]
    if not assignment:
        raise CliError(f"no topic to read at {servers}: {', '.join(missing)}; "
                       "create them with `logkafka topics ensure`, or name existing topics")
    for text in missing:
        warn(f"skipping topic {text}")
    return assignment


def read(
    consumer_config: Mapping[str, Any],
    topics: Sequence[str],
    *,
    from_beginning: bool,
    follow: bool,
    idle: float = DEFAULT_IDLE,
    stopping: Callable[[], bool] = lambda: False,
    warn: Callable[[str], None] = lambda text: None,
    ready: Callable[[Sequence[str]], None] = lambda topics: None,
    order_window: float = ORDER_WINDOW,
) -> Iterator[Message]:
    """The messages of ``topics``, merged in timestamp order across topics and partitions.

    From the first offset (``from_beginning``), else the records stamped from
    the call on (found by time; a record stamped earlier is skipped too, as a
    broker's offset lookups may be inexact: tansu's are). Without
    ``follow``, ends once every partition reported its end (and ``EOF_GRACE``
    passed without more), or after ``idle`` seconds without a message. Ends
    when ``stopping()`` turns true. A message waits up to ``order_window``
    seconds for earlier ones of other partitions (see :class:`TimeMerge`). ``ready`` is told the topics read
    once they are assigned. Raises :class:`CliError` for a cluster that does not answer, a bad setting, or
    when none of the topics exists.
    """
    since_ms = None if from_beginning else int(time.time() * 1000)
    servers = str(consumer_config.get("bootstrap.servers"))
    errors = ClientErrors()
    consumer = new_consumer({**consumer_config, "auto.offset.reset": "earliest" if from_beginning else "latest",
                             "error_cb": errors})
    try:
        md = _metadata(consumer, servers, errors, stopping)
        if md is None:
            return
        assignment = partitions_of(md, topics, servers, warn)
        if since_ms is not None:
            assignment = offsets_for_time(consumer, assignment, since_ms)
        consumer.assign(assignment)
        ready([t for t in topics if any(tp.topic == t for tp in assignment)])
        reading = _Reading(consumer, [(tp.topic, tp.partition) for tp in assignment], errors, warn,
                           since_ms=since_ms, order_window=order_window)
        yield from _merged(reading, follow=follow, idle=idle, stopping=stopping)
    finally:
        consumer.close()


def _merged(reading: _Reading, *, follow: bool, idle: float, stopping: Callable[[], bool]) -> Iterator[Message]:
    """The read loop of :func:`read`: fetch, release what is due in time order, pace the partitions."""
    while not stopping():
        now = reading.fetch()
        for message in reading.merge.ready():
            yield message
            if stopping():
                return
        reading.pace()
        reading.check_client()
        if not follow and reading.caught_up(now, idle):
            for message in reading.merge.drain():
                yield message
                if stopping():
                    return
            return


class _Reading:
    """One merged read: the records held for ordering, which partitions ended, which are paused."""

    def __init__(self, consumer: Any, partitions: Sequence[Key], errors: ClientErrors, warn: Callable[[str], None],
                 *, since_ms: int | None, order_window: float) -> None:
        self.consumer = consumer
        self.errors = errors
        self.warn = warn
        self.since_ms = since_ms  # records stamped earlier are skipped
        self.merge: TimeMerge[Message] = TimeMerge(partitions, window=order_window, grace=EXPECT_GRACE)
        self.assigned = len(partitions)
        self.ended: set[Key] = set()
        self.paused: set[Key] = set()
        self.last = time.monotonic()  # when the latest record came
        self.reported: str | None = None  # the latest error warned about (each is said once)

    def fetch(self) -> float:
        """Consume a batch into the merge (waiting no longer than the merge may hold a record); the time."""
        hint = self.merge.wait_hint()
        batch = self.consumer.consume(500, 0.25 if hint is None else min(0.25, hint))
        now = time.monotonic()
        for m in batch:
            self._take(m, now)
        return now

    def _take(self, m: Any, now: float) -> None:
        err = m.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                self.ended.add((m.topic(), m.partition()))
                self.merge.end((m.topic(), m.partition()))
            elif err.fatal():
                raise CliError(f"the consumer failed: {err.str()}")
            elif err.str() != self.reported:
                self.reported = err.str()
                self.warn(self.reported)
            return
        self.ended.discard((m.topic(), m.partition()))
        self.last = now
        kind, stamp = m.timestamp()
        stamp = None if kind == TIMESTAMP_NOT_AVAILABLE else stamp
        if self.since_ms is not None and stamp is not None and stamp < self.since_ms:
            return
        value = m.value()
        self.merge.add((m.topic(), m.partition()),
                       Message(m.topic() or "", m.partition() or 0, m.offset() or 0, value, stamp),
                       stamp, len(value or b""))

    def pace(self) -> None:
        """Pause the partitions far ahead of the others (their records wait to be merged), resume them once
        they are behind again (:meth:`TimeMerge.ahead`). The client drops a paused partition's fetched records
        and fetches them again, from the next offset, on resume."""
        def partitions(keys: Iterable[Any]) -> list[Any]:
            return [TopicPartition(topic, partition) for topic, partition in keys]

        ahead: set[Any] = set(self.merge.ahead()) - self.paused
        if ahead:
            self.consumer.pause(partitions(ahead))
            self.paused |= ahead
        behind = {key for key in self.paused if self.merge.behind(key)}
        if behind:
            self.consumer.resume(partitions(behind))
            self.paused -= behind
            for key in behind:  # it has more to send: its fetch, not its silence, is what the others wait for
                self.merge.expect(key)

    def check_client(self) -> None:
        """A fatal client error ends the read (:class:`CliError`); losing every broker is a warning."""
        if self.errors.fatal:
            raise CliError(f"the consumer failed: {self.errors.fatal}")
        if self.errors.all_down:  # once per outage: librdkafka reports the change to "all down"
            self.errors.all_down = False
            self.warn(f"lost the cluster: {self.errors.last}; still trying")

    def caught_up(self, now: float, idle: float) -> bool:
        """Whether a read without ``--follow`` is done: every partition at its end for ``EOF_GRACE`` s, or
        ``idle`` s without a record."""
        return (len(self.ended) >= self.assigned and now - self.last >= EOF_GRACE) or now - self.last >= idle
