"""The queue between the callers and a worker: its flush barriers and the records dropped before it."""

from __future__ import annotations

import itertools
import threading
import time

#: Threads that belong to logkafka: a record logged on one of them never
#: re-enters a KafkaLogHandler (no recursion, whatever logger it is on).
WORKER_IDENTS: set[int] = set()

#: Seconds without an acknowledgement after which a wait on Kafka for room in a full queue or buffer gives up
#: (a caller's, or the handler's thread's in a burst): Kafka takes nothing, so it is an outage, not a burst.
ROOM_STALL = 0.25

#: Why records were dropped before they reached the producer, in plain words.
DROP_REASONS = {
    "queue_full": "the in-memory queue was full",
    "drop_newest": "the in-memory queue was full (overflow='drop_newest')",
    "drop_oldest": "the in-memory queue was full: the oldest records made room (overflow='drop_oldest')",
    "block_timeout": "the in-memory queue stayed full for block_timeout (overflow='block')",
    "after_shutdown": "they were logged after logging shut down, and there is no spool to keep them",
}


def count_of(counter: itertools.count[int]) -> int:
    """The next value of an ``itertools.count`` without taking it (its repr: ``count(N)``)."""
    return int(repr(counter)[6:-1])


class Barrier:
    """A marker in the queue: set once every record queued before it is settled.

    Draining pauses while a barrier waits, until its ``deadline``: after that
    the flusher has given up and the barrier is dropped, so a flush that timed
    out during an outage never stalls the records behind it. ``mark`` is the
    spool's segment index when the worker reached it: the barrier also waits
    for this process's segments up to that one (records written before it).
    """

    __slots__ = ("born_ns", "deadline", "event", "mark")

    def __init__(self, deadline: float) -> None:
        self.event = threading.Event()
        self.deadline = deadline
        self.mark = 0
        self.born_ns = time.time_ns()  # other processes' segments made later are not waited for


class Drops:
    """Records dropped before a worker took them, by reason (any thread counts; the worker says them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, reason: str) -> None:
        """Count one record dropped for ``reason`` (a key of :data:`DROP_REASONS`)."""
        with self._lock:
            self._counts[reason] = self._counts.get(reason, 0) + 1

    def counts(self) -> dict[str, int]:
        """The records dropped so far, by reason."""
        with self._lock:
            return dict(self._counts)
