"""The background thread of one handler's stream (or of its audit and security streams): it runs the
sender's turns until stopped (a second thread, the reaper, serves delivery reports under load).

The worker knows nothing of the handler: it is handed the queue, how to encode (``plans``), where to
count drops, and the spool; the handler asks it to start, wake, wait for a barrier, and stop.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from logkafka._chain import Chains
from logkafka._encoding import EncodePlan
from logkafka._queue import WORKER_IDENTS, Barrier, Drops
from logkafka._reaper import Reaper
from logkafka._report import report
from logkafka._sender import BATCH, Sender
from logkafka._spool import Spool
from logkafka._stats import WorkerStats

_NAP = 0.02  # seconds between batches while records are about (a batch per GIL turn, not a record)
_BARRIER_POLL = 0.001  # seconds between looks at the producer while a flush waits
_AWAKE_FOR = 0.2  # seconds after the last record during which the worker naps rather than sleeps
_FIRST_PROBE = 0.2  # seconds the thread's first look at the broker may take
_IDLE_WAIT = 0.5  # seconds the idle thread sleeps between looks (emit() wakes it sooner)


class Worker:
    """Drains the queue into one ``Producer`` and counts what the broker acknowledged."""

    def __init__(self, *, name: str, topic: str, producer_config: dict[str, Any], queue: deque[Any],
                 plans: Callable[[Any], EncodePlan], drops: Drops, flush_timeout: float, spool: Spool | None = None,
                 durability: str = "memory", stream_topics: dict[Any, str] | None = None,
                 queue_size: int | None = None, chains: Chains | None = None) -> None:
        self._name = name
        self._queue = queue
        self._flush_timeout = flush_timeout
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._sender = Sender(topic=topic, producer_config=producer_config, queue=queue, plans=plans, drops=drops,
                              flush_timeout=flush_timeout, spool=spool, durability=durability,
                              stream_topics=stream_topics, queue_size=queue_size, wake=self._wake, chains=chains)
        #: True while the thread runs; read without a lock by emit().
        self.running = False
        #: True while the thread waits for work; emit() then wakes it.
        self.idle = False
        self.spool = spool
        self._reaper = Reaper(f"{name}-reports", self._sender, WORKER_IDENTS)

    # -- control, from any thread ---------------------------------------------------
    def start(self) -> bool:
        """Start the thread unless it runs; False when no thread can be started."""
        with self._start_lock:
            if self.running:
                return True
            sender = self._sender
            if sender.stop_at is not None and not sender.exiting:  # revived after close(): drain, then leave
                sender.stop_at = time.monotonic() + self._flush_timeout  # (at exit, the exit's time is all)
            thread = threading.Thread(target=self._thread_main, name=self._name, daemon=True)
            self._set_running(True)
            try:
                thread.start()
            except RuntimeError:  # interpreter shutdown: no new threads
                self._set_running(False)
                return False
            self._thread = thread
            return True

    def _set_running(self, running: bool) -> None:
        self.running = self._sender.reporting = running

    def wake(self) -> None:
        """Wake the thread if it waits for work."""
        self._wake.set()

    def wait_for(self, barrier: Barrier, timeout: float) -> bool:
        """Wait until ``barrier`` is settled; serve the queue here if no thread can."""
        if self.running or self.start():
            self._wake.set()
            return barrier.event.wait(timeout)
        self._serve_here(time.monotonic() + timeout, until=barrier)
        return barrier.event.is_set()

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the thread to end."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def stop(self, deadline: float) -> None:
        """Leave once idle; what is unsettled at ``deadline`` (later for records still coming) fails.

        Does not wait for the thread: a caller of ``close()`` (``dictConfig``,
        holding logging's lock) must not wait on records other threads keep logging.
        """
        with self._start_lock:
            self._sender.stop_at = deadline
            thread = self._thread
        self._wake.set()
        if thread is None and self._queue:  # no thread could start (interpreter exit): serve here
            self._serve_here(deadline)

    def stop_at_exit(self, deadline: float) -> None:
        """:meth:`stop` as the process ends: ``deadline`` is final (records still coming get no time of
        their own), and the last spool writes are not fsynced (the kernel has them)."""
        self._sender.exiting = True
        self.stop(deadline)

    def write_ahead(self, item: dict[str, Any]) -> bool:
        """``durability="disk"``, on the caller's thread: write the record to the spool now (the thread
        sends it from there). False when there is no usable spool: queue it as usual."""
        spool = self.spool
        if spool is None or not spool.usable():
            return False
        return self._sender.write_ahead(item)

    # -- state, from any thread -------------------------------------------------------------
    @property
    def topic(self) -> str:
        """The topic of records without a stream of their own."""
        return self._sender.topic

    @property
    def spooling(self) -> bool:
        """Whether records wait in the spool (or go through it: durability "disk")."""
        return self._sender.spill.spooling

    @property
    def unreachable(self) -> bool:
        """True only while the client says no broker answers (all brokers down)."""
        return self._sender.link.unreachable

    @property
    def broker_reachable(self) -> bool | None:
        """Whether a broker answered last (None: not known yet)."""
        return self._sender.link.broker_reachable

    def settled(self) -> bool:
        """Whether nothing waits here: nothing held by the producer, nothing left in the spool to send."""
        return self._sender.settled()

    def handling(self) -> bool:
        """Whether the thread is in a batch: records it took from the queue may not be counted yet."""
        return self._sender.in_hand

    def waiting_on_kafka(self) -> bool:
        """Whether the thread waits for room in librdkafka's full buffer (no spool to take the records)."""
        return self._sender.awaiting_room == 1

    def delivered(self) -> int:
        """Records the broker acknowledged."""
        return self._sender.deliveries.delivered()

    def stats(self) -> WorkerStats:
        """The worker's counts now."""
        return self._sender.stats(self.running)

    def after_fork_in_child(self) -> None:
        """In a forked child, for a worker of the parent that is abandoned there: let go of the parent's
        spool files (its open segment, and the segment it replays, whose lock the child would share)."""
        replay = self._sender.replay
        if replay is not None:
            replay.let_go()
        if self.spool is not None:
            self.spool.after_fork_in_child()

    def wait_connected(self, deadline: float) -> None:
        """Before a fork: wait (until ``deadline``) while a new producer connects (see ``Session``)."""
        if self.running:
            sender = self._sender
            sender.session.wait_connected(deadline, lambda: not sender.deliveries.in_flight() and not self._queue
                                          and not sender.in_hand)

    # -- the thread ---------------------------------------------------------------------
    def _thread_main(self) -> None:
        ident = threading.get_ident()
        WORKER_IDENTS.add(ident)
        try:
            while True:
                try:
                    self._serve_thread()
                except KafkaException as exc:  # raised by poll() or produce(): fatal means a new producer
                    error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
                    if error is not None and error.fatal():
                        self._sender.link.lose_producer(error.str())
                    else:
                        report("worker", f"Kafka client error, continuing: {exc}")
                        time.sleep(0.1)
                    continue
                except Exception as exc:  # a bug of ours must not end delivery
                    report("worker", f"worker error, continuing: {type(exc).__name__}: {exc}")
                    time.sleep(0.1)
                    continue
                with self._start_lock:
                    # running goes False before the queue is looked at: emit() appends, then
                    # reads running, so either we see its record or it sees False and starts us
                    self._set_running(False)
                    if not self._queue:
                        self._thread = None
                        return
                    self._set_running(True)
                    # records arrived while stopping: give them their own flush_timeout (not at exit:
                    # the exit's time is all there is, and they go to the spool at once)
                    if not self._sender.exiting:
                        self._sender.stop_at = time.monotonic() + self._flush_timeout
        finally:
            self._reaper.stop()
            WORKER_IDENTS.discard(ident)

    def _serve_thread(self) -> None:
        """The thread's loop: returns when stopped and done."""
        sender, queue = self._sender, self._queue
        producer = sender.session.producer
        if producer is None:
            producer = sender.session.make()
            if sender.link.broker_reachable is None:  # known from the first metadata answer, not the first ack
                sender.link.probe(producer, sender.topic, _FIRST_PROBE)
        self._reaper.start()
        last_work = time.monotonic()
        while True:
            if sender.link.fatal and time.monotonic() >= sender.session.rebuild_at:
                self._reaper.stop()
                producer = sender.renew(producer)
                self._reaper.start()
            worked = sender.turn(producer)
            now = time.monotonic()
            stop_at = sender.stop_at
            if stop_at is not None and not queue and ((not len(producer) and not sender.spill.held) or now >= stop_at):
                self._finish(producer, stop_at)
                return
            if worked:
                last_work = now
                if sender.stop_at is not None and not sender.exiting:
                    # Stopping, yet records still come (logged to a closed handler, e.g. while
                    # dictConfig replaces it): each gets its own flush_timeout, so finish()
                    # never purges records the broker was about to acknowledge. Not at exit:
                    # the exit's budget is all the time there is.
                    with self._start_lock:
                        if sender.stop_at is not None:
                            sender.stop_at = max(sender.stop_at, now + self._flush_timeout)
                if worked >= BATCH and not sender.barriers:
                    continue  # a backlog: keep draining
            self._rest(producer, now, last_work, _IDLE_WAIT)

    def _serve_here(self, deadline: float, until: Barrier | None = None) -> None:
        """No thread can run (interpreter exit): serve the queue on the calling thread until ``deadline``,
        or until ``until`` is settled."""
        ident = threading.get_ident()
        WORKER_IDENTS.add(ident)
        sender, queue = self._sender, self._queue
        try:
            producer = sender.session.producer or sender.session.make()
            last_work = time.monotonic()
            while True:
                if sender.link.fatal and time.monotonic() >= sender.session.rebuild_at:
                    producer = sender.renew(producer)
                worked = sender.turn(producer)
                now = time.monotonic()
                if until is not None and until.event.is_set():
                    return
                if not queue and ((not len(producer) and not sender.spill.held) or now >= deadline):
                    self._finish(producer, deadline)
                    return
                if worked:
                    last_work = now
                    if worked >= BATCH and not sender.barriers:
                        continue
                self._rest(producer, now, last_work, max(0.0, min(_IDLE_WAIT, deadline - now)))
        except Exception as exc:
            report("worker", f"delivery failed at shutdown: {type(exc).__name__}: {exc}")
        finally:
            WORKER_IDENTS.discard(ident)

    def _rest(self, producer: Producer, now: float, last_work: float, longest: float) -> None:
        """Between turns: poll while a flush or a replay waits, nap while records are about, else sleep
        (up to ``longest`` seconds) until woken."""
        if self._sender.barriers or self._sender.replaying():
            producer.poll(_BARRIER_POLL)  # success is silent: look often whether all is settled
        elif len(producer) or now - last_work < _AWAKE_FOR:
            # Records are about: nap instead of sleeping, so emit() need not wake us
            # and records gather into the next batch; flush() cuts the nap short.
            self._wake.wait(_NAP)
            self._wake.clear()
        else:
            self.idle = True
            if not self._queue:
                self._wake.wait(longest)
            self.idle = False
            self._wake.clear()

    def _finish(self, producer: Producer, stop_at: float) -> None:
        """Wait for acknowledgements until ``stop_at`` (beside the reaper), then let the sender end."""
        while len(producer) and time.monotonic() < stop_at:
            producer.poll(min(0.05, max(0.0, stop_at - time.monotonic())))
        self._reaper.stop()  # from here on, this thread alone serves the producer
        self._sender.finish(producer, stop_at)
