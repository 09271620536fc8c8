"""A period of topics, read by timestamp: from the offsets for its start to past its end, once.

No consumer group is joined and nothing is committed. A broker's offset lookups may be inexact (the
test broker's are): records stamped before the start are skipped, and a partition's end is known from
the broker's end-of-partition event, not from its end offset.
"""

from __future__ import annotations

import calendar
import datetime
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from logkafka._topics import offsets_for_time

#: How far past the period's end a partition is read: a record logged in the period and delivered later (from
#: the spool, after an outage) follows newer records in its partition, stamped when it was logged.
LATE_MS = 6 * 3600 * 1000


#: How far in record time a partition may run ahead of the slowest one before it is paused.
AHEAD_MS = 120_000


class PeriodError(Exception):
    """The period cannot be read, said plainly (a bad period, a cluster that does not answer, a failed read)."""


@dataclass(frozen=True)
class Period:
    """``[start_ms, end_ms)`` in epoch milliseconds, UTC."""

    start_ms: int
    end_ms: int

    def json(self) -> dict[str, str]:
        return {"from": _iso(self.start_ms), "to": _iso(self.end_ms)}


@dataclass(slots=True)
class Raw:
    """One message as read: where it is, its time, key, value and headers."""

    topic: str
    partition: int
    offset: int
    ts_ms: int
    key: bytes | None
    value: bytes | None
    headers: Any  # list of (name, bytes) pairs, or None


def _iso(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def _when(text: str, name: str) -> int:
    """Epoch ms of an ISO 8601 date or time (UTC unless it says otherwise), or of epoch milliseconds; a
    ``ValueError`` naming the option."""
    if text.strip().isdigit():
        return int(text)
    try:
        stamp = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name}: expected an ISO 8601 date or time (2026-11-01, 2026-11-01T12:00:00Z), "
                         f"got {text!r}") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    return int(stamp.timestamp() * 1000)


def period_of(month: str | None, since: str | None, until: str | None, now_ms: int | None = None) -> Period:
    """The period of ``--month YYYY-MM``, or ``--since`` / ``--until`` (default: the last 30 days up to now)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if month is not None:
        if since is not None or until is not None:
            raise ValueError("--month: give either --month or --since/--until, not both")
        try:
            year, mon = (int(p) for p in month.split("-"))
            first = datetime.datetime(year, mon, 1, tzinfo=datetime.timezone.utc)
        except ValueError:
            raise ValueError(f"--month: expected YYYY-MM (2026-11), got {month!r}") from None
        days = calendar.monthrange(year, mon)[1]
        start = int(first.timestamp() * 1000)
        return Period(start, start + days * 86_400_000)
    end = _when(until, "--until") if until is not None else now_ms
    start = _when(since, "--since") if since is not None else end - 30 * 86_400_000
    if end <= start:
        raise ValueError("--until: the period ends before it starts")
    return Period(start, end)


def read_period(consumer_config: Mapping[str, Any], topics: Sequence[str], period: Period, *,
                progress: Callable[[int], None] | None = None, stopping: Callable[[], bool] = lambda: False,
                missing: Callable[[str], None] | None = None) -> Iterator[Raw]:
    """Every message of ``topics`` stamped in ``period``, each once (partitions read side by side)."""
    config = {**consumer_config, "group.id": f"logkafka-report-{uuid.uuid4().hex}", "enable.auto.commit": False,
              "enable.partition.eof": True, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 10}
    consumer = Consumer(config)
    try:
        try:
            metadata = consumer.list_topics(timeout=10)
        except KafkaException as exc:
            raise PeriodError(f"Kafka does not answer: {exc}") from None
        tps = []
        for name in topics:
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None or not topic.partitions:
                if missing is not None:
                    missing(name)
                continue
            tps += [TopicPartition(name, p) for p in sorted(topic.partitions)]
        if not tps:
            return
        consumer.assign(offsets_for_time(consumer, tps, period.start_ms, unanswered=OFFSET_BEGINNING))
        yield from _consume(consumer, [(tp.topic, tp.partition) for tp in tps], period, progress, stopping)
    finally:
        consumer.close()


def _consume(consumer: Consumer, partitions: list[tuple[str, int]], period: Period,
             progress: Callable[[int], None] | None, stopping: Callable[[], bool]) -> Iterator[Raw]:
    done: set[tuple[str, int]] = set()
    pace = _Pace(consumer, partitions)
    read = 0
    while len(done) < len(partitions) and not stopping():
        batch = consumer.consume(2000, 1.0)
        for m in batch:
            err = m.error()
            where = (m.topic() or "", m.partition() or 0)
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    done.add(where)
                    pace.ended(where)
                elif err.fatal():
                    raise PeriodError(f"the consumer failed: {err.str()}")
                continue
            if where in done:
                continue
            kind, stamp = m.timestamp()
            ts = 0 if kind == TIMESTAMP_NOT_AVAILABLE else stamp
            read += 1
            pace.saw(where, ts)
            if ts >= period.end_ms + LATE_MS:  # well past the period: records replayed late are stamped
                done.add(where)                # when logged, and come after newer ones; LATE_MS covers them
                pace.ended(where)
                consumer.pause([TopicPartition(*where)])
                continue
            if ts < period.start_ms or ts >= period.end_ms:
                continue
            yield Raw(where[0], where[1], m.offset() or 0, ts, m.key(), m.value(), m.headers())
        pace.adjust()
        if progress is not None:
            progress(read)


class _Pace:
    """Keeps the partitions within ``AHEAD_MS`` of record time of each other (a partition far ahead is paused
    until the others catch up): a writer's records, spread over partitions, then come nearly in its order, and
    whoever sorts them (the chain's check) holds few."""

    def __init__(self, consumer: Consumer, partitions: list[tuple[str, int]]) -> None:
        self._consumer = consumer
        self._latest: dict[tuple[str, int], int] = dict.fromkeys(partitions, -1)  # -1: nothing seen yet
        self._ended: set[tuple[str, int]] = set()
        self._paused: set[tuple[str, int]] = set()

    def saw(self, where: tuple[str, int], ts: int) -> None:
        if ts > self._latest.get(where, -1):
            self._latest[where] = ts

    def ended(self, where: tuple[str, int]) -> None:
        self._ended.add(where)
        self._paused.discard(where)

    def adjust(self) -> None:
        going = [w for w in self._latest if w not in self._ended]
        if not going:
            return
        floor = min(self._latest[w] for w in going if w not in self._paused) if any(
            w not in self._paused for w in going) else min(self._latest[w] for w in going)
        ahead = {w for w in going if self._latest[w] > floor + AHEAD_MS} - self._paused
        behind = {w for w in self._paused if self._latest[w] <= floor + AHEAD_MS // 2 or w in self._ended}
        if ahead:
            self._consumer.pause([TopicPartition(*w) for w in ahead])
            self._paused |= ahead
        if behind:
            self._consumer.resume([TopicPartition(*w) for w in behind])
            self._paused -= behind
