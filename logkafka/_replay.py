"""Replaying the spool: its segments handed to the producer again, oldest first, once a broker answers,
with the progress of each segment committed in steps so that a kill re-sends at most one step."""

from __future__ import annotations

import os
import time
from typing import Any

from confluent_kafka import KafkaException

from logkafka._delivery import Deliveries, keeps_record
from logkafka._link import PROBE_EVERY, Link
from logkafka._queue import Barrier
from logkafka._report import report
from logkafka._spill import Spill
from logkafka._spool import SUFFIX, Segment, Spool, SpooledRecord

_REPLAY_BATCH = 2000  # spooled records produced per turn of the loop
#: Records of a segment replayed between two commits of its progress (``<segment>.pos``): after a
#: kill, at most this many are sent again. At each step the replay waits until all are settled.
_PROGRESS_STEP = 10_000
#: The spool stops once a replay has caught up: when the segment left is this process's open one and at most
#: this big, new records wait in memory while it is produced and settled, instead of following it to disk
#: (records logged without a pause would otherwise keep the spool going as long as they come).
_HANDOVER_BYTES = 1 << 20
_HANDOVER_WAIT = 1.0  # seconds records may wait in memory for the last segment; then they go to disk again


class Replay:
    """The segment being replayed and how far it got."""

    def __init__(self, spool: Spool, *, topic: str, spill: Spill, link: Link, deliveries: Deliveries,
                 barriers: list[Barrier]) -> None:
        self._spool = spool
        self._topic = topic
        self._spill = spill
        self._link = link
        self._deliveries = deliveries
        self._barriers = barriers  # the worker's waiting flushes (a list changed in place)
        self.segment: Segment | None = None  # the segment being replayed
        self._records: Any = None
        self.next: SpooledRecord | None = None  # read, not yet accepted by the producer
        self._produced = False  # the whole segment was handed to the producer
        self._since_progress = 0  # records of the segment produced since its progress was committed
        self.replayed = 0  # spooled records handed to the producer again
        #: The highest barrier mark whose segments were all found settled. When the spool held records at the
        #: start (an earlier run's), none: a flush waits until a look has found them sent.
        self.clear_to = -1 if spool.pending() else 0
        #: Until when new records wait in memory for the last segment (see ``_HANDOVER_BYTES``); 0: they do not.
        self.hand_over_until = 0.0

    def step(self, producer: Any) -> None:
        """Hand spooled records to the producer, oldest first, once the broker answers.

        A segment's progress is committed every ``_PROGRESS_STEP`` records, once all of
        them are settled; the segment is deleted when all its records are settled:
        acknowledged, or failed and spooled again. When no segment is left, spooling
        stops. While a flush waits, only the segments it covers are taken (this
        process's up to its mark, and other processes' left-overs), not newer ones.
        """
        if self.segment is None and not self._claim(producer):
            return
        segment = self.segment
        assert segment is not None
        if not self._produced:
            if self._spill.replay_failed:  # one of its records was not delivered (an outage): stop here
                if not len(producer):  # what it sent is settled: the failed ones went back ahead of it
                    if self._deliveries.failures:
                        self._spill.handle_failures()
                    self.settle(0)  # the rest waits in the segment, behind them
                return
            if self._since_progress >= _PROGRESS_STEP:
                if len(producer):
                    return  # a step is produced: wait until all of it is settled
                self._commit_step(segment)
            self._produce(producer)
        if self._produced and not len(producer):
            if self._deliveries.failures:  # reports served since the drain: spool those records first
                self._spill.handle_failures()
            self._spill.commit()
            segment.delete()
            self.segment = self._records = self._spill.replay_stem = None
            self._spill.replay_failed = False

    def _claim(self, producer: Any) -> bool:
        """Claim the next segment to replay; False when there is none (or the broker is not known to answer)."""
        spool, link = self._spool, self._link
        if self._spill.front_waiting() or self._deliveries.in_flight():
            return False  # records failing now go back ahead of what is spooled: wait for their reports
        now = time.monotonic()
        if link.broker_reachable is not True:  # unknown or away: look first (no produce-then-purge cycles)
            if len(producer):
                return False  # librdkafka still holds records: their acknowledgements will tell
            if now < link.next_probe:
                return False
            link.next_probe = now + PROBE_EVERY
            if not link.probe(producer, self._topic):
                return False
        mark = min((b.mark for b in self._barriers), default=None)
        written = spool.spooled  # a write from now on (a caller's, with "disk") makes the look stale
        born = min((b.born_ns for b in self._barriers), default=None)
        segment = spool.claim(mark, born)
        if segment is None and (mark is None or spool.open_index() <= mark):
            spool.rotate()  # our own open segment, if it holds anything
            segment = spool.claim(mark, born)
            if segment is not None and mark is None and not self._spill.disk and _unread(segment) <= _HANDOVER_BYTES:
                self.hand_over_until = now + _HANDOVER_WAIT  # caught up: this is the last segment
        if segment is None:
            self.hand_over_until = 0.0
            if mark is not None:
                self.clear_to = max(self.clear_to, mark)  # later writes go to newer segments
                return False
            self._spill.found_empty(written)
            if not self._spill.disk:
                self._spill.spooling = False
                report("spooling", "spool replayed: records go to Kafka again")
            return False
        self.segment, self._records, self._produced = segment, segment.records(), False
        self._spill.replay_stem = os.path.basename(segment.path)[:-len(SUFFIX)]
        self._since_progress = 0
        return True

    def _commit_step(self, segment: Segment) -> None:
        """Every record of the segment produced so far is settled: say so in its progress file."""
        if self._deliveries.failures:
            self._spill.handle_failures()
        self._spill.commit()
        rest = self.next
        segment.commit_progress(segment.offset - (rest.size if rest is not None else 0))
        self._since_progress = 0

    def _produce(self, producer: Any) -> None:
        produce, reporter = producer.produce, self._deliveries.reporter
        n = 0
        try:
            while n < _REPLAY_BATCH and self._since_progress + n < _PROGRESS_STEP:
                rec = self.next
                if rec is None:
                    rec = next(self._records, None)
                    if rec is None:
                        self._produced = True
                        return
                try:
                    headers = rec.headers
                    produce(rec.topic, rec.value, rec.key, -1, reporter(headers) if headers else None, None,
                            rec.timestamp_ms, headers)
                except BufferError:
                    self.next = rec  # the next turn tries it again
                    return
                except (KafkaException, TypeError, ValueError) as exc:
                    if keeps_record(exc):  # the producer is finished: this record waits for the next one
                        self.next = rec
                        self._link.lose_producer(str(exc))
                        return
                    self.next = None
                    self._spill.refused(exc)
                    continue
                self.next = None
                n += 1
        finally:
            self._deliveries.produced += n
            self.replayed += n
            self._since_progress += n

    def settle(self, unreported: int) -> None:
        """End a replay stopped half way (at close, or before a new producer) without duplicates.

        The producer has been purged: what it had acknowledged is delivered and what it
        had not is back in the spool (its failure reports). So the segment's progress is
        committed up to the first record not produced, and the segment released: the rest
        is sent from there later. Only when some records gave no report at all is the
        progress left where it was (those records may then come twice).
        """
        self.hand_over_until = 0.0
        segment = self.segment
        if segment is None:
            return
        self.segment = self._spill.replay_stem = None  # its failures, handled already, keep their place
        self._spill.replay_failed = False
        rest, self.next = self.next, None
        self._records = None
        self._since_progress = 0
        if rest is not None:
            segment.unread(rest.size)
        if unreported:
            segment.release()
            return
        self._spill.commit()
        if self._produced:
            segment.delete()
        else:
            segment.commit_progress()
            segment.release()

    def let_go(self) -> None:
        """In a forked child: release the parent's segment (its lock would be shared with the child)."""
        segment, self.segment, self._records = self.segment, None, None
        self.hand_over_until = 0.0
        self._spill.replay_stem, self._spill.replay_failed = None, False
        if segment is not None:
            segment.release()


def _unread(segment: Segment) -> int:
    """Bytes of ``segment`` not replayed yet."""
    try:
        return os.path.getsize(segment.path) - segment.start
    except OSError:
        return _HANDOVER_BYTES + 1
