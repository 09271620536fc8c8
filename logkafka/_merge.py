"""Records of several partitions merged into timestamp order, with a bounded look-ahead.

Kafka orders records within a partition only. A reader of several topics (the
application, audit and security streams) or partitions gets them in fetch
order: whole batches of one partition, then of another. :class:`TimeMerge`
holds what arrived and releases a record once no partition can still bring an
earlier one, or once it has waited ``window`` seconds, or when the held
records reach their memory bound; so the output is in time order wherever the
partitions' stamps allow it within that look-ahead, and memory stays bounded.

A partition *proves* it will bring nothing stamped before T when it has shown a
record stamped T or later, or when it reported its end at a wall-clock time of
T + ``window`` or later (a record stamped earlier would have reached the broker
by then, if producers' clocks agree with ours within the window).
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["MAX_HELD_BYTES", "MAX_HELD_RECORDS", "TimeMerge"]

T = TypeVar("T")

#: At most this many records are held for reordering; past it the earliest goes out.
MAX_HELD_RECORDS = 10_000
#: At most this many bytes of record values are held for reordering; past it the earliest goes out.
MAX_HELD_BYTES = 32 * 1024 * 1024

_NEVER = float("-inf")


@dataclass(order=True)
class _Held(Generic[T]):
    """One held record, ordered by (stamp, arrival)."""

    stamp: float
    seq: int
    arrived: float = field(compare=False)
    size: int = field(compare=False)
    item: T = field(compare=False)
    out: bool = field(default=False, compare=False)


class TimeMerge(Generic[T]):
    """Merges the records of ``partitions`` (any hashable keys) into timestamp order.

    Feed it with :meth:`add` and :meth:`end` as the consumer reports records and
    partition ends; take what may go out with :meth:`ready`, and everything left,
    in order, with :meth:`drain`. A record waits at most ``window`` seconds (on
    ``clock``) for the other partitions.
    """

    def __init__(
        self,
        partitions: Iterable[Hashable],
        *,
        window: float,
        max_records: int = MAX_HELD_RECORDS,
        max_bytes: int = MAX_HELD_BYTES,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if window < 0:
            raise ValueError(f"window must be 0 or more seconds, got {window!r}")
        if max_records < 1 or max_bytes < 1:
            raise ValueError("max_records and max_bytes must be positive")
        self.window = window
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._clock = clock
        self._wall = wall
        self._proven: dict[Hashable, float] = dict.fromkeys(partitions, _NEVER)  # ms stamps
        self._heap: list[_Held[T]] = []
        self._arrivals: deque[_Held[T]] = deque()  # in arrival order, for the window
        self._bytes = 0
        self._seq = 0

    def __len__(self) -> int:
        """How many records are held."""
        return len(self._heap)

    @property
    def held_bytes(self) -> int:
        """The total size of the held records, as given to :meth:`add`."""
        return self._bytes

    def add(self, partition: Hashable, item: T, stamp_ms: float | None, size: int = 0) -> None:
        """Hold ``item``, a record of ``partition`` stamped ``stamp_ms`` (None: unknown, taken as the
        partition's latest stamp, else now)."""
        proven = self._proven.get(partition, _NEVER)
        if stamp_ms is None:
            stamp_ms = proven if proven != _NEVER else self._wall() * 1000
        self._proven[partition] = max(proven, stamp_ms)
        held = _Held(stamp_ms, self._seq, self._clock(), size, item)
        self._seq += 1
        heapq.heappush(self._heap, held)
        self._arrivals.append(held)
        self._bytes += size

    def end(self, partition: Hashable) -> None:
        """``partition`` reported its end: it brings nothing stamped more than ``window`` before now."""
        floor = (self._wall() - self.window) * 1000
        self._proven[partition] = max(self._proven.get(partition, _NEVER), floor)

    def ready(self) -> Iterator[T]:
        """The records that may go out now, earliest first."""
        if not self._heap:
            return
        floor = min(self._proven.values(), default=_NEVER)
        due = self._clock() - self.window
        while self._heap:
            head = self._heap[0]
            if not (head.stamp <= floor or len(self._heap) > self.max_records or self._bytes > self.max_bytes
                    or self._oldest_arrival() <= due):
                return
            yield self._pop()

    def drain(self) -> Iterator[T]:
        """Every held record, earliest first."""
        while self._heap:
            yield self._pop()

    def wait_hint(self) -> float | None:
        """Seconds until the longest-held record must go out (0 when overdue); None when nothing is held."""
        if not self._heap:
            return None
        return max(0.0, self._oldest_arrival() + self.window - self._clock())

    def _oldest_arrival(self) -> float:
        while self._arrivals and self._arrivals[0].out:
            self._arrivals.popleft()
        return self._arrivals[0].arrived if self._arrivals else float("inf")

    def _pop(self) -> T:
        held = heapq.heappop(self._heap)
        held.out = True
        self._bytes -= held.size
        return held.item
