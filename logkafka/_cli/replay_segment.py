"""One spool segment sent by ``logkafka replay``: every record produced, every record's fate settled, and
the segment deleted or cut down to the records not acknowledged.

A segment is given back only once every one of its records has a definite delivery report (what is still
queued locally is purged, what is in flight is awaited), so no report can arrive after the rewrite and a
later replay never sends an acknowledged record again, also after Ctrl-C.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from confluent_kafka import KafkaError, KafkaException

from logkafka._cli.common import Interrupts
from logkafka._delivery import NO_TOPIC, PERMANENT
from logkafka._spool import Segment, SpooledRecord, clear_progress, line_of

#: A record's fate once its segment is settled: True (acknowledged), a KafkaError or a text (why not), None (unsent).
Outcome = Any


class Progress:
    """A one-line progress bar on stderr, redrawn at most ten times a second (only on a terminal)."""

    def __init__(self, total: int, stream: IO[str]) -> None:
        self.total = max(total, 0)
        self.done = 0
        self.stream = stream
        self.enabled = stream.isatty()
        self._drawn = 0.0

    def advance(self, n: int) -> None:
        """``n`` more records acknowledged."""
        self.done += n
        if self.enabled and time.monotonic() - self._drawn >= 0.1:
            self.draw()

    def draw(self) -> None:
        """Redraw the bar in place."""
        self._drawn = time.monotonic()
        total = max(self.total, self.done, 1)
        width = 30
        filled = int(width * self.done / total)
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(f"\rreplay [{bar}] {self.done}/{total} records ({100 * self.done // total}%)")
        self.stream.flush()

    def finish(self) -> None:
        """The bar's last state, and the line ended."""
        if self.enabled:
            self.draw()
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class ReplayTotals:
    """What a replay did so far, counted for its report."""

    records: int = 0  # sent and acknowledged (or counted, in a dry run)
    segments: int = 0  # deleted (or counted)
    held: int = 0  # segments a running process holds: skipped
    torn: int = 0  # unreadable lines skipped
    failed: int = 0  # records not acknowledged (kept in the spool)
    permanent: dict[str, int] = field(default_factory=dict)  # reason -> records that cannot go as they are
    transient: dict[str, int] = field(default_factory=dict)  # reason -> records to try again later
    unsure: int = 0  # purged while in flight (a second Ctrl-C): kept, may arrive twice
    kept: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the spool could not be rewritten, and such
    stopped: str | None = None  # why the run ended early (cluster unreachable)
    skipped: list[str] = field(default_factory=list)  # destinations whose later segments wait (order kept)


@dataclass
class Replay:
    """One replay run: where it sends, its limits, what it did so far, its progress bar and Ctrl-C."""

    producer: Any
    servers: str
    admin: Mapping[str, Any]  # the settings that ask whether the cluster still answers
    option: str | None  # the option those settings came from
    timeout: float  # seconds to send a segment and have its acknowledgements
    settle_limit: float  # seconds to wait for the reports of records in flight
    stop: Interrupts
    progress: Progress
    totals: ReplayTotals = field(default_factory=ReplayTotals)


# -- one segment --------------------------------------------------------------------------------

def replay_segment(replay: Replay, segment: Segment) -> bool:
    """Send one claimed segment, then settle every record's fate; True when all were acknowledged.

    The segment is deleted when all its records are acknowledged; otherwise the acknowledged ones are
    removed from it (atomic rewrite) before anything else happens, so no record is sent twice by a later
    replay. Only after every delivery report is in: none can arrive after the rewrite.
    """
    records = list(segment.records())
    replay.totals.torn += segment.torn
    outcomes = _send(replay, records)
    left = _tally(replay, records, outcomes)
    return _finish(replay.totals, segment, sent=len(records) - len(left), left=left)


def _send(replay: Replay, records: list[SpooledRecord]) -> list[Outcome]:
    """Produce ``records`` within the timeout (or until Ctrl-C), then settle them (:func:`_settle`): each
    one's :data:`Outcome`."""
    producer, stop = replay.producer, replay.stop
    outcomes: list[Outcome] = [None] * len(records)

    def report(index: int) -> Callable[[Any, Any], None]:
        def on_delivery(err: Any, msg: Any) -> None:
            outcomes[index] = True if err is None else err
            if err is None:
                replay.progress.advance(1)
        return on_delivery

    deadline = time.monotonic() + replay.timeout
    try:
        for i, rec in enumerate(records):
            if stop.count or time.monotonic() >= deadline:
                break
            refused = _produce(replay, rec, report(i), deadline)
            if refused is not None:
                outcomes[i] = refused
            producer.poll(0)
        while len(producer) and not stop.count and time.monotonic() < deadline:
            producer.poll(min(0.2, max(0.0, deadline - time.monotonic())))
    finally:
        _settle(producer, stop, replay.settle_limit)
    return outcomes


def _produce(replay: Replay, rec: SpooledRecord, on_delivery: Callable[[Any, Any], None],
             deadline: float) -> Outcome:
    """Hand one record to the producer; why the producer refused it at once (None: taken, or no room in time)."""
    producer = replay.producer
    while True:
        try:
            producer.produce(rec.topic, rec.value, rec.key, timestamp=rec.timestamp_ms,
                             headers=rec.headers, on_delivery=on_delivery)
            return None
        except BufferError:  # librdkafka's queue is full: serve reports until there is room
            producer.poll(0.1)
            if replay.stop.count or time.monotonic() >= deadline:
                return None
        except KafkaException as exc:  # refused at once, e.g. larger than message.max.bytes
            return exc.args[0] if exc.args else str(exc)
        except (TypeError, ValueError) as exc:
            return f"invalid record: {exc}"


def _settle(producer: Any, stop: Interrupts, limit: float) -> None:
    """Make every message of ``producer`` reach a definite delivery report, so none is delivered later.

    Messages still in librdkafka's queue are purged (never sent: they stay in the spool). Messages
    in flight may already be written by the broker, so their reports are awaited (``message.timeout.ms``
    bounds that; ``limit`` seconds at most). A second Ctrl-C, or ``limit``, purges them too: they count
    as not acknowledged, stay in the spool, and may arrive twice.
    """
    producer.purge(in_queue=True, in_flight=False, blocking=True)
    producer.poll(0)
    until = time.monotonic() + limit
    told = False
    while len(producer):
        if stop.count >= 2 or time.monotonic() >= until:
            producer.purge(in_queue=True, in_flight=True, blocking=True)
            end = time.monotonic() + 5.0
            while len(producer) and time.monotonic() < end:
                producer.poll(0.1)
            return
        if stop.count and not told:
            told = True
            print(f"\nlogkafka replay: interrupted: waiting for {len(producer)} records in flight "
                  "(Ctrl-C again stops now: they stay in the spool and may arrive twice)", file=sys.stderr,
                  flush=True)
        producer.poll(0.1)


def _tally(replay: Replay, records: list[SpooledRecord], outcomes: list[Outcome]) -> list[SpooledRecord]:
    """Count why records were not acknowledged (for good, or for now); the records that stay in the spool."""
    totals = replay.totals
    permanent = PERMANENT | NO_TOPIC
    unsent = "interrupted before it was sent" if replay.stop.count else f"not sent within {replay.timeout:g} s"
    left = []
    for rec, result in zip(records, outcomes, strict=True):
        if result is True:
            continue
        left.append(rec)
        if isinstance(result, KafkaError):
            reason = result.str()
            if result.code() in permanent:
                totals.permanent[reason] = totals.permanent.get(reason, 0) + 1
                continue
            if result.code() == KafkaError._PURGE_INFLIGHT:
                totals.unsure += 1
            elif result.code() == KafkaError._PURGE_QUEUE:
                reason = unsent
        elif isinstance(result, str):  # not a Kafka error: the record itself is bad
            totals.permanent[result] = totals.permanent.get(result, 0) + 1
            continue
        else:
            reason = unsent
        totals.transient[reason] = totals.transient.get(reason, 0) + 1
    return left


def _finish(totals: ReplayTotals, segment: Segment, *, sent: int, left: list[SpooledRecord]) -> bool:
    """Delete the segment when nothing is ``left``; else keep only those (``sent`` were acknowledged) and give
    it back. True when it was deleted."""
    totals.records += sent
    if not left:
        segment.delete()
        totals.segments += 1
        return True
    totals.failed += len(left)
    try:
        if sent:
            _rewrite(segment, left)  # acknowledged records are not sent twice
    except OSError as exc:
        totals.errors.append(f"could not rewrite {segment.path} ({exc}): its {sent} acknowledged records "
                             "will be sent again by the next replay")
    segment.release()
    totals.kept.append(segment.path)
    return False


def _rewrite(segment: Segment, records: list[SpooledRecord]) -> None:
    """Replace a claimed segment's content with ``records`` (the ones not acknowledged), atomically."""
    tmp = f"{segment.path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(b"".join(line_of(r.topic, r.key, r.value, r.timestamp_ms, r.headers) for r in records))
        f.flush()
        os.fsync(f.fileno())
    clear_progress(segment.path)  # first: a crash in between replays the old file whole (duplicates, no gap)
    os.replace(tmp, segment.path)

