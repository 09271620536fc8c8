"""Records of several partitions merged into timestamp order, with a bounded look-ahead.

Kafka orders records within a partition only. A reader of several topics (the
application, audit and security streams) or partitions gets them in fetch
order: whole batches of one partition, then of another. :class:`TimeMerge`
holds what arrived and releases a record once no partition can still bring an
earlier one; so the output is in time order wherever the partitions' stamps
allow it within the look-ahead, and memory stays bounded.

A partition *proves* it will bring nothing stamped before T when it has shown a
record stamped T or later, or when it reported its end at a wall-clock time of
T + ``window`` or later (a record stamped earlier would have reached the broker
by then, if producers' clocks agree with ours within the window).

A record that a partition holds back goes out anyway once it has waited
``window`` seconds, if that partition is *silent*: at its end, or without a
report for ``grace`` seconds. One that owes a report (just assigned or resumed,
or it sent records and not yet its end) is waited for up to ``grace``. Past the
memory bound the earliest record goes out; :meth:`TimeMerge.ahead` names the
partitions a reader should pause so that the bound is not reached.
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

#: At most this many records are held for reordering; past it the earliest goes out. (A fetch brings up to
#: 1 MiB per partition: tens of thousands of small records of one partition before the next one's.)
MAX_HELD_RECORDS = 100_000
#: At most this many bytes of record values are held for reordering; past it the earliest goes out.
MAX_HELD_BYTES = 64 * 1024 * 1024

_NEVER = float("-inf")


@dataclass(order=True, slots=True)
class _Held(Generic[T]):
    """One held record, ordered by (stamp, arrival)."""

    stamp: float
    seq: int
    partition: Hashable = field(compare=False)
    arrived: float = field(compare=False)
    size: int = field(compare=False)
    item: T = field(compare=False)
    out: bool = field(default=False, compare=False)


class TimeMerge(Generic[T]):
    """Merges the records of ``partitions`` (any hashable keys) into timestamp order.

    Feed it with :meth:`add` and :meth:`end` as the consumer reports records and
    partition ends; take what may go out with :meth:`ready`, and everything left,
    in order, with :meth:`drain`. A record waits ``window`` seconds (on ``clock``)
    for silent partitions, ``grace`` seconds for those that owe a report.
    """

    def __init__(
        self,
        partitions: Iterable[Hashable],
        *,
        window: float,
        grace: float = 5.0,
        max_records: int = MAX_HELD_RECORDS,
        max_bytes: int = MAX_HELD_BYTES,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if window < 0:
            raise ValueError(f"window must be 0 or more seconds, got {window!r}")
        if grace < 0:
            raise ValueError(f"grace must be 0 or more seconds, got {grace!r}")
        if max_records < 1 or max_bytes < 1:
            raise ValueError("max_records and max_bytes must be positive")
        self.window = window
        self.grace = grace
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._clock = clock
        self._wall = wall
        self._proven: dict[Hashable, float] = dict.fromkeys(partitions, _NEVER)  # ms stamps
        self._heap: list[_Held[T]] = []
        self._arrivals: deque[_Held[T]] = deque()  # in arrival order, for the window
        self._counts: dict[Hashable, int] = {}
        self._sizes: dict[Hashable, int] = {}
        shares = 2 * max(1, len(self._proven))  # half the bound shared out; the rest for the overshoot
        self._share_records = min(20_000, max(100, max_records // shares))
        self._share_bytes = max(1, max_bytes // shares)
        #: partition -> until when (clock) it is waited for beyond the window: one that sent records and not
        #: yet its end has more, or its end, to send (a consumer reports the end each time it reaches it)
        self._expected: dict[Hashable, float] = dict.fromkeys(self._proven, clock() + grace)
        self._bytes = 0
        self._seq = 0

    def __len__(self) -> int:
        """How many records are held."""
        return len(self._heap)

    @property
    def held_bytes(self) -> int:
        """The total size of the held records, as given to :meth:`add`."""
        return self._bytes

    def held(self, partition: Hashable) -> int:
        """How many records of ``partition`` are held."""
        return self._counts.get(partition, 0)

    def ahead(self) -> list[Hashable]:
        """The partitions holding their share of the bound or more: a reader pauses them until
        :meth:`behind` (a broker may send a whole partition before the next one; without a pause, the
        bound would let records out of order)."""
        return [key for key, n in self._counts.items()
                if n >= self._share_records or self._sizes.get(key, 0) >= self._share_bytes]

    def behind(self, partition: Hashable) -> bool:
        """Whether ``partition`` holds half its share or less (a paused one may go on)."""
        return (self._counts.get(partition, 0) <= self._share_records // 2
                and self._sizes.get(partition, 0) <= self._share_bytes // 2)

    def expect(self, partition: Hashable) -> None:
        """``partition`` has records or its end to send (it was resumed after a pause): records wait for it
        beyond the window, for up to ``grace`` seconds from now, as after its assignment or a record."""
        self._expected[partition] = self._clock() + self.grace

    def add(self, partition: Hashable, item: T, stamp_ms: float | None, size: int = 0) -> None:
        """Hold ``item``, a record of ``partition`` stamped ``stamp_ms`` (None: unknown, taken as the
        partition's latest stamp, else now)."""
        proven = self._proven.get(partition, _NEVER)
        if stamp_ms is None:
            stamp_ms = proven if proven != _NEVER else self._wall() * 1000
        self._proven[partition] = max(proven, stamp_ms)
        now = self._clock()
        self._expected[partition] = now + self.grace
        held = _Held(stamp_ms, self._seq, partition, now, size, item)
        self._counts[partition] = self._counts.get(partition, 0) + 1
        self._sizes[partition] = self._sizes.get(partition, 0) + size
        self._seq += 1
        heapq.heappush(self._heap, held)
        self._arrivals.append(held)
        self._bytes += size

    def end(self, partition: Hashable) -> None:
        """``partition`` reported its end: it brings nothing stamped more than ``window`` before now."""
        floor = (self._wall() - self.window) * 1000
        self._proven[partition] = max(self._proven.get(partition, _NEVER), floor)
        self._expected.pop(partition, None)

    def ready(self) -> Iterator[T]:
        """The records that may go out now, earliest first."""
        if not self._heap:
            return
        floor = min(self._proven.values(), default=_NEVER)
        now = self._clock()
        while self._heap:
            head = self._heap[0]
            if not (head.stamp <= floor or len(self._heap) > self.max_records or self._bytes > self.max_bytes
                    or self._due(head, now) <= now):
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
        now = self._clock()
        return max(0.0, self._due(self._heap[0], now) - now)

    def _due(self, head: _Held[T], now: float) -> float:
        """When ``head`` goes out at the latest: the window after the longest-held record's arrival, or
        later while only expected partitions hold it back."""
        due = self._oldest_arrival() + self.window
        waits = []
        for key, proven in self._proven.items():
            if proven < head.stamp:
                until = self._expected.get(key, _NEVER)
                if until <= now:
                    return due  # a silent partition holds it back: the window applies
                waits.append(until)
        return max(due, min(waits)) if waits else due

    def _oldest_arrival(self) -> float:
        while self._arrivals and self._arrivals[0].out:
            self._arrivals.popleft()
        return self._arrivals[0].arrived if self._arrivals else float("inf")

    def _pop(self) -> T:
        held = heapq.heappop(self._heap)
        held.out = True
        self._bytes -= held.size
        self._counts[held.partition] -= 1
        self._sizes[held.partition] -= held.size
        return held.item
