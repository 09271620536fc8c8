"""The viewer's memory: the recent entries of each stream (bounded in count and bytes), their rates,
and whether Kafka answers. The reading thread adds; the web requests read."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from logkafka._ui.entries import STREAMS, Entry, Query

#: Seconds of per-second rates kept for the chart, and minutes of error counts.
RATE_SECONDS = 120
ERROR_MINUTES = 15
_LEVEL_BANDS = ((40, "error"), (30, "warning"), (20, "info"), (0, "debug"))


class Newer(NamedTuple):
    """What came since a look: the entries, where the next look goes on from, entries gone unseen."""

    entries: list[Entry]
    upto: int
    lost: int


@dataclass
class KafkaState:
    """Whether the cluster answers, as the reading thread last saw it."""

    state: str = "connecting"  # "connecting", "ok" or "unreachable"
    since: float = 0.0  # epoch seconds of the last change
    error: str | None = None  # the client's words, while unreachable
    topics: tuple[str, ...] = ()  # the topics read now

    def to_json(self) -> dict[str, Any]:
        return {"kafka": self.state, "since": self.since, "error": self.error, "topics": list(self.topics)}


def _band(levelno: int | None) -> str:
    level = levelno if levelno is not None else 20
    return next(name for floor, name in _LEVEL_BANDS if level >= floor)


class Store:
    """Ring buffers of entries, one per stream, with a shared byte bound (the oldest entry goes first)."""

    def __init__(self, per_stream: int = 10_000, max_bytes: int = 64 << 20) -> None:
        self._lock = threading.Lock()
        self._rings: dict[str, deque[Entry]] = {s: deque() for s in STREAMS}
        self._per_stream = per_stream
        self._max_bytes = max_bytes
        self._bytes = 0
        self._seq = itertools.count(1)
        self.latest = 0  # the seq of the newest entry
        self.dropped = 0  # entries let go to stay within the bounds
        self.kafka = KafkaState(since=time.time())
        self._seconds: dict[int, dict[str, int]] = {}  # epoch second -> counts by level band
        self._error_minutes: dict[int, int] = {}  # epoch minute -> errors

    def next_seq(self) -> int:
        """The seq of the next entry (the reading thread numbers entries before adding them)."""
        return next(self._seq)

    def add(self, entries: Iterable[Entry]) -> None:
        """Keep ``entries`` (in seq order), letting the oldest go beyond the bounds; count them in the rates."""
        with self._lock:
            for e in entries:
                ring = self._rings[e.stream]
                ring.append(e)
                self._bytes += e.size
                self.latest = e.seq
                if len(ring) > self._per_stream:
                    self._bytes -= ring.popleft().size
                    self.dropped += 1
                self._count(e)
            while self._bytes > self._max_bytes:
                oldest = min((r for r in self._rings.values() if r), key=lambda r: r[0].seq)
                self._bytes -= oldest.popleft().size
                self.dropped += 1

    def _count(self, e: Entry) -> None:
        second = e.ts_ms // 1000
        now = int(time.time())
        if second > now - RATE_SECONDS and second <= now + 5:
            counts = self._seconds.setdefault(second, {})
            band = _band(e.levelno)
            counts[band] = counts.get(band, 0) + 1
        if e.levelno is not None and e.levelno >= 40 and second > now - ERROR_MINUTES * 60:
            minute = second // 60
            self._error_minutes[minute] = self._error_minutes.get(minute, 0) + 1
        if len(self._seconds) > RATE_SECONDS * 2:
            for old in [s for s in self._seconds if s <= now - RATE_SECONDS]:
                del self._seconds[old]
        if len(self._error_minutes) > ERROR_MINUTES * 2:
            for old in [m for m in self._error_minutes if m <= now // 60 - ERROR_MINUTES]:
                del self._error_minutes[old]

    def recent(self, query: Query, limit: int) -> list[Entry]:
        """The newest ``limit`` entries ``query`` selects, by their time across the streams, in time order.

        (A ring is in the order records were read, which is not time order across partitions: the whole
        buffer is looked at.)"""
        with self._lock:
            rings = [list(r) for s, r in self._rings.items() if not query.streams or s in query.streams]
        chosen = heapq.nlargest(limit, (e for ring in rings for e in ring if query(e)), key=lambda e: (e.ts_ms, e.seq))
        chosen.reverse()
        return chosen

    def newer(self, seq: int, query: Query, limit: int = 2000) -> Newer:
        """The entries added after ``seq`` that ``query`` selects, oldest first, at most ``limit``; where the
        next call goes on from, and how many added after ``seq`` are gone from the buffer unseen."""
        with self._lock:
            latest = self.latest
            if latest <= seq:
                return Newer([], seq, 0)
            tails = []
            oldest = latest + 1
            for ring in self._rings.values():
                tail = []
                for e in reversed(ring):
                    if e.seq <= seq:
                        break
                    tail.append(e)
                tail.reverse()
                tails.append(tail)
                if ring:
                    oldest = min(oldest, ring[0].seq)
        found: list[Entry] = []
        upto = latest
        for e in heapq.merge(*tails, key=lambda e: e.seq):
            if query(e):
                if len(found) == limit:
                    upto = found[-1].seq  # the rest the next call sends
                    break
                found.append(e)
        lost = max(0, oldest - seq - 1) if oldest <= latest else 0
        return Newer(found, upto, lost)

    def rates(self) -> dict[str, Any]:
        """Records per second by level over the last ``RATE_SECONDS`` seconds, errors per minute over the
        last ``ERROR_MINUTES`` minutes (by the records' own times)."""
        now = int(time.time())
        with self._lock:
            seconds = [{"t": s, **self._seconds.get(s, {})} for s in range(now - RATE_SECONDS + 1, now + 1)]
            minutes = [{"t": m * 60, "errors": self._error_minutes.get(m, 0)}
                       for m in range(now // 60 - ERROR_MINUTES + 1, now // 60 + 1)]
        return {"seconds": seconds, "minutes": minutes}

    def sizes(self) -> dict[str, Any]:
        """How much the store holds: entries by stream, bytes, entries let go."""
        with self._lock:
            return {"entries": {s: len(r) for s, r in self._rings.items()}, "bytes": self._bytes,
                    "dropped": self.dropped, "per_stream": self._per_stream, "max_bytes": self._max_bytes}
