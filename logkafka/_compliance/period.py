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
    """Epoch ms of an ISO 8601 date or time (UTC unless it says otherwise); a ``ValueError`` naming the option."""
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
              "enable.partition.eof": True, "auto.offset.reset": "earliest", "fetch.max.bytes": 16 << 20}
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
        yield from _consume(consumer, len(tps), period, progress, stopping)
    finally:
        consumer.close()


def _consume(consumer: Consumer, partitions: int, period: Period, progress: Callable[[int], None] | None,
             stopping: Callable[[], bool]) -> Iterator[Raw]:
    done: set[tuple[str, int]] = set()
    read = 0
    while len(done) < partitions and not stopping():
        batch = consumer.consume(2000, 1.0)
        for m in batch:
            err = m.error()
            where = (m.topic() or "", m.partition() or 0)
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    done.add(where)
                elif err.fatal():
                    raise PeriodError(f"the consumer failed: {err.str()}")
                continue
            if where in done:
                continue
            kind, stamp = m.timestamp()
            ts = 0 if kind == TIMESTAMP_NOT_AVAILABLE else stamp
            read += 1
            if ts >= period.end_ms + LATE_MS:  # well past the period: records replayed late are stamped
                done.add(where)                # when logged, and come after newer ones; LATE_MS covers them
                consumer.pause([TopicPartition(*where)])
                continue
            if ts < period.start_ms or ts >= period.end_ms:
                continue
            yield Raw(where[0], where[1], m.offset() or 0, ts, m.key(), m.value(), m.headers())
        if progress is not None:
            progress(read)
