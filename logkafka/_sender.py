"""What a worker's thread does each turn: queued records to the producer (or to the spool), delivery
reports served, the spool replayed, flushes settled; and what it does at the end."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from logkafka._chain import Chains
from logkafka._delivery import Deliveries
from logkafka._encoding import EncodePlan, Messages
from logkafka._link import Link
from logkafka._message import Message
from logkafka._producer import Session
from logkafka._queue import DROP_REASONS, ROOM_STALL, Barrier, Drops
from logkafka._record import FMT, STREAM
from logkafka._replay import Replay
from logkafka._report import report
from logkafka._spill import Spill
from logkafka._spool import Spool
from logkafka._stats import SpoolCounts, WorkerStats

BATCH = 1000  # records produced between two polls of delivery reports
#: Records spooled per turn: each turn's write gives the GIL away, and getting it back from a busy
#: caller takes a switch interval, so while spooling the turns are longer.
_SPOOL_BATCH = 8000
_SAMPLE_EVERY = 64  # one record in this many has its delivery latency measured
#: Records waiting in the queue above which the reaper, not the draining thread, serves delivery
#: reports (at most; a third of the queue's size when that is less): below it the draining thread
#: serves them between batches, which costs the caller least.
_BACKLOG = 30_000
_UNBOUND = object()
_ROOM_POLL = 0.002  # seconds of each wait for room in librdkafka's full buffer while the broker acknowledges


def _silence_doing(spill: Spill) -> str:
    """What becomes of records waiting on a silent broker, in words."""
    spool = spill.spool
    if spool is not None and spool.usable():
        return (f"they go to the spool {spool.directory} when the client's buffer fills or "
                "message.timeout.ms passes, and are sent once it answers")
    return "they wait in memory (no usable spool) until message.timeout.ms"


def _say_unsettled(topic: str, flush_timeout: float, link: Link, spill: Spill, spooled: int, lost: int,
                   failed: int) -> None:
    """At the end: what became of the records the broker did not acknowledge (``spooled``, ``lost`` to a
    refusing disk, ``failed`` since the end began), in one line."""
    why = "cannot reach Kafka" if link.broker_reachable is False else \
        f"not acknowledged within flush_timeout ({flush_timeout:g}s)"
    parts = []
    spool = spill.spool
    if spool is not None:
        if spooled:
            parts.append(f"{spooled} records written to the spool {spool.directory} for the next start")
        if lost:
            parts.append(f"{lost} records lost: {spool.last_error}")
    if failed:
        parts.append(f"{failed} records lost" + ("" if spool is not None else " (no spool_dir)"))
    if parts:
        report("shutdown", f"{topic}: {why} at close: {'; '.join(parts)}", interval=0.0)


class Sender:
    """The work of one worker: its producer, its spool and its counts (see the module docstring)."""

    def __init__(self, *, topic: str, producer_config: dict[str, Any], queue: deque[Any],
                 plans: Callable[[Any], EncodePlan], drops: Drops, flush_timeout: float, spool: Spool | None,
                 durability: str, stream_topics: dict[Any, str] | None, queue_size: int | None,
                 wake: threading.Event, chains: Chains | None = None) -> None:
        self.topic = topic
        self.queue = queue
        self._plans = plans
        self._drops = drops
        self._flush_timeout = flush_timeout
        self.backlog = max(1, min(_BACKLOG, (queue_size or 3 * _BACKLOG) // 3))
        #: Records queued above which a full librdkafka buffer sends the rest to the spool, not waited on.
        self.room_limit = max(1, (queue_size or 3 * _BACKLOG) * 3 // 4)
        #: Flushes waiting for the records before them (popped from the queue); changed in place.
        self.barriers: list[Barrier] = []
        self.link = Link(str(producer_config.get("bootstrap.servers", "")), spool is not None)
        self.deliveries = Deliveries(queue, self.backlog, wake, stream_topics.values() if stream_topics else None)
        self.spill = Spill(spool, disk=durability == "disk", topic=topic, link=self.link,
                           deliveries=self.deliveries, barriers=self.barriers)
        self.replay = (Replay(spool, topic=topic, spill=self.spill, link=self.link, deliveries=self.deliveries,
                              barriers=self.barriers) if spool is not None else None)
        self.session = Session(producer_config, topic=topic, link=self.link, deliveries=self.deliveries,
                               spill=self.spill, on_error=self._on_error, wake=wake.set)
        self.messages = Messages(topic, stream_topics, producer_config)
        self._chains = chains  # audit and security records: each one linked into its writer's hash chain
        self.reporting = False  # True while the thread runs: an outage is said only then
        #: True while the reaper thread serves delivery reports under load (see Worker).
        self.reaping = False
        self.in_hand = False  # True while drain() holds records it took from the queue
        #: 1 while a record waits for room in librdkafka's full buffer (no spool to take it).
        self.awaiting_room = 0
        self.stop_at: float | None = None  # set by stop(): leave once idle, or at this time
        self.exiting = False  # the process ends: the last spool write is not fsynced (the kernel has it)
        self._said_drops: dict[str, int] = {}
        self._doing = partial(_silence_doing, self.spill)
        self._seen_delivered = 0

    def _on_error(self, err: KafkaError) -> None:
        text = self.link.client_error(err)
        if text is not None and (self.reporting or err.code() != KafkaError._ALL_BROKERS_DOWN):
            report(f"error:{err.code()}", text)  # (none from a stopped handler for an outage)

    def write_ahead(self, item: dict[str, Any]) -> bool:
        """``durability="disk"``, on the caller's thread: the record written to the spool now, linked into its
        chain in the same order; False when it could not be (it is then queued, and linked when sent)."""
        try:
            message = self.messages.of(item, self._plans(item[FMT]))
        except Exception:
            return False
        if self._chains is None:
            return self.spill.write_ahead(message)
        return self._chains.write(item.get(STREAM) or "audit", message, self.spill.write_ahead)

    def _chained(self, item: dict[str, Any], plan: EncodePlan) -> Message:
        """A stream record's message, linked into its writer's chain."""
        assert self._chains is not None
        return self._chains.linked(item.get(STREAM) or "audit", self.messages.of(item, plan))

    # -- each turn ------------------------------------------------------------------------
    def turn(self, producer: Producer) -> int:
        """One turn of the loop; the number of records taken from the queue."""
        worked = self.drain(producer)
        spill = self.spill
        # While spooling, few reports come (records go to disk) and every poll() would hand
        # the GIL to the caller, costing this thread a switch interval: the reaper polls.
        if not self.reaping:
            self.deliveries.serve(producer)  # no reaper (serving inline at exit): serve the reports here
        elif len(self.queue) < self.backlog and not spill.spooling:
            self.deliveries.serve_until_backlog(producer)  # no backlog: here, until one builds up
        if self.deliveries.failures:
            spill.handle_failures()
        spool = spill.spool
        if spool is not None:
            spill.commit()  # what this turn spooled, in one write
            if spill.spooling and not self.link.fatal and self.replay is not None:
                self.replay.step(producer)
            spool.tick()
        self.say_news()  # before the barriers: a flush that returns sees the state it settled in
        self.settle_barriers()
        self.session.watch_stall(producer)
        self.link.watch_silence(self.deliveries.delivered(), self.deliveries.in_flight, self.spooled_waiting,
                                self._doing)
        return worked

    def drain(self, producer: Producer) -> int:
        """Produce up to a batch of queued records (the number taken, barriers not counted); stop at a barrier
        until it is settled.

        While spooling, records go to the spool instead, barriers or not: the
        queue keeps draining during an outage. Records the spool's disk refused
        go first, to the producer: disk trouble never keeps from Kafka what it can take.
        """
        spill, link, deliveries = self.spill, self.link, self.deliveries
        if spill.held and not spill.produce_held(producer):
            return 0  # the producer is full: the queue waits (its overflow policy applies)
        spool = spill.spool
        # "disk": the callers wrote their records to the spool; what is queued could not be written.
        # A producer waiting to be rebuilt takes nothing: records go to the spool meanwhile.
        spooling = (spill.spooling or link.fatal) and not spill.disk and spool is not None and spool.usable()
        # a flush or a new producer waits; or the replay has caught up: new records wait for its last segment
        if self._holding() if spooling else (self.barriers or link.fatal):
            return 0
        if spooling and not spill.spooling:
            spill.start("the producer is being replaced")
        queue, produce, plans, reporter = self.queue, producer.produce, self._plans, deliveries.reporter
        message_of = self.messages.of if self._chains is None else self._chained
        bound: Any = _UNBOUND
        plan: Any = None
        n = produced = barriers = 0
        limit = _SPOOL_BATCH if spooling else BATCH
        self.in_hand = True
        try:
            while n < limit:
                try:
                    item = queue.popleft()
                except IndexError:
                    break
                n += 1
                if type(item) is Barrier:
                    barriers += 1
                    if spool is not None:
                        spill.commit()  # the records before it are in a segment up to the mark
                        item.mark = spool.open_index()
                        spill.idle = False
                    self.barriers.append(item)
                    if spooling:
                        continue
                    break
                if item[FMT] is not bound:  # the formatter the record was logged under
                    bound = item[FMT]
                    plan = plans(bound)
                message = message_of(item, plan)
                if spooling:
                    spill.put(message)
                    continue
                topic, key, value, ts, headers = message
                try:
                    # positional (partition -1: the partitioner decides; on_delivery and its alias
                    # callback None, then timestamp and headers): cheaper than keywords
                    produce(topic, value, key, -1, reporter(headers) if headers else None, None, ts, headers)
                    produced += 1
                    position = deliveries.produced + produced  # among all records this worker produced
                    if not position % _SAMPLE_EVERY:
                        deliveries.sample(position, item["created"])
                except BufferError:  # librdkafka's buffer is full (broker slow or away)
                    deliveries.produced += produced
                    produced = 0
                    if spool is None:
                        _produce_when_room(self, producer, message)
                    elif not spool.usable() or spill.disk:  # the spool refuses writes: hold it, try next turn
                        spill.held.append(message)
                        break
                    elif not _room_in_a_burst(self, producer, message):  # not a burst: an outage
                        spill.start("the producer's queue is full")
                        spooling = True
                        spill.put(message)
                except (KafkaException, TypeError, ValueError) as exc:
                    spill.refused(exc, message)
                    if link.fatal:
                        break  # the rest waits in the queue for the next producer
        finally:
            deliveries.produced += produced
            self.in_hand = False
        return n - barriers

    def say_news(self) -> None:
        """Acknowledgements since the last turn (the broker answers), and losses not said yet."""
        delivered = self.deliveries.delivered()
        if delivered != self._seen_delivered:  # the broker acknowledged something since
            self._seen_delivered = delivered
            self.link.acknowledged()
            self.session.acknowledged()
            self.deliveries.measure()
        self.spill.say_losses()
        dropped = self._drops.counts()
        if dropped != self._said_drops:
            for reason, n in dropped.items():
                new = n - self._said_drops.get(reason, 0)
                if new > 0:
                    report(f"dropped:{reason}", f"{new} records dropped: {DROP_REASONS.get(reason, reason)}")
            self._said_drops = dict(dropped)

    def settle_barriers(self) -> None:
        """Set the barriers whose records are all settled; forget those whose flush gave up."""
        barriers = self.barriers
        if not barriers:
            return
        producer, spill = self.session.producer, self.spill
        spool, now = spill.spool, time.monotonic()
        if ((producer is None or not len(producer)) and not self.deliveries.failures and not spill.held
                and not self.replaying()):
            clear_to = self.replay.clear_to if self.replay is not None else -1
            waiting = []
            for barrier in barriers:
                if not spill.spooling or spill.empty() or (
                        barrier.mark <= clear_to and not (spool and spool.own_index_at_most(barrier.mark))):
                    barrier.event.set()
                elif barrier.deadline > now:
                    waiting.append(barrier)
            barriers[:] = waiting
        else:
            barriers[:] = [b for b in barriers if b.deadline > now]

    def _holding(self) -> bool:
        """Whether new records wait in memory while the spool's last segment is replayed: only while a broker
        answers, and not longer than the replay allows (then they go to the spool again)."""
        replay = self.replay
        if replay is None or not replay.hand_over_until:
            return False
        link = self.link
        if not link.fatal and link.broker_reachable is True and time.monotonic() < replay.hand_over_until:
            return True
        replay.hand_over_until = 0.0
        return False

    def replaying(self) -> bool:
        """Whether a spool segment is being replayed."""
        return self.replay is not None and self.replay.segment is not None

    # -- a new producer, the end ----------------------------------------------------------------
    def renew(self, producer: Producer) -> Producer:
        """A fatal producer error: what the old producer held goes through the spool; a new one is made."""
        left = self.session.retire(producer)
        if self.replay is not None:
            self.replay.settle(left)
        return self.session.make()

    def finish(self, producer: Producer, stop_at: float) -> None:
        """Wait for acknowledgements until ``stop_at`` (the reaper stopped); what is left then is spooled (or
        has failed). One line says what became of the records the broker did not acknowledge, written after
        the spool write, so "in the spool" is said only when true."""
        spill, deliveries = self.spill, self.deliveries
        spool = spill.spool
        spooled_before = spool.spooled if spool is not None else 0
        lost_before, failed_before = spill.lost, deliveries.failed
        left = 0
        unsettled = len(producer) or len(spill.held)
        if spool is not None and self.exiting:
            spool.ending()
        spill.quiet = True
        try:
            if unsettled:
                left = self.session.purge(producer)  # the records left report as failed (purged): spooled
            else:
                spill.handle_failures()
            self.session.producer = None
            if self.replay is not None:
                self.replay.settle(left)
            spill.commit()  # what the disk refuses now is held, for one more try below
            spill.keep_held()
            if spool is not None:
                spool.close()
                spill.keep_held()
        finally:
            spill.quiet = False
        self.settle_barriers()
        if unsettled:
            _say_unsettled(self.topic, self._flush_timeout, self.link, spill,
                           (spool.spooled if spool is not None else 0) - spooled_before, spill.lost - lost_before,
                           deliveries.failed - failed_before)

    # -- state, for the handler --------------------------------------------------------------------
    def settled(self) -> bool:
        """Whether nothing waits here: nothing held by the producer, nothing left in the spool to send."""
        producer, spill = self.session.producer, self.spill
        return (not self.in_hand and not (producer is not None and len(producer)) and not self.deliveries.failures
                and not spill.held and (not spill.spooling or spill.empty()))

    def spooled_waiting(self) -> int:
        """This process's records waiting in the spool (written or about to be), not sent again yet."""
        spool = self.spill.spool
        if spool is None:
            return 0
        return spool.waiting() + (self.replay is not None and self.replay.next is not None)

    def stats(self, running: bool) -> WorkerStats:
        """The worker's counts now."""
        d, link, spill = self.deliveries, self.link, self.spill
        spool = spill.spool
        return WorkerStats(
            topic=self.topic, running=running, produced=d.produced, delivered=d.delivered(), failed=d.failed,
            in_flight=d.in_flight(), by_topic=d.by_topic(self.topic), latency=d.latency(),
            held=len(spill.held) + self.awaiting_room + spill.front_waiting(), spooling=spill.spooling,
            spooled_waiting=self.spooled_waiting(), lost_to_disk=spill.lost,
            replayed=self.replay.replayed if self.replay is not None else 0,
            rebuilds=self.session.rebuilds, truncated=self.messages.truncated, errors=link.errors,
            error_counts=dict(link.error_counts), last_error=link.last_error,
            broker_reachable=link.broker_reachable, trouble_s=link.trouble_for(),
            spool=SpoolCounts.of(spool) if spool is not None else None)


def _room_in_a_burst(sender: Sender, producer: Producer, message: Message) -> bool:
    """librdkafka's buffer is full in a burst, not an outage: serve reports until it takes ``message``,
    while the broker keeps acknowledging and the queue has room for the caller's records (the caller
    never waits on Kafka: once the queue fills, the backlog goes to the spool). True when ``message``
    was produced (or refused for good and counted)."""
    if sender.link.broker_reachable is not True or sender.stop_at is not None:
        return False
    deliveries, queue, limit = sender.deliveries, sender.queue, sender.room_limit
    topic, key, value, ts, headers = message
    report_to = deliveries.reporter(headers) if headers else None
    acks, progress = deliveries.delivered(), time.monotonic()
    while len(queue) < limit and sender.stop_at is None:
        producer.poll(_ROOM_POLL)
        try:
            producer.produce(topic, value, key, -1, report_to, None, ts, headers)
        except BufferError:
            now = time.monotonic()
            if deliveries.delivered() != acks:
                acks, progress = deliveries.delivered(), now
            elif now - progress >= ROOM_STALL:
                return False  # nothing acknowledged for a while: an outage, not a burst
            continue
        except (KafkaException, TypeError, ValueError) as exc:
            sender.spill.refused(exc, message)
            return True
        deliveries.produced += 1
        return True
    return False


def _produce_when_room(sender: Sender, producer: Producer, message: Message) -> None:
    """No spool: librdkafka's queue is full; serve reports until there is room for ``message`` (or the stop)."""
    sender.awaiting_room = 1
    try:
        topic, key, value, ts, headers = message
        said = time.monotonic()
        while True:
            producer.poll(0.05)
            if time.monotonic() - said >= 1.0:  # records dropped meanwhile are said while it waits
                said = time.monotonic()
                sender.say_news()
            if sender.stop_at is not None and time.monotonic() >= sender.stop_at:
                sender.deliveries.count_failed(topic)
                sender.link.last_error = "producer queue full at shutdown"
                return
            try:
                producer.produce(topic, value, key, timestamp=ts, headers=headers,
                                 on_delivery=sender.deliveries.reporter(headers) if headers else None)
            except BufferError:
                continue
            except (KafkaException, TypeError, ValueError) as exc:
                sender.spill.refused(exc)
                return
            sender.deliveries.produced += 1
            return
    finally:
        sender.awaiting_room = 0
