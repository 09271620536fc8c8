"""How a handler's ``memory_budget`` is shared between its queues and its producers' buffers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from logkafka._values import byte_size, positive

DEFAULT_MEMORY_BUDGET = 16 << 20  # bytes per handler: 4 to 8 workers and their master fit a 512 MiB pod
QUEUED_RECORD_BYTES = 1024  # what a record waiting in the Python queue costs (measured: about 830 bytes)
#: What a message costs in the producer besides its value: librdkafka's own (measured: about 700 bytes), and
#: the headers logkafka keeps with its delivery callback until the report (measured: about 550 to 700).
_RDKAFKA_MESSAGE_BYTES = 768 + 768
_MIN_MEMORY_BUDGET = 1 << 20


def producer_buffers(share: int) -> dict[str, int]:
    """librdkafka's buffer bounds for at most ``share`` bytes held: half for the values it copies, half for
    what each message costs besides (about 1.5 KB: librdkafka's message, its headers, the allocator's share,
    and the headers the delivery callback keeps)."""
    return {"queue.buffering.max.kbytes": max(64, share // 2 // 1024),
            "queue.buffering.max.messages": max(10, share // 2 // _RDKAFKA_MESSAGE_BYTES)}


@dataclass(frozen=True)
class MemoryPlan:
    """How a handler's ``memory_budget`` is shared: a quarter for the application queue, three eighths for its
    producer's buffer, an eighth for a batch of records being written to the spool (held twice: as lines and
    as records, in case the disk refuses them), an eighth each for the audit and security queue and their
    producer's buffer."""

    budget: int
    queue_size: int  # records the application queue holds (an explicit queue_size wins)
    queue_explicit: bool
    stream_queue_size: int  # records the audit and security queue holds
    producer: dict[str, int]  # librdkafka buffer settings of the application producer
    stream_producer: dict[str, int]  # and of the audit and security producer
    spool_batch: int  # bytes of lines a spool holds before it writes them

    @classmethod
    def of(cls, budget: int, queue_size: int | None) -> MemoryPlan:
        """The plan for ``budget`` bytes; ``queue_size`` given by the user, else None."""
        return cls(
            budget=budget,
            queue_size=queue_size if queue_size is not None else max(10, budget // 4 // QUEUED_RECORD_BYTES),
            queue_explicit=queue_size is not None,
            stream_queue_size=max(10, budget // 8 // QUEUED_RECORD_BYTES),
            producer=producer_buffers(budget * 3 // 8),
            stream_producer=producer_buffers(budget // 8),
            spool_batch=max(16 * 1024, budget // 16),
        )

    @classmethod
    def from_settings(cls, memory_budget: Any, queue_size: Any) -> MemoryPlan:
        """The plan for the ``memory_budget`` and ``queue_size`` settings (arguments, else
        ``LOGKAFKA_MEMORY_BUDGET`` and ``LOGKAFKA_QUEUE_SIZE``)."""
        explicit_queue = queue_size if queue_size is not None else (os.environ.get("LOGKAFKA_QUEUE_SIZE") or None)
        return cls.of(
            byte_size("memory_budget", "LOGKAFKA_MEMORY_BUDGET", memory_budget, DEFAULT_MEMORY_BUDGET,
                      _MIN_MEMORY_BUDGET),
            None if explicit_queue is None else positive("queue_size", "LOGKAFKA_QUEUE_SIZE", queue_size, 1, int))
