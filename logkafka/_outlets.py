"""A handler's outlets to Kafka: the application queue and its worker, and (built on the first such
record) the audit and security queue and theirs; how records enter them, flushes, the end, the counts."""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from logkafka import _process
from logkafka._chain import Chains
from logkafka._encoding import Encoder
from logkafka._overflow import Overflow
from logkafka._queue import Barrier, Drops, count_of
from logkafka._report import report
from logkafka._settings import HandlerSettings
from logkafka._spool import Spool, destination_dir
from logkafka._stats import by_stream, handler_stats

if TYPE_CHECKING:  # the worker, and the Kafka client with it, load when a handler is made
    from logkafka._worker import Worker

_ABANDONED: list[Any] = []  # the parent's workers in a forked child: kept, never torn down there
Wait = Callable[["Worker", Barrier, float], bool]


class Outlets:
    """The queues and workers of one handler (see the module docstring)."""

    def __init__(self, settings: HandlerSettings, encoder: Encoder, enabled: bool) -> None:
        self.settings = settings  # replaced by the handler when it adopts a formatter's identity
        self._encoder = encoder
        self._enabled = enabled
        self.queue: deque[Any] = deque()
        self.drops = Drops()
        self.overflow = Overflow(settings.overflow, settings.block_timeout, self.drops)
        self.accepted = itertools.count()  # records emit() took (next() is atomic, whatever thread logs)
        self._stream_queue: deque[Any] = deque()
        self._stream_max = settings.memory.stream_queue_size if settings.memory else settings.queue_size
        self._stream_lock = threading.Lock()
        self._stream_worker: Worker | None = None
        self.worker = self._new_worker()

    def _new_worker(self) -> Worker:
        st = self.settings
        worker = self._make_worker(st.topic, self.queue, self._encoder.plan, st.durability, st.queue_size,
                                   st.producer_config)
        # "disk": the caller writes each record to the spool before emit() returns
        self.write_ahead = st.durability == "disk" and worker.spool is not None
        return worker

    def renew_worker(self) -> None:
        """A new application worker, for new settings (nothing was logged through the old one)."""
        old = self.worker
        self.worker = self._new_worker()
        if old.running:  # durability "disk" starts the worker at construction: nothing of ours is in it
            old.stop(time.monotonic() + 1.0)
            old.join(5.0)

    def _make_worker(self, topic: str, queue: deque[Any], plans: Any, durability: str, queue_size: int,
                     producer_config: dict[str, Any], stream_topics: dict[Any, str] | None = None,
                     chains: Chains | None = None) -> Worker:
        """A worker for ``topic`` (named after it, spooling to its own directory when there is a spool)."""
        st = self.settings
        spool = None
        if st.spool_dir is not None and self._enabled:
            spool = Spool(destination_dir(st.spool_dir, topic, st.bootstrap_servers),
                          max_bytes=st.spool_max_bytes, fsync=st.spool_fsync,
                          **({"batch_bytes": st.memory.spool_batch} if st.memory else {}))
        from logkafka._worker import Worker  # the Kafka client with it: loaded by the first handler

        return Worker(name=f"logkafka-{topic}", topic=topic, producer_config=producer_config, queue=queue,
                      plans=plans, drops=self.drops, flush_timeout=st.flush_timeout, spool=spool,
                      durability=durability, stream_topics=stream_topics, queue_size=queue_size, chains=chains)

    def _chains(self) -> Chains:
        """The hash chains of the audit and security records (their last hashes kept beside their spool)."""
        st = self.settings
        directory = (destination_dir(st.spool_dir, st.audit_topic, st.bootstrap_servers)
                     if st.spool_dir is not None and self._enabled else None)

        def head_path(stream: str) -> str | None:
            if directory is None:
                return None
            try:
                os.makedirs(directory, exist_ok=True)
            except OSError:
                return None
            return os.path.join(directory, f"chain.{stream}.head")
        return Chains(st.audit_chain_key, head_path)

    def streams(self) -> Worker:
        """The audit and security worker, built on first use."""
        worker = self._stream_worker
        if worker is not None:
            return worker
        with self._stream_lock:
            if self._stream_worker is None:
                st = self.settings
                self._stream_worker = self._make_worker(
                    st.audit_topic, self._stream_queue, self._encoder.stream_plan, "disk", self._stream_max,
                    st.stream_producer_config or st.producer_config,
                    {"audit": st.audit_topic, "security": st.security_topic}, self._chains())
            return self._stream_worker

    def workers(self) -> list[Worker]:
        """The workers made so far."""
        return [self.worker] if self._stream_worker is None else [self.worker, self._stream_worker]

    def start_earlier(self) -> None:
        """Records of an earlier run wait in the spool: start the threads that send them now."""
        st = self.settings
        if self.worker.spooling:
            self.worker.start()
        if st.spool_dir is not None and Spool.has_records(destination_dir(st.spool_dir, st.audit_topic,
                                                                          st.bootstrap_servers)):
            self.streams().start()  # audit or security records of an earlier run wait

    def after_fork_in_child(self) -> None:
        """In a forked child: a queue, thread and producer of its own, made on its first record.

        The parent's queued records stay the parent's (never shipped twice); the
        parent's producer and its threads do not exist here and are left alone.
        """
        old = self.worker
        self.queue = deque()
        self.drops = Drops()
        self.overflow = Overflow(self.settings.overflow, self.settings.block_timeout, self.drops)
        self.accepted = itertools.count()
        old.after_fork_in_child()
        _ABANDONED.append(old)  # never destroyed here: librdkafka's state is the parent's
        self.worker = self._new_worker()
        old_streams = self._stream_worker
        if old_streams is not None:
            self._stream_queue = deque()
            self._stream_lock = threading.Lock()
            old_streams.after_fork_in_child()
            _ABANDONED.append(old_streams)
            self._stream_worker = None

    # -- records in ----------------------------------------------------------------------
    def put_stream(self, item: dict[str, Any]) -> None:
        """Queue an audit or security record: no overflow policy drops it (only a full queue).

        These streams have ``durability="disk"``: the record is written to their spool first.
        """
        queue = self._stream_queue
        worker = self._stream_worker or self.streams()
        if not worker.write_ahead(item):
            if len(queue) >= self._stream_max:
                self.drops.add("queue_full")
                report("dropped", "an audit or security record was dropped: their queue is full")
                return
            queue.append(item)
        if not worker.running:
            self.start(worker, queue)
        elif worker.idle:
            worker.wake()

    def start(self, worker: Worker, queue: deque[Any]) -> None:
        """Start the worker's thread; when none can start during interpreter teardown, what is queued is
        spooled now (or counted lost): no flush() will come to serve it."""
        _process.note_process()
        if worker.start() or not sys.is_finalizing():
            return  # (at exit before teardown, logging.shutdown()'s flush() serves the queue)
        while queue:
            item = queue.popleft()
            if type(item) is not Barrier:
                self.late(item, worker)

    def late(self, item: dict[str, Any], worker: Worker) -> None:
        """A record logged after logging shut down at exit: no thread will send it. It goes to the spool
        for the next start; without a spool it is counted lost. Either is said once."""
        if worker.write_ahead(item):
            report("late", "records logged after logging shut down were written to the spool "
                   f"{worker.spool.directory if worker.spool else ''} for the next start", interval=3600.0)
            return
        self.drops.add("after_shutdown")
        report("late", f"records logged after logging shut down are lost (no spool to keep them): "
               f"{item.get('name', '')!s} {str(item.get('message', ''))[:80]!r}", interval=3600.0)

    # -- flushes and the end -------------------------------------------------------------
    def settle(self, limit: float, wait: Wait) -> bool:
        """A barrier in each queue, then ``wait`` for each of them, for up to ``limit`` seconds in all."""
        deadline = time.monotonic() + limit
        waits = []
        for worker, queue in ((self.worker, self.queue), (self._stream_worker, self._stream_queue)):
            if worker is None or (not queue and worker.settled()):
                continue
            barrier = Barrier(deadline)
            queue.append(barrier)
            waits.append((worker, barrier))
        done = True
        for worker, barrier in waits:
            done = wait(worker, barrier, deadline) and done
        return done

    def stop(self, deadline: float) -> None:
        """Let every thread end once idle; what is unsettled at ``deadline`` goes to the spool (or fails)."""
        for worker in self.workers():
            worker.stop(deadline)

    def stop_at_exit(self, deadline: float) -> None:
        """:meth:`stop`, as the process ends (see ``Worker.stop_at_exit``)."""
        for worker in self.workers():
            worker.stop_at_exit(deadline)

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the threads to end; True when they have."""
        deadline = time.monotonic() + max(0.0, timeout)
        for worker in self.workers():
            worker.join(max(0.0, deadline - time.monotonic()))
        return not self.running()

    def running(self) -> bool:
        """Whether a thread runs."""
        return any(w.running for w in self.workers())

    def handling(self) -> bool:
        """Whether a running thread is in a batch (records it took may not be counted yet)."""
        return any(w.running and w.handling() for w in self.workers())

    def stats(self) -> dict[str, Any]:
        """The counters of ``stats()`` for these outlets (see ``_stats``)."""
        st = self.settings
        app = self.worker.stats()
        streams = self._stream_worker.stats() if self._stream_worker is not None else None
        depth = [sum(1 for item in list(q) if type(item) is not Barrier) for q in (self.queue, self._stream_queue)]
        counts = handler_stats(app, streams, depth[0], depth[1], self.drops.counts(), count_of(self.accepted))
        counts["by_stream"] = by_stream(app, streams, st.audit_topic, st.security_topic)
        return counts
