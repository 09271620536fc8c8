"""What a worker does with records Kafka does not take now: into the spool (in order, to be replayed), held
in memory while the spool's disk refuses writes, or counted failed when no retry can help."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from logkafka._delivery import PERMANENT, STATE_LOST, Deliveries, keeps_record, plain_delivery_error
from logkafka._link import Link
from logkafka._message import Message
from logkafka._queue import Barrier
from logkafka._record import made_order
from logkafka._report import report
from logkafka._spool import Spool, new_stem


class Spill:
    """The worker's side of the spool: spooling, records held in memory, failures handled.

    ``spooling`` is True while records go to the spool, not to the producer: the
    spool holds older records that must go first (after an outage, or from an
    earlier run), or durability is "disk" (write-ahead). The spool is replayed in
    order, then it goes False.
    """

    def __init__(self, spool: Spool | None, *, disk: bool, topic: str, link: Link, deliveries: Deliveries,
                 barriers: list[Barrier]) -> None:
        self.spool = spool
        self.disk = disk and spool is not None  # durability "disk": callers write their records to the spool
        self._topic = topic
        self._link = link
        self._deliveries = deliveries
        self._barriers = barriers  # the worker's waiting flushes (a list changed in place)
        self.spooling = self.disk or (spool is not None and spool.pending())
        #: Records the spool's disk refused (or, no spool, waiting for room): sent from memory first.
        self.held: deque[Message] = deque()
        self.quiet = False  # while purging at close or before a rebuild: one summary, not a line per record
        self.lost = 0  # records neither Kafka nor the spool's disk took by the end
        #: The last look found nothing of ours left to replay, and the spool's write count then.
        self.idle = not self.spooling
        self._idle_written = 0
        self._respooled = False  # records re-spooled while a barrier waits: its mark moves on
        self._broken = 0  # the spool's write count when the disk refused, 0 while it writes
        self._said_evicted = 0  # the spool's evicted and torn counts last said
        self._said_torn = 0
        # Where a record whose delivery failed goes back to, so that it is sent again before the records
        # that followed it (which may be in the spool already): ahead of the segment being replayed, if it
        # came from one (``replay_stem``), else ahead of what was spooled since spooling began.
        self.replay_stem: str | None = None
        self.replay_failed = False  # a record of the segment being replayed failed: the replay stops there
        self._start_stem: str | None = None
        self._front: dict[str, list[Message]] = {}  # stem -> failed records, written once none is in flight

    # -- writing ---------------------------------------------------------------------------
    def start(self, why: str) -> None:
        """Kafka did not take a record: records go to the spool from now on (said once)."""
        if not self.spooling and self.spool is not None and self.spool.usable():
            self.spooling = True
            # Records spooled from now on go to segments made after this stem; the ones that were with
            # Kafka now and fail later go to segments named to sort before those (see _failed).
            self.spool.rotate()
            self._start_stem = new_stem()
            if not self.quiet:
                report("spooling", f"spooling records to disk: {why}")
        self._link.not_delivered()

    def put(self, message: Message) -> None:
        """Append one record to the spool (written by the next :meth:`commit`); held if the disk refuses."""
        spool = self.spool
        if spool is None:
            self._deliveries.count_failed(message.topic)
            return
        if not spool.usable():  # the disk refused a write moments ago: this one goes from memory
            self.held.append(message)
            return
        self.idle = False
        if not spool.append(*message):
            self._refused(spool)

    def write_ahead(self, message: Message) -> bool:
        """``durability="disk"``, on the caller's thread: write the record now. False when the disk refused it."""
        spool = self.spool
        if spool is None:
            return False
        if spool.write_through(*message):
            self.idle = False
            return True
        self._refused(spool)
        return False

    def commit(self) -> None:
        """Write what was appended (one write call); what the disk refuses is held in memory."""
        spool = self.spool
        if spool is None:
            return
        if self._front and not self._deliveries.in_flight():  # every report is in: one file, in order
            front, self._front = self._front, {}
            for stem, messages in front.items():
                if not spool.write_front(stem, in_logged_order(messages)):
                    self._refused(spool)
        if not spool.commit():
            self._refused(spool)
            return
        unwritten = spool.take_unwritten()  # refused by an earlier write (a rotation's, an append's)
        if unwritten:
            self.held.extend(unwritten)
        if self._broken and spool.usable() and spool.spooled != self._broken:
            self._broken = 0
            report("spool_ok", f"the spool {spool.directory} takes writes again")
        if self._respooled:  # records a waiting flush covers went to the spool: it waits for them too
            self._respooled = False
            mark = spool.open_index()
            for barrier in self._barriers:
                barrier.mark = max(barrier.mark, mark)

    def front_waiting(self) -> int:
        """Failed records waiting in memory for the last reports of their kind, to go back to the spool ahead
        of the records that followed them, in the order they were logged (see :meth:`commit`)."""
        return sum(len(messages) for messages in self._front.values())

    def _refused(self, spool: Spool) -> None:
        """The disk refused records: they go to Kafka from memory (held), said once a while."""
        self.held.extend(spool.take_unwritten())
        self._link.last_error = spool.last_error
        if not self._broken:
            self._broken = max(1, spool.spooled)
        if self.quiet:
            return  # at close: the summary line says what became of them
        report("spool", f"{spool.last_error} ({spool.directory}): records go to Kafka from memory, without "
               "the disk's protection, until the spool takes writes again (tried every few seconds)")

    def keep_held(self) -> None:
        """At the end: records held in memory (the disk refused them, Kafka did not take them) go to
        the spool if it takes writes now; else they are lost, counted."""
        held, spool = self.held, self.spool
        if not held:
            return
        self.held = deque()
        if spool is not None:
            spool.retry_now()  # one more try
            for message in held:
                spool.append(*message)
            spool.commit()
            held = deque(spool.take_unwritten())
        self.lost += len(held)

    # -- what the spool holds ----------------------------------------------------------------------
    def found_empty(self, written: int) -> None:
        """A look found nothing of ours left to replay; ``written``: the spool's write count when it began."""
        self.idle = True
        self._idle_written = written

    def empty(self) -> bool:
        """The last look found nothing left in the spool, and nothing was written since it began."""
        spool = self.spool
        return self.idle and (spool is None or spool.spooled == self._idle_written)

    def say_losses(self) -> None:
        """Records the spool lost (evicted by its size limit, torn lines) since the last call, said."""
        spool = self.spool
        if spool is None:
            return
        evicted, torn = spool.dropped - self._said_evicted, spool.torn - self._said_torn
        if evicted > 0:
            report("spool_full", f"{evicted} records lost: the spool reached spool_max_bytes and its "
                   "oldest segments were removed")
        if torn > 0:
            report("spool_torn", f"{torn} damaged spool lines skipped while replaying")
        self._said_evicted, self._said_torn = spool.dropped, spool.torn

    # -- records Kafka refused ---------------------------------------------------------------
    def produce_held(self, producer: Any) -> bool:
        """Produce the records held in memory; False while the producer has no room for them."""
        held, produce, reporter = self.held, producer.produce, self._deliveries.reporter
        while held:
            if self._link.fatal:
                return False  # kept for the next producer
            topic, key, value, ts, headers = held[0]
            try:
                produce(topic, value, key, -1, reporter(headers) if headers else None, None, ts, headers)
            except BufferError:
                return False
            except (KafkaException, TypeError, ValueError) as exc:
                if keeps_record(exc):
                    self._link.lose_producer(str(exc))
                    return False
                held.popleft()
                self.refused(exc)
                continue
            held.popleft()
            self._deliveries.produced += 1
        return True

    def refused(self, exc: Exception, message: Message | None = None) -> None:
        """produce() raised: a fatal client error keeps the record for the next producer; else it failed."""
        if message is not None and keeps_record(exc):
            self._link.lose_producer(str(exc))
            self.held.append(message)
            return
        self._deliveries.count_failed(message.topic if message else None)
        self._link.last_error = str(exc)
        report("produce", f"record refused by the producer: {exc}")

    def handle_failures(self) -> None:
        """Spool (or count as failed) the records whose delivery failed; on the draining thread."""
        failures = self._deliveries.failures
        while failures:
            err, msg, headers = failures[0]
            try:
                self._failed(err, msg, headers)
            finally:
                self._deliveries.reported_failed += 1  # counted before it leaves the deque: never delivered
                failures.popleft()

    def _failed(self, err: KafkaError, msg: Any, headers: Any) -> None:
        link = self._link
        link.last_error = err.str()
        if err.code() in STATE_LOST and self.spool is not None and not link.fatal:
            # rebuilt on the draining thread; this record is spooled below
            link.lose_producer(f"the broker refused this producer's session ({err.name()}: {err.str()})")
        if self.spool is not None and err.code() not in PERMANENT:
            self.start(f"a record was not delivered: {plain_delivery_error(err)}")
            ts = msg.timestamp()
            raw = headers or msg.headers()  # (a failed message's report has none: see Deliveries.reporter)
            if self._barriers:
                self._respooled = True
            message = Message(msg.topic() or self._topic, msg.key(), msg.value() or b"",
                              ts[1] if ts and ts[1] > 0 else int(time.time() * 1000), list(raw) if raw else None)
            stem = self.replay_stem or self._start_stem
            if stem is None or not self.spool.usable():
                self.put(message)
            else:  # ahead of the records that followed it
                self.idle = False
                self.replay_failed = self.replay_failed or stem == self.replay_stem
                self._front.setdefault(stem, []).append(message)
            return
        self._deliveries.count_failed(msg.topic())
        if not self.quiet:
            report("delivery", f"a record was not delivered: {plain_delivery_error(err)}")


def _event_id(headers: Any) -> str | None:
    for name, value in headers or ():
        if name == "event_id":
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None


def in_logged_order(messages: list[Message]) -> list[Message]:
    """Failed records in the order they were logged: librdkafka does not report failures in the order the
    records were produced (a batch in flight and the next one queued time out in either order). Their event
    ids tell the order when they are one process's; otherwise the order of the reports is kept."""
    order = made_order([_event_id(message.headers) for message in messages])
    return messages if order is None else [messages[i] for i in order]
