"""What a full queue does to the caller's record: the ``overflow`` policies (never a wait on Kafka
or on disk beyond what the policy allows), every drop counted with its reason."""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

from logkafka._queue import ROOM_STALL, Barrier, Drops

if TYPE_CHECKING:  # the worker, and the Kafka client with it, load when a handler is made
    from logkafka._worker import Worker

_ROOM_RETRY = 5.0  # seconds after a vain wait for room in a full queue during which callers do not wait


class Overflow:
    """One handler's policy for a full queue (``overflow``): "spool", "drop_newest", "drop_oldest", "block"."""

    def __init__(self, policy: str, block_timeout: float, drops: Drops) -> None:
        self.policy = policy
        self._block_timeout = block_timeout
        self._drops = drops
        self._gave_up = -1e9  # when a caller last waited in vain for room in a full queue

    def make_room(self, queue: deque[Any], maxsize: int, worker: Worker) -> bool:
        """The queue is full: apply the overflow policy; True when the record may be queued."""
        policy = self.policy
        if policy == "drop_oldest":
            try:
                oldest = queue.popleft()
            except IndexError:
                return True
            if type(oldest) is Barrier:  # a flush waits on it: keep it, drop the new record instead
                queue.appendleft(oldest)
                self._drops.add("queue_full")
                return False
            self._drops.add("drop_oldest")
            return True
        if policy == "block":
            return self._block(queue, maxsize, worker)
        if policy == "spool" and self._wait_for_room(queue, maxsize, worker):
            return True
        # the worker did not make room for this record in time
        self._drops.add("drop_newest" if policy == "drop_newest" else "queue_full")
        return False

    def _block(self, queue: deque[Any], maxsize: int, worker: Worker) -> bool:
        """``overflow="block"``: wait for room up to ``block_timeout``, whatever the worker waits on."""
        deadline = time.monotonic() + self._block_timeout
        worker.wake()
        while len(queue) >= maxsize:
            if time.monotonic() >= deadline or not worker.running:
                self._drops.add("block_timeout")
                return False
            time.sleep(0.001)
        return True

    def _wait_for_room(self, queue: deque[Any], maxsize: int, worker: Worker) -> bool:
        """``overflow="spool"`` and the queue is full (a burst beyond the memory budget): the caller hands the
        handler's thread the GIL until there is room, up to ``block_timeout``, so the burst is kept, in order,
        at the pace of the disk or of a broker that acknowledges, instead of dropped. Without a spool, not
        unless a broker is known to answer, nor once the thread has waited on Kafka (librdkafka's buffer
        full) for ``ROOM_STALL`` seconds without an acknowledgement, nor within a few seconds of such a
        wait giving up."""
        now = time.monotonic()
        if not worker.running or now - self._gave_up < _ROOM_RETRY or (
                worker.spool is None and worker.broker_reachable is not True):
            return False  # (with a spool, the thread never waits on Kafka: what Kafka does not take goes to disk)
        deadline, acks, progress = now + self._block_timeout, worker.delivered(), now
        worker.wake()
        while len(queue) >= maxsize:
            time.sleep(0.0002)
            now = time.monotonic()
            if worker.waiting_on_kafka():
                if worker.delivered() != acks:
                    acks, progress = worker.delivered(), now
                elif now - progress >= ROOM_STALL:
                    break  # Kafka takes nothing: not the caller's wait
            if now >= deadline or not worker.running:
                break
        else:
            return True
        self._gave_up = time.monotonic()
        return False
