"""Reading back in time: the records of a time range, a page at a time, found by their timestamps.

Each request uses a consumer of its own that assigns the partitions itself (no group, nothing committed)
at the offsets for the range's start (or where the previous page stopped: the cursor), reads forward to
the range's end, and keeps what the query selects. Every request is bounded: a page of records, and at
most ``scan`` records read or ``budget`` seconds spent; the cursor then says where to go on.
"""

from __future__ import annotations

import base64
import heapq
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from logkafka._topics import offsets_for_time
from logkafka._ui.entries import Entry, Query, entry_of

_TIMEOUT = 5.0  # seconds for metadata and offset lookups


class HistoryError(Exception):
    """The range cannot be read (the cluster does not answer, a bad cursor): said to the page as it is."""


@dataclass
class Page:
    """One page of a range: its entries in time order, and where the next page starts (None: the range is done)."""

    entries: list[Entry]
    cursor: str | None
    scanned: int
    stopped: str | None = None  # why the page ended before the range did ("scan limit", "time budget")


@dataclass
class _Partition:
    tp: TopicPartition  # where this page begins reading (OFFSET_END: at the partition's end)
    kept: list[Entry] = field(default_factory=list)
    next: int = OFFSET_END  # the offset after the last record read (OFFSET_END while none was read)
    done: bool = False  # past the range's end, or at the partition's end


def encode_cursor(positions: Mapping[str, int], from_ms: int, to_ms: int) -> str:
    """A cursor: the next offset of each partition, and the range, as URL-safe text."""
    data = json.dumps({"p": positions, "f": from_ms, "t": to_ms}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dict[str, int], int, int]:
    """The positions and range of a cursor; :class:`HistoryError` for one that is not ours."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        positions = {str(k): int(v) for k, v in data["p"].items()}
        return positions, int(data["f"]), int(data["t"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise HistoryError(f"cursor: not a cursor of this viewer ({exc})") from None


class RangeReader:
    """Reads pages of a time range from ``topics`` (see the module docstring)."""

    def __init__(self, consumer_config: Mapping[str, Any], topic_streams: Mapping[str, str], *,
                 scan: int = 200_000, budget: float = 5.0) -> None:
        self._config = {**consumer_config, "group.id": f"logkafka-ui-{uuid.uuid4().hex}",
                        "enable.auto.commit": False, "enable.partition.eof": True,
                        "auto.offset.reset": "earliest"}
        self._topic_streams = dict(topic_streams)
        self._scan = scan
        self._budget = budget

    def page(self, query: Query, from_ms: int, to_ms: int, limit: int, cursor: str | None = None) -> Page:
        """The first ``limit`` records of ``[from_ms, to_ms]`` that ``query`` selects, from ``cursor`` on."""
        positions = None
        if cursor:
            positions, from_ms, to_ms = decode_cursor(cursor)
        consumer = Consumer(self._config)
        try:
            parts = self._partitions(consumer, from_ms, positions)
            scanned, stopped = self._read(consumer, parts, query, from_ms, to_ms, limit)
        finally:
            consumer.close()
        return self._paginate(parts, limit, from_ms, to_ms, scanned, stopped)

    def _partitions(self, consumer: Consumer, from_ms: int, positions: Mapping[str, int] | None) -> list[_Partition]:
        try:
            metadata = consumer.list_topics(timeout=_TIMEOUT)
        except KafkaException as exc:
            raise HistoryError(f"Kafka does not answer: {exc}") from None
        tps = [TopicPartition(name, p) for name in self._topic_streams
               if (t := metadata.topics.get(name)) is not None and t.error is None
               for p in sorted(t.partitions)]
        if positions is None:  # (a broker's lookup may be inexact: records stamped before from_ms are skipped)
            tps = offsets_for_time(consumer, tps, from_ms, timeout=_TIMEOUT, unanswered=OFFSET_BEGINNING)
        else:
            tps = [TopicPartition(tp.topic, tp.partition, positions.get(f"{tp.topic}/{tp.partition}", OFFSET_END))
                   for tp in tps]
        return [_Partition(tp, next=tp.offset) for tp in tps]

    def _read(self, consumer: Consumer, parts: Sequence[_Partition], query: Query, from_ms: int, to_ms: int,
              limit: int) -> tuple[int, str | None]:
        """Read the partitions forward until each is past the range, at its end (the broker says so: its
        offset lookups may be inexact), or holds ``limit`` selected records."""
        live = {(p.tp.topic, p.tp.partition): p for p in parts}
        consumer.assign([p.tp for p in parts])
        scanned, deadline = 0, time.monotonic() + self._budget
        while live:
            if scanned >= self._scan:
                return scanned, "scan limit"
            if time.monotonic() >= deadline:
                return scanned, "time budget"
            for m in consumer.consume(1000, 0.5):
                key = (m.topic() or "", m.partition() or 0)
                part = live.get(key)
                if part is None:
                    continue
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        part.done = True
                        del live[key]
                    continue
                scanned += 1
                part.next = (m.offset() or 0) + 1
                kind, stamp = m.timestamp()
                entry = entry_of(0, m.topic() or "", m.partition() or 0, m.offset() or 0, m.value(),
                                 None if kind == TIMESTAMP_NOT_AVAILABLE else stamp, m.key(), m.headers(),
                                 self._topic_streams)
                if entry.ts_ms > to_ms:
                    part.done = True
                elif entry.ts_ms >= from_ms and query(entry):
                    part.kept.append(entry)
                if part.done or len(part.kept) >= limit:
                    consumer.pause([TopicPartition(*key)])
                    del live[key]
        return scanned, None

    @staticmethod
    def _paginate(parts: Sequence[_Partition], limit: int, from_ms: int, to_ms: int, scanned: int,
                  stopped: str | None) -> Page:
        """The first ``limit`` kept records in time order; the cursor resumes each partition after what was
        shown (or where reading stopped, when all it kept was shown)."""
        merged = list(heapq.merge(*(p.kept for p in parts), key=lambda e: (e.ts_ms, e.id)))
        shown = merged[:limit]
        shown_ids = {e.id for e in shown}
        resume: dict[str, int] = {}
        taken: dict[str, int] = {}
        for e in shown:
            name, partition, offset = e.id.rsplit("/", 2)
            taken[f"{name}/{partition}"] = int(offset) + 1
        finished = True
        for p in parts:
            key = f"{p.tp.topic}/{p.tp.partition}"
            left = [e for e in p.kept if e.id not in shown_ids]
            if left:  # selected, not shown: the next page starts at the first of them
                resume[key] = int(left[0].id.rsplit("/", 1)[1])
                finished = False
            else:
                resume[key] = max(p.next, taken.get(key, p.tp.offset))
                finished = finished and p.done
        cursor = None if finished and stopped is None else encode_cursor(resume, from_ms, to_ms)
        return Page(shown, cursor, scanned, stopped)
