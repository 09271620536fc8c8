"""The background thread of one handler: queue -> producer, delivery reports, shutdown."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

# Imported here, not first by a producer's list_topics(): that C call imports it lazily, on the calling
# thread (the worker's, at its first look at the broker). A process forked during that import (gunicorn
# forks its workers just as the master's thread makes its first look) inherits the module half made,
# its import lock held by a thread that does not exist there: the child's own thread then waits for it
# forever, in its first look, and delivers nothing (its records are neither sent nor spooled).
import confluent_kafka.admin  # noqa: F401
from confluent_kafka import KafkaError, KafkaException, Producer

from logkafka._delivery import PERMANENT, STATE_LOST, keeps_record, plain_delivery_error, plain_error
from logkafka._record import FMT, STREAM
from logkafka._report import report
from logkafka._spool import Record, Segment, Spool, SpooledRecord
from logkafka._trim import fit, value_limit

#: Threads that belong to logkafka: a record logged on one of them never
#: re-enters a KafkaLogHandler (no recursion, whatever logger it is on).
WORKER_IDENTS: set[int] = set()
_BATCH = 1000  # records produced between two polls of delivery reports
#: Records spooled per turn: each turn's write gives the GIL away, and getting it back from a busy
#: caller takes a switch interval, so while spooling the turns are longer.
_SPOOL_BATCH = 8000
_NAP = 0.02  # seconds between batches while records are about (a batch per GIL turn, not a record)
_BARRIER_POLL = 0.001  # seconds between looks at the producer while a flush waits
_AWAKE_FOR = 0.2  # seconds after the last record during which the worker naps rather than sleeps
_UNBOUND = object()
_PROBE_EVERY = 1.0  # seconds between looks at the broker while records wait in the spool
_PROBE_TIMEOUT = 0.2  # seconds a look may take (the worker waits; the caller never does)
_FIRST_PROBE = 0.2  # seconds the thread's first look at the broker may take
#: Seconds with records held and none settled, while a broker answers, before the producer is rebuilt.
_STALL = 120.0
_UNKPID_LINES = 3  # UNKNOWN_PRODUCER_ID lines within _UNKPID_WINDOW seconds, nothing acknowledged: state lost
_UNKPID_WINDOW = 10.0
_REPLAY_BATCH = 2000  # spooled records produced per turn of the loop
#: Records of a segment replayed between two commits of its progress (``<segment>.pos``): after a
#: kill, at most this many are sent again. At each step the replay waits until all are settled.
_PROGRESS_STEP = 10_000
#: Seconds with records held and nothing acknowledged before the silence is said (once, and its end).
_SILENT = 5.0
_SAMPLE_EVERY = 64  # one record in this many has its delivery latency measured
_LATENCIES = 4096  # latencies kept for the percentiles
_REAP_POLL = 0.2  # seconds between the reaper's looks at the queue, and its longest wait in poll()
#: Records waiting in the queue above which the reaper, not the draining thread, serves delivery
#: reports (at most; a third of the queue's size when that is less): below it the draining thread
#: serves them between batches, which costs the caller least.
_BACKLOG = 30_000
_FORK_SETTLE = 10.0  # seconds a new producer's connections may take: a fork then waits for them (see wait_connected)
_BACKOFF_MAX = 30.0  # seconds: the longest wait between two replays that failed
_REBUILD_BACKOFF_MAX = 60.0  # seconds: the longest wait between two producer rebuilds without an acknowledgement

#: After a purge, how long to serve its reports (and the client's queued events) at most.
_PURGE_GRACE = 0.5

Headers = list[tuple[str, str | bytes | None]]
#: How the worker turns records captured for one formatter into messages:
#: (encode, fallback, key_of, key, headers_of); see ``KafkaLogHandler._bind``.
BindPlan = tuple[Callable[[dict[str, Any]], bytes], Callable[[dict[str, Any]], bytes],
                 Callable[[dict[str, Any]], bytes | None] | None, bytes | None,
                 Callable[[dict[str, Any]], Headers | None] | None]


class _Yield(Exception):
    """Raised in a delivery report to make ``poll()`` return early (see ``Worker._on_delivery``)."""


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


#: librdkafka log facilities whose news the error callback already gives, in plain words.
_SAID_BY_ERROR_CB = frozenset({"FAIL", "ERROR"})
#: Why records were dropped before they reached the producer, in plain words.
_DROP_REASONS = {
    "queue_full": "the in-memory queue was full",
    "drop_newest": "the in-memory queue was full (overflow='drop_newest')",
    "drop_oldest": "the in-memory queue was full: the oldest records made room (overflow='drop_oldest')",
    "block_timeout": "the in-memory queue stayed full for block_timeout (overflow='block')",
    "after_shutdown": "they were logged after logging shut down, and there is no spool to keep them",
}


def count_of(counter: itertools.count[int]) -> int:
    """The next value of an ``itertools.count`` without taking it (its repr: ``count(N)``)."""
    return int(repr(counter)[6:-1])


class _LibrdkafkaLog:
    """librdkafka's log lines, as rate-limited stderr lines (warnings and worse, not those the error callback says).

    Also watches the idempotent producer's own lines (``debug=eos``, a handful per
    session): ``UNKPID`` means the broker lost this producer's state, which librdkafka
    would retry without end and without an error; ``lost_state`` is then called. With a
    ``logger`` of the user's in ``producer_config``, every line is handed on to it too.
    """

    def __init__(self, lost_state: Callable[[], None] | None = None, forward: Any = None,
                 quiet_debug: bool = True) -> None:
        self._lost_state = lost_state
        self._forward = forward
        self._quiet_debug = quiet_debug  # debug lines exist only for our watch: none is handed on

    def log(self, level: int, fmt: str, *args: Any) -> None:
        facility = args[0] if args else None
        if facility == "UNKPID" and self._lost_state is not None:
            self._lost_state()
        if self._forward is not None and not (self._quiet_debug and level < logging.INFO):
            try:
                self._forward.log(level, fmt, *args)
            except Exception:
                pass
            return
        if level >= logging.WARNING and facility not in _SAID_BY_ERROR_CB:
            try:
                text = fmt % args
            except Exception:
                text = f"{fmt} {args}"
            report(f"librdkafka:{level}", f"librdkafka: {text}")


class Worker:
    """Drains the queue into one ``Producer`` and counts what the broker acknowledged."""

    def __init__(
        self,
        *,
        name: str,
        topic: str,
        producer_config: dict[str, Any],
        queue: deque[Any],
        bind: Callable[[Any], BindPlan],
        dropped: Callable[[], dict[str, int]],
        flush_timeout: float,
        spool: Spool | None = None,
        durability: str = "memory",
        stream_topics: dict[Any, str] | None = None,
        queue_size: int | None = None,
    ) -> None:
        self._name = name
        self._topic = topic
        #: For a worker that serves several streams: a record's topic by its stream.
        self._stream_topics = stream_topics
        # acknowledgements and failures by topic, where one worker serves several (audit and security)
        self._topic_acks: dict[str, itertools.count[int]] | None = (
            {t: itertools.count() for t in stream_topics.values()} if stream_topics else None)
        self._topic_failed: dict[str, int] = {}
        self._config = producer_config
        self._queue = queue
        self._bind = bind
        self._dropped = dropped
        self._flush_timeout = flush_timeout
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._producer: Producer | None = None
        self._barriers: list[Barrier] = []  # popped, waiting for the producer to be empty
        self._produced = 0  # records the producer accepted
        self._stop_at: float | None = None  # set by stop(): leave once idle, or at this time
        self._reported_drops: dict[str, int] = {}
        self._reported_spool = (0, 0)  # the spool's evicted and torn counts last said
        self._quiet = False  # while purging at close or before a rebuild: one summary, not a line per record
        self._seen_delivered = 0
        self._progress_at = time.monotonic()  # the last time a record was settled (or none was held)
        self._settled_seen = 0
        self._stall_probe_at = 0.0
        #: True while the thread runs; read without a lock by emit().
        self.running = False
        #: True while the thread waits for work; emit() then wakes it.
        self.idle = False
        self.failed = 0  # records that failed: refused by produce() or by a delivery report
        self._dr_failed = 0  # delivery reports of failures (the record then spooled again, or failed)
        self._acks = itertools.count()  # delivery reports of success (next() is atomic: two threads serve them)
        #: Records the spool's disk refused: sent from memory (before the queue), not lost.
        self._held: deque[Record] = deque()
        self._respooled = False  # records re-spooled while a barrier waits: its mark moves on
        self._since_progress = 0  # records of the replayed segment produced since its progress was committed
        self._answered = (0, time.monotonic())  # (reports served, when that count last changed)
        self._silent_since: float | None = None  # when the broker's silence was said
        self._servers = str(producer_config.get("bootstrap.servers", ""))
        self._spool_broken = 0  # the spool's write count when the disk refused, 0 while it writes
        self._in_hand = False  # True while _drain holds records it took from the queue
        self._exiting = False
        self._away_since: float | None = None  # when the client said no broker answers (until one does)
        self._clear_to = 0  # the highest barrier mark whose segments were all found settled
        self._idle_written = 0  # the spool's write count when the look that found it empty began
        self.spool_lost = 0  # records neither Kafka nor the spool's disk took by the end
        self._backoff = _PROBE_EVERY  # seconds before the next replay after records failed (doubles, up to 30)
        self._rebuild_backoff = 1.0
        self._rebuild_at = 0.0  # no rebuild before this time (rebuilds that do not help wait longer)
        self.errors = 0
        self.error_counts: dict[str, int] = {}  # by librdkafka error name
        self._awaiting_room = 0  # 1 while a record waits for room in librdkafka's full buffer (no spool)
        self._made_at = -1e9  # when the current producer was made, and the acknowledgements then
        self._made_acks = 0
        self.last_error: str | None = None
        self.broker_reachable: bool | None = None
        #: True only while the client says no broker answers (all brokers down): close() then stops waiting.
        self.unreachable = False
        self._generation = 0  # of the producer: lines of a replaced producer's logger are ignored
        self._unkpid: deque[float] = deque(maxlen=_UNKPID_LINES)
        self.spool = spool
        self._disk = durability == "disk" and spool is not None
        # While True, records go to the spool, not to the producer: the spool holds older
        # records that must go first (after an outage, or from an earlier run), or durability
        # is "disk" (write-ahead). The spool is replayed in order, then this goes False.
        self._spooling = self._disk or (spool is not None and spool.pending())
        self._next_probe = 0.0
        self._replay: Segment | None = None  # the segment being replayed
        self._replay_iter: Any = None
        self._replay_next: SpooledRecord | None = None  # read, not yet accepted by the producer
        self._replay_produced = False  # the whole segment was handed to the producer
        self._spool_idle = not self._spooling  # the last look found nothing of ours left to replay
        self.replayed = 0  # spooled records handed to the producer again
        self.rebuilds = 0  # producers replaced after a fatal error
        self.truncated = 0  # records cut to fit message.max.bytes
        # Delivery latency, log call to acknowledgement, sampled: librdkafka reports failures
        # only, so a sample (its position among produced records, its creation time) counts as
        # acknowledged once that many records are delivered (acknowledgements come in order
        # per partition, so this is close, not exact, across partitions).
        self._samples: deque[tuple[int, float]] = deque()
        self._latencies: deque[float] = deque(maxlen=_LATENCIES)
        self._fatal = False
        # Delivery reports under load are served by a second thread, the reaper. confluent-kafka
        # takes the GIL once per delivered record to serve its report; while the app logs on a
        # busy thread each take waits for a GIL switch, so serving reports is slow (thousands a
        # second). Served between batches, they would stall the draining thread for seconds and
        # the queue would overflow; so once the queue holds a backlog the reaper serves them and
        # the draining thread never waits (the producer's buffer fills, the rest goes to the
        # spool). Without a backlog the draining thread serves them itself: a third thread taking
        # the GIL for every report would slow the caller (measured: 19 -> 44 us per call).
        self._reaper: threading.Thread | None = None
        self._reaper_stop = threading.Event()
        # Failed delivery reports, appended by whichever thread served them, handled (spooled
        # or counted) by the draining thread. Appended before librdkafka forgets the record.
        self._failures: deque[tuple[KafkaError, Any]] = deque()
        self._inline_poll = 0  # the draining thread's ident while it serves reports and may yield
        self._backlog = max(1, min(_BACKLOG, (queue_size or 3 * _BACKLOG) // 3))
        try:
            self._max_bytes = int(producer_config.get("message.max.bytes", 1_000_000))
        except (TypeError, ValueError):
            self._max_bytes = 1_000_000
        self._limit = value_limit(self._max_bytes)  # below it, no record needs a look

    # -- control, from any thread ---------------------------------------------------
    def start(self) -> bool:
        """Start the thread unless it runs; False when no thread can be started."""
        with self._start_lock:
            if self.running:
                return True
            if self._stop_at is not None:  # revived after close(): drain, then leave
                self._stop_at = time.monotonic() + self._flush_timeout
            thread = threading.Thread(target=self._thread_main, name=self._name, daemon=True)
            self.running = True
            try:
                thread.start()
            except RuntimeError:  # interpreter shutdown: no new threads
                self.running = False
                return False
            self._thread = thread
            return True

    def wake(self) -> None:
        """Wake the thread if it waits for work."""
        self._wake.set()

    def wait_for(self, barrier: Barrier, timeout: float) -> bool:
        """Wait until ``barrier`` is settled; serve the queue here if no thread can."""
        if self.running or self.start():
            self._wake.set()
            return barrier.event.wait(timeout)
        self._serve_inline(time.monotonic() + timeout, until=barrier)
        return barrier.event.is_set()

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the thread to end."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def stop(self, deadline: float, exiting: bool = False) -> None:
        """Leave once idle; what is unsettled at ``deadline`` (later for records still coming) fails.

        Does not wait for the thread: a caller of ``close()`` (``dictConfig``,
        holding logging's lock) must not wait on records other threads keep logging.
        """
        self._exiting = exiting  # the process ends: the last spool write is not fsynced (the kernel has it)
        with self._start_lock:
            self._stop_at = deadline
            thread = self._thread
        self._wake.set()
        if thread is None and self._queue:  # no thread could start (interpreter exit): serve here
            self._serve_inline(deadline)

    @property
    def topic(self) -> str:
        """The topic of records without a stream of their own."""
        return self._topic

    @property
    def spooling(self) -> bool:
        """Whether records wait in the spool (or go through it: durability "disk")."""
        return self._spooling

    def settled(self) -> bool:
        """Whether nothing waits here: nothing held by the producer, nothing left in the spool to send."""
        return (not self._in_hand and not self._held_by_producer() and not self._failures and not self._held
                and (not self._spooling or self._spool_empty()))

    def _spool_empty(self) -> bool:
        """The last look found nothing left in the spool, and nothing was written since it began."""
        spool = self.spool
        return self._spool_idle and (spool is None or spool.spooled == self._idle_written)

    def _held_by_producer(self) -> int:
        """What the producer holds: records, and client events not served yet."""
        producer = self._producer
        return len(producer) if producer is not None else 0

    def in_flight(self) -> int:
        """Records the producer accepted that have no delivery report yet."""
        return max(0, self._produced - count_of(self._acks) - self._dr_failed - len(self._failures))

    def handling(self) -> bool:
        """Whether the thread is in a batch: records it took from the queue may not be counted yet."""
        return self._in_hand

    def waiting_on_kafka(self) -> bool:
        """Whether the thread waits for room in librdkafka's full buffer (no spool to take the records)."""
        return self._awaiting_room == 1

    def held(self) -> int:
        """Records waiting in memory because the spool's disk refused them, or (no spool) for room in
        librdkafka's full buffer."""
        return len(self._held) + self._awaiting_room

    def spooled_waiting(self) -> int:
        """This process's records waiting in the spool (written or about to be), not sent again yet."""
        spool = self.spool
        if spool is None:
            return 0
        return spool.waiting() + (self._replay_next is not None)

    def latency(self) -> dict[str, float | None]:
        """Delivery latency percentiles (seconds, log call to acknowledgement) of recent samples."""
        values = sorted(self._latencies)
        if not values:
            return {"p50": None, "p95": None, "p99": None}
        return {f"p{q}": values[min(len(values) - 1, len(values) * q // 100)] for q in (50, 95, 99)}

    def produced(self) -> int:
        """Records the producer accepted so far."""
        return self._produced

    def _count_failed(self, topic: str | None) -> None:
        self.failed += 1
        if self._topic_acks is not None and topic is not None:
            self._topic_failed[topic] = self._topic_failed.get(topic, 0) + 1

    def by_topic(self) -> dict[str, dict[str, int]]:
        """Delivered and failed records by topic, for a worker serving several topics (else its own)."""
        if self._topic_acks is None:
            return {self._topic: {"delivered": self.delivered(), "failed": self.failed}}
        return {t: {"delivered": count_of(c), "failed": self._topic_failed.get(t, 0)}
                for t, c in self._topic_acks.items()}

    def delivered(self) -> int:
        """Records the broker acknowledged: delivery reports of success, counted one by one."""
        return count_of(self._acks)

    def after_fork_in_child(self) -> None:
        """In a forked child, for a worker of the parent that is abandoned there: let go of the parent's
        spool files (its open segment, and the segment it replays, whose lock the child would share)."""
        segment, self._replay, self._replay_iter = self._replay, None, None
        if segment is not None:
            segment.release()
        if self.spool is not None:
            self.spool.after_fork_in_child()

    # -- the thread ---------------------------------------------------------------------
    def _thread_main(self) -> None:
        ident = threading.get_ident()
        WORKER_IDENTS.add(ident)
        try:
            while True:
                try:
                    self._serve(None)
                except KafkaException as exc:  # raised by poll() or produce(): fatal means a new producer
                    error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
                    if error is not None and error.fatal():
                        self.last_error = error.str()
                        self._fatal = True
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
                    self.running = False
                    if not self._queue:
                        self._thread = None
                        return
                    self.running = True
                    # records arrived while stopping: give them their own flush_timeout
                    self._stop_at = time.monotonic() + self._flush_timeout
        finally:
            self._stop_reaper()
            WORKER_IDENTS.discard(ident)

    def _start_reaper(self) -> None:
        if self._reaper is not None:
            return
        self._reaper_stop.clear()
        thread = threading.Thread(target=self._reap, name=f"{self._name}-reports", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # interpreter shutdown: the draining thread polls itself
            return
        self._reaper = thread

    def _stop_reaper(self) -> None:
        thread, self._reaper = self._reaper, None
        if thread is not None:
            self._reaper_stop.set()
            if thread is not threading.current_thread():
                thread.join()

    def _reap(self) -> None:
        """The reaper: serves delivery reports and client events until stopped."""
        ident = threading.get_ident()
        WORKER_IDENTS.add(ident)
        stop = self._reaper_stop
        try:
            while not stop.is_set():
                producer = self._producer
                if producer is None or (len(self._queue) < self._backlog and not self._spooling):
                    stop.wait(_REAP_POLL)  # the draining thread serves the reports
                    continue
                try:
                    producer.poll(_REAP_POLL)
                except Exception as exc:  # a callback of ours failed: keep serving
                    report("worker", f"delivery report error, continuing: {type(exc).__name__}: {exc}")
                    stop.wait(0.1)
        finally:
            WORKER_IDENTS.discard(ident)

    def _serve_inline(self, deadline: float, until: Barrier | None = None) -> None:
        ident = threading.get_ident()
        WORKER_IDENTS.add(ident)
        try:
            self._serve(deadline, until)
        except Exception as exc:
            report("worker", f"delivery failed at shutdown: {type(exc).__name__}: {exc}")
        finally:
            WORKER_IDENTS.discard(ident)

    def _make_producer(self) -> Producer:
        config = dict(self._config)
        debug = str(config.get("debug", ""))
        if config.get("enable.idempotence") in (True, "true", "True") and "eos" not in debug and "all" not in debug:
            config["debug"] = f"{debug},eos" if debug else "eos"  # a few lines a session: see _LibrdkafkaLog
        self._generation += 1
        config["logger"] = _LibrdkafkaLog(partial(self._lost_state, self._generation), config.get("logger"),
                                          quiet_debug=not debug)
        config["error_cb"] = self._on_error
        config["on_delivery"] = self._on_delivery
        self._made_at = time.monotonic()
        self._made_acks = count_of(self._acks)
        return Producer(config)

    def wait_connected(self, deadline: float) -> None:
        """Before a fork: while this thread's producer is new (its client threads are connecting, and so
        resolving broker addresses), wait until it has an acknowledgement, or no record waits, or
        ``deadline``. A fork while a client thread is inside getaddrinfo() leaves glibc's resolver lock held
        in the child for good: the child's own client, and any name lookup there, would never return."""
        if (self._producer is None or not self.running or self.broker_reachable is False
                or time.monotonic() - self._made_at > _FORK_SETTLE):
            return  # (no broker answers: its lookups go on whatever we wait; none is worth a slow fork)
        while time.monotonic() < deadline:
            if count_of(self._acks) != self._made_acks:
                self._made_at = -1e9  # a leader acknowledged: connected, later forks need not wait
                return
            if self.broker_reachable is True and not self.in_flight() and not self._queue and not self._in_hand:
                return  # nothing to send: no connection is being made
            time.sleep(0.005)
        self._made_at = -1e9  # one wait that ran out per producer: later forks do not wait again

    def _serve(self, deadline: float | None, until: Barrier | None = None) -> None:
        """The loop; returns when stopped and done, or at ``deadline`` / ``until``."""
        producer = self._producer
        if producer is None:
            producer = self._producer = self._make_producer()
            if self.broker_reachable is None and deadline is None:
                self._probe(producer, _FIRST_PROBE)  # known from the first metadata answer, not the first ack
        if deadline is None:
            self._start_reaper()
        queue = self._queue
        last_work = time.monotonic()
        while True:
            if self._fatal and time.monotonic() >= self._rebuild_at:
                producer = self._rebuild(producer, reaper=deadline is None)
            worked = self._drain(producer)
            # While spooling, few reports come (records go to disk) and every poll() would hand
            # the GIL to the caller, costing this thread a switch interval: the reaper polls.
            if self._reaper is None or (len(queue) < self._backlog and not self._spooling):
                # no backlog (or no reaper, serving inline at exit): serve the reports here
                self._inline_poll = threading.get_ident() if self._reaper is not None else 0
                try:
                    producer.poll(0)
                except _Yield:  # a backlog built up while serving them: back to the queue
                    pass
                finally:
                    self._inline_poll = 0
            if self._failures:
                self._handle_failures()
            if self.spool is not None:
                self._commit_spool()  # what this turn spooled, in one write
                if self._spooling and not self._fatal:
                    self._replay_step(producer)
                self.spool.tick()
            self._report_drops()  # before the barriers: a flush that returns sees the state it settled in
            self._settle_barriers()
            self._watch_stall(producer)
            self._watch_silence()
            now = time.monotonic()
            if until is not None and until.event.is_set():
                return
            stop_at = self._stop_at if deadline is None else deadline
            if stop_at is not None and not queue and ((not len(producer) and not self._held) or now >= stop_at):
                self._finish(producer, stop_at)
                return
            if worked:
                last_work = now
                if deadline is None and self._stop_at is not None:
                    # Stopping, yet records still come (logged to a closed handler, e.g. while
                    # dictConfig replaces it): each gets its own flush_timeout, so _finish()
                    # never purges records the broker was about to acknowledge.
                    with self._start_lock:
                        if self._stop_at is not None:
                            self._stop_at = max(self._stop_at, now + self._flush_timeout)
                if worked >= _BATCH and not self._barriers:
                    continue  # a backlog: keep draining
            if self._barriers or self._replay is not None:
                # success is silent: look often whether all is settled
                producer.poll(_BARRIER_POLL)
            elif len(producer) or now - last_work < _AWAKE_FOR:
                # Records are about: nap instead of sleeping, so emit() need not wake us
                # and records gather into the next batch; flush() cuts the nap short.
                self._wake.wait(_NAP)
                self._wake.clear()
            else:
                self.idle = True
                if not queue:
                    self._wake.wait(0.5 if deadline is None else max(0.0, min(0.5, deadline - now)))
                self.idle = False
                self._wake.clear()

    def _message(self, item: dict[str, Any], plan: BindPlan) -> tuple[str, bytes, bytes | None, Headers | None]:
        """A captured record as (topic, value, key, headers), with ``plan`` (its formatter's); never raises."""
        encode, fallback, key_of, key, headers_of = plan
        stream_topics = self._stream_topics
        topic = self._topic if stream_topics is None else stream_topics.get(item.get(STREAM), self._topic)
        try:
            value = encode(item)
        except Exception:  # the fast path met something unusual: the general one never raises
            value = fallback(item)
        try:
            if key_of is not None:
                key = key_of(item)
        except Exception as exc:  # a key that cannot be computed: the record still ships, unkeyed
            report("key", f"could not compute a record's partition key: {type(exc).__name__}: {exc}")
            key = None
        headers: Headers | None = None
        if headers_of is not None:
            try:
                headers = headers_of(item)
            except Exception as exc:  # headers help routing; the record ships without them
                report("headers", f"could not compute a record's headers: {type(exc).__name__}: {exc}")
        if len(value) > self._limit:  # would be refused as too large: cut it so it still arrives
            value = self._fit(value, key)
        return topic, value, key, headers

    def write_ahead(self, item: dict[str, Any]) -> bool:
        """``durability="disk"``, on the caller's thread: write the record to the spool now (the worker
        sends it from there). False when there is no usable spool: queue it as usual."""
        spool = self.spool
        if spool is None or not spool.usable():
            return False
        try:
            topic, value, key, headers = self._message(item, self._bind(item[FMT]))
        except Exception:
            return False
        if spool.write_through(topic, key, value, int(item["created"] * 1000), headers):
            self._spool_idle = False
            return True
        self._spool_refused(spool)
        return False

    def _drain(self, producer: Producer) -> int:
        """Produce up to a batch of queued records; stop at a barrier until it is settled.

        While spooling, records go to the spool instead, barriers or not: the
        queue keeps draining during an outage. Records the spool's disk refused
        go first, to the producer: disk trouble never keeps from Kafka what it can take.
        """
        if self._held and not self._produce_held(producer):
            return 0  # the producer is full: the queue waits (its overflow policy applies)
        spool = self.spool
        # "disk": the callers wrote their records to the spool; what is queued could not be written.
        # A producer waiting to be rebuilt takes nothing: records go to the spool meanwhile.
        spooling = ((self._spooling or self._fatal) and not self._disk and spool is not None and spool.usable())
        if (self._barriers or self._fatal) and not spooling:
            return 0
        if spooling and not self._spooling:
            self._start_spooling("the producer is being replaced")
        queue, produce, bind = self._queue, producer.produce, self._bind
        bound: Any = _UNBOUND
        plan: Any = None
        n = produced = 0
        limit = _SPOOL_BATCH if spooling else _BATCH
        self._in_hand = True
        try:
            while n < limit:
                try:
                    item = queue.popleft()
                except IndexError:
                    break
                n += 1
                if type(item) is Barrier:
                    if spool is not None:
                        self._commit_spool()  # the records before it are in a segment up to the mark
                        item.mark = spool.open_index()
                        self._spool_idle = False
                    self._barriers.append(item)
                    if spooling:
                        continue
                    break
                if item[FMT] is not bound:  # the formatter the record was logged under
                    bound = item[FMT]
                    plan = bind(bound)
                topic, value, key, headers = self._message(item, plan)
                ts = int(item["created"] * 1000)
                if spooling:
                    self._to_spool(topic, key, value, ts, headers)
                    continue
                try:
                    # positional (partition -1: the partitioner decides; on_delivery and its alias
                    # callback None, then timestamp and headers): cheaper than keywords
                    produce(topic, value, key, -1, None, None, ts, headers)
                    produced += 1
                    if not produced % _SAMPLE_EVERY:
                        self._samples.append((self._produced + produced, item["created"]))
                except BufferError:  # librdkafka's buffer is full (broker slow or away)
                    if spool is not None and spool.usable() and not self._disk:
                        self._start_spooling("the producer's queue is full")
                        spooling = True
                        self._to_spool(topic, key, value, ts, headers)
                    elif spool is not None:  # the spool refuses writes: hold it, try again next turn
                        self._held.append((topic, key, value, ts, headers))
                        break
                    else:
                        self._produced += produced
                        produced = 0
                        self._produce_when_room(producer, topic, value, key, ts, headers)
                except (KafkaException, TypeError, ValueError) as exc:
                    self._refused(exc, (topic, key, value, ts, headers))
                    if self._fatal:
                        break  # the rest waits in the queue for the next producer
        finally:
            self._produced += produced
            self._in_hand = False
        return n

    def _produce_held(self, producer: Producer) -> bool:
        """Produce the records the spool refused; False while the producer has no room for them."""
        held, produce = self._held, producer.produce
        while held:
            if self._fatal:
                return False  # kept for the next producer
            topic, key, value, ts, headers = held[0]
            try:
                produce(topic, value, key, -1, None, None, ts, headers)
            except BufferError:
                return False
            except (KafkaException, TypeError, ValueError) as exc:
                if keeps_record(exc):
                    self.last_error = str(exc)
                    self._fatal = True
                    return False
                held.popleft()
                self._refused(exc)
                continue
            held.popleft()
            self._produced += 1
        return True

    def _produce_when_room(self, producer: Producer, topic: str, value: bytes, key: bytes | None, ts: int,
                           headers: Headers | None) -> None:
        """No spool: librdkafka's queue is full, serve reports until there is room."""
        self._awaiting_room = 1
        try:
            self._wait_for_room(producer, topic, value, key, ts, headers)
        finally:
            self._awaiting_room = 0

    def _wait_for_room(self, producer: Producer, topic: str, value: bytes, key: bytes | None, ts: int,
                       headers: Headers | None) -> None:
        said = time.monotonic()
        while True:
            producer.poll(0.05)
            if time.monotonic() - said >= 1.0:  # records dropped meanwhile are said while it waits
                said = time.monotonic()
                self._report_drops()
            if self._stop_at is not None and time.monotonic() >= self._stop_at:
                self._count_failed(topic)
                self.last_error = "producer queue full at shutdown"
                return
            try:
                producer.produce(topic, value, key, timestamp=ts, headers=headers)
            except BufferError:
                continue
            except (KafkaException, TypeError, ValueError) as exc:
                self._refused(exc)
                return
            self._produced += 1
            return

    def _fit(self, value: bytes, key: bytes | None) -> bytes:
        limit = value_limit(self._max_bytes, len(key or b""))
        if len(value) <= limit:
            return value
        self.truncated += 1
        report("truncated", f"a record of {len(value)} bytes was cut to fit message.max.bytes ({self._max_bytes})")
        return fit(value, limit)

    # -- the spool -------------------------------------------------------------------------
    def _start_spooling(self, why: str) -> None:
        if not self._spooling and self.spool is not None and self.spool.usable():
            self._spooling = True
            if not self._quiet:
                report("spooling", f"spooling records to disk: {why}")
        self.broker_reachable = False
        now = time.monotonic()
        if now >= self._next_probe:  # the first failure since the last look: the next waits longer (reset by an ack)
            self._next_probe = now + self._backoff
            self._backoff = min(_BACKOFF_MAX, self._backoff * 2)

    def _to_spool(self, topic: str, key: bytes | None, value: bytes, ts: int, headers: Headers | None = None) -> None:
        spool = self.spool
        if spool is None:
            self._count_failed(topic)
            return
        if not spool.usable():  # the disk refused a write moments ago: this one goes from memory
            self._held.append((topic, key, value, ts, headers))
            return
        self._spool_idle = False
        if not spool.append(topic, key, value, ts, headers):
            self._spool_refused(spool)

    def _commit_spool(self) -> None:
        spool = self.spool
        if spool is None:
            return
        if not spool.commit():
            self._spool_refused(spool)
            return
        unwritten = spool.take_unwritten()  # refused by an earlier write (a rotation's, an append's)
        if unwritten:
            self._held.extend(unwritten)
        if self._spool_broken and spool.usable() and spool.spooled != self._spool_broken:
            self._spool_broken = 0
            report("spool_ok", f"the spool {spool.directory} takes writes again")
        if self._respooled:  # records a waiting flush covers went to the spool: it waits for them too
            self._respooled = False
            mark = spool.open_index()
            for barrier in self._barriers:
                barrier.mark = max(barrier.mark, mark)

    def _spool_refused(self, spool: Spool) -> None:
        """The disk refused records: they go to Kafka from memory (held), said once a while."""
        self._held.extend(spool.take_unwritten())
        self.last_error = spool.last_error
        if not self._spool_broken:
            self._spool_broken = max(1, spool.spooled)
        if self._quiet:
            return  # at close: the summary line says what became of them
        report("spool", f"{spool.last_error} ({spool.directory}): records go to Kafka from memory, without "
               "the disk's protection, until the spool takes writes again (tried every few seconds)")

    def _replay_step(self, producer: Producer) -> None:
        """Hand spooled records to the producer, oldest first, once the broker answers.

        A segment's progress is committed every ``_PROGRESS_STEP`` records, once all of
        them are settled; the segment is deleted when all its records are settled:
        acknowledged, or failed and spooled again. When no segment is left, spooling
        stops. While a flush waits, only the segments it covers are taken (this
        process's up to its mark, and other processes' left-overs), not newer ones.
        """
        spool = self.spool
        if spool is None or not self._spooling:
            return
        if self._replay is None:
            now = time.monotonic()
            if self.broker_reachable is not True:  # unknown or away: look first (no produce-then-purge cycles)
                if len(producer):
                    return  # librdkafka still holds records: their acknowledgements will tell
                if now < self._next_probe:
                    return
                self._next_probe = now + _PROBE_EVERY
                if not self._probe(producer):
                    return
            mark = min((b.mark for b in self._barriers), default=None)
            written = spool.spooled  # a write from now on (a caller's, with "disk") makes the look stale
            born = min((b.born_ns for b in self._barriers), default=None)
            segment = spool.claim(mark, born)
            if segment is None and (mark is None or spool.open_index() <= mark):
                spool.rotate()  # our own open segment, if it holds anything
                segment = spool.claim(mark, born)
            if segment is None:
                if mark is not None:
                    self._clear_to = max(self._clear_to, mark)  # later writes go to newer segments
                    return
                self._spool_idle = True
                self._idle_written = written
                if not self._disk:
                    self._spooling = False
                    report("spooling", "spool replayed: records go to Kafka again")
                return
            self._replay, self._replay_iter, self._replay_produced = segment, segment.records(), False
            self._since_progress = 0
        segment = self._replay
        if not self._replay_produced:
            if self._since_progress >= _PROGRESS_STEP:
                if len(producer):
                    return  # a step is produced: wait until all of it is settled
                self._commit_step(segment)
            self._replay_records(producer)
        if self._replay_produced and not len(producer):
            if self._failures:  # reports served since the drain: spool those records first
                self._handle_failures()
            self._commit_spool()
            segment.delete()
            self._replay = self._replay_iter = None

    def _commit_step(self, segment: Segment) -> None:
        """Every record of the segment produced so far is settled: say so in its progress file."""
        if self._failures:
            self._handle_failures()
        self._commit_spool()
        rest = self._replay_next
        segment.commit_progress(segment.offset - (rest.size if rest is not None else 0))
        self._since_progress = 0

    def _replay_records(self, producer: Producer) -> None:
        produce = producer.produce
        n = 0
        try:
            while n < _REPLAY_BATCH and self._since_progress + n < _PROGRESS_STEP:
                rec = self._replay_next
                if rec is None:
                    rec = next(self._replay_iter, None)
                    if rec is None:
                        self._replay_produced = True
                        return
                try:
                    produce(rec.topic, rec.value, rec.key, -1, None, None, rec.timestamp_ms, rec.headers)
                except BufferError:
                    self._replay_next = rec  # the next turn tries it again
                    return
                except (KafkaException, TypeError, ValueError) as exc:
                    if keeps_record(exc):  # the producer is finished: this record waits for the next one
                        self._replay_next = rec
                        self.last_error = str(exc)
                        self._fatal = True
                        return
                    self._replay_next = None
                    self._refused(exc)
                    continue
                self._replay_next = None
                n += 1
        finally:
            self._produced += n
            self.replayed += n
            self._since_progress += n

    def _probe(self, producer: Producer, timeout: float = _PROBE_TIMEOUT) -> bool:
        """Whether a broker answers a metadata request now."""
        try:
            md = producer.list_topics(self._topic, timeout=timeout)
            ok = bool(md.brokers)
        except Exception:
            ok = False
        if ok:
            self.broker_reachable = True
            self.unreachable = False
            self._back()
        return ok

    def _back(self) -> None:
        """A broker answers again after the client said none did: said once, and the old error forgotten."""
        since, self._away_since = self._away_since, None
        if since is not None:
            self.last_error = None
            report("back", f"Kafka at {self._servers} answers again, after {time.monotonic() - since:.0f}s "
                   "without a broker", interval=0.0)

    def trouble_for(self) -> float | None:
        """Seconds for which no broker answers or none acknowledges what waits; None when all is well."""
        starts = [t for t in (self._away_since, self._silent_since) if t is not None]
        return time.monotonic() - min(starts) if starts else None

    def _refused(self, exc: Exception, record: Record | None = None) -> None:
        """produce() raised: a fatal client error keeps the record for the next producer; else it failed."""
        if record is not None and keeps_record(exc):
            self.last_error = str(exc)
            self._fatal = True
            self._held.append(record)
            return
        self._count_failed(record[0] if record else None)
        self.last_error = str(exc)
        report("produce", f"record refused by the producer: {exc}")

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        """A delivery report, on the thread that polled: a failure is handed to the draining thread.

        While the draining thread serves reports and a backlog builds up in the queue, this
        raises :class:`_Yield`: confluent-kafka then makes ``poll()`` return at once (the
        remaining reports wait), so the draining thread goes back to the queue and the reaper
        takes over the reports.
        """
        if err is None:
            next(self._acks)
            if self._topic_acks is not None:
                counter = self._topic_acks.get(msg.topic())
                if counter is not None:
                    next(counter)
            if self._inline_poll == threading.get_ident() and len(self._queue) >= self._backlog:
                self._inline_poll = 0
                raise _Yield
            return
        self._failures.append((err, msg))
        self._wake.set()

    def _handle_failures(self) -> None:
        """Spool (or count as failed) the records whose delivery failed; on the draining thread."""
        failures = self._failures
        while failures:
            err, msg = failures[0]
            try:
                self._failed(err, msg)
            finally:
                self._dr_failed += 1  # counted before it leaves the deque: never counted delivered
                failures.popleft()

    def _failed(self, err: KafkaError, msg: Any) -> None:
        self.last_error = err.str()
        if err.code() in STATE_LOST and self.spool is not None and not self._fatal:
            self.last_error = f"the broker refused this producer's session ({err.name()}: {err.str()})"
            self._fatal = True  # rebuilt on the draining thread; this record is spooled below
        if self.spool is not None and err.code() not in PERMANENT:
            self._start_spooling(f"a record was not delivered: {plain_delivery_error(err)}")
            ts = msg.timestamp()
            raw = msg.headers()
            headers: Headers | None = list(raw) if raw else None
            if self._barriers:
                self._respooled = True
            self._to_spool(msg.topic() or self._topic, msg.key(), msg.value() or b"",
                           ts[1] if ts and ts[1] > 0 else int(time.time() * 1000), headers)
            return
        self._count_failed(msg.topic())
        if not self._quiet:
            report("delivery", f"a record was not delivered: {plain_delivery_error(err)}")

    def _on_error(self, err: KafkaError) -> None:
        self.errors += 1
        name = err.name()
        self.error_counts[name] = self.error_counts.get(name, 0) + 1
        self.last_error = err.str()
        if err.fatal():  # e.g. the idempotent producer lost its sequence state: build a new one
            self._fatal = True
        already_away = self._away_since is not None
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.broker_reachable = False
            self.unreachable = True
            if self._away_since is None:
                self._away_since = time.monotonic()
            if already_away or not self.running:
                return  # one line per outage (and its end, see _back); none from a stopped handler
        text = plain_error(err, str(self._config.get("bootstrap.servers", "")), self.spool is not None)
        if text is not None:
            report(f"error:{err.code()}", text)

    def _settle_barriers(self) -> None:
        if not self._barriers:
            return
        producer, spool = self._producer, self.spool
        now = time.monotonic()
        if (producer is None or not len(producer)) and not self._failures and not self._held \
                and self._replay is None:
            waiting = []
            for barrier in self._barriers:
                if not self._spooling or self._spool_empty() or (
                        barrier.mark <= self._clear_to and not (spool and spool.own_index_at_most(barrier.mark))):
                    barrier.event.set()
                elif barrier.deadline > now:
                    waiting.append(barrier)
            self._barriers = waiting
        else:
            self._barriers = [b for b in self._barriers if b.deadline > now]

    def _watch_stall(self, producer: Producer) -> None:
        """Records held, none settled for ``_STALL`` seconds, yet a broker answers: rebuild the producer.

        A broker that lost the producer's state (replaced, or restarted with empty storage)
        answers every produce with UNKNOWN_PRODUCER_ID; librdkafka bumps the epoch and
        retries without end and without a word, so the records would wait forever. A new
        producer (a new idempotent session) gets them through: the old one's records are
        purged into the spool and replayed. A broker that does not answer (down, frozen)
        is left alone: that is an outage, not lost state.
        """
        now = time.monotonic()
        if not len(producer) or self._dr_failed + self.delivered() != self._settled_seen:
            self._settled_seen = self._dr_failed + self.delivered()
            self._progress_at = now
            return
        if now - self._progress_at < _STALL or now < self._stall_probe_at or self.spool is None:
            return
        self._stall_probe_at = now + _PROBE_EVERY
        try:
            answers = bool(producer.list_topics(self._topic, timeout=_PROBE_TIMEOUT).brokers)
        except Exception:
            answers = False
        if answers:
            self.last_error = (f"Kafka answers but acknowledged none of {len(producer)} records for "
                               f"{now - self._progress_at:.0f}s (the broker lost this producer's state?)")
            self._fatal = True
            self._progress_at = now

    def _watch_silence(self) -> None:
        """Records wait and the broker has acknowledged none for ``_SILENT`` seconds (frozen, partitioned:
        the client sees no error): said once, with what happens to them; and said again when it answers."""
        acks = count_of(self._acks)
        now = time.monotonic()
        if acks != self._answered[0]:
            if self._silent_since is not None:
                waiting = self.spooled_waiting()
                more = f"; {waiting} spooled records are sent now" if waiting else ""
                report("silence_end", f"Kafka at {self._servers} acknowledges records again, after "
                       f"{now - self._silent_since:.0f}s{more}", interval=0.0)
                self._silent_since = None
            self._answered = (acks, now)
            return
        if not self.in_flight():
            self._answered = (acks, now)  # nothing waits for an answer: no silence to measure
            return
        if self._silent_since is None and now - self._answered[1] >= _SILENT:
            self._silent_since = self._answered[1]
            spool = self.spool
            if spool is not None and spool.usable():
                doing = (f"they go to the spool {spool.directory} when the client's buffer fills or "
                         "message.timeout.ms passes, and are sent once it answers")
            else:
                doing = "they wait in memory (no usable spool) until message.timeout.ms"
            report("silence", f"Kafka at {self._servers} has acknowledged nothing for "
                   f"{now - self._answered[1]:.0f}s (frozen or cut off?): {self.in_flight()} records wait; "
                   f"{doing}", interval=0.0)

    def _lost_state(self, generation: int) -> None:
        """librdkafka said UNKNOWN_PRODUCER_ID (on its thread). Once it may be librdkafka's own recovery
        (an expired producer id); said again and again with nothing acknowledged in between, the broker
        lost this producer's state: the draining thread rebuilds. Without a spool there is nowhere to
        keep what the old producer holds, so it is left to retry rather than purged."""
        if generation != self._generation or self.spool is None:
            return
        now = time.monotonic()
        self._unkpid.append(now)
        if len(self._unkpid) < _UNKPID_LINES or now - self._unkpid[0] > _UNKPID_WINDOW:
            return
        if not self._fatal:
            self.last_error = "the broker does not know this producer (UNKNOWN_PRODUCER_ID: restarted empty?)"
            self._fatal = True
            self._wake.set()

    def _report_drops(self) -> None:
        delivered = self.delivered()
        if delivered != self._seen_delivered:  # the broker acknowledged something since
            self._seen_delivered = delivered
            self._backoff = _PROBE_EVERY
            self._rebuild_backoff = 1.0
            self._back()
            self.broker_reachable = True
            self.unreachable = False
            self._unkpid.clear()
            samples = self._samples
            if samples and samples[0][0] <= delivered + self._dr_failed:
                now = time.time()
                while samples and samples[0][0] <= delivered + self._dr_failed:
                    self._latencies.append(now - samples.popleft()[1])
        spool = self.spool
        if spool is not None and (spool.dropped, spool.torn) != self._reported_spool:
            evicted, torn = spool.dropped - self._reported_spool[0], spool.torn - self._reported_spool[1]
            if evicted > 0:
                report("spool_full", f"{evicted} records lost: the spool reached spool_max_bytes and its "
                       "oldest segments were removed")
            if torn > 0:
                report("spool_torn", f"{torn} damaged spool lines skipped while replaying")
            self._reported_spool = (spool.dropped, spool.torn)
        dropped = self._dropped()
        if dropped != self._reported_drops:
            for reason, n in dropped.items():
                new = n - self._reported_drops.get(reason, 0)
                if new > 0:
                    report(f"dropped:{reason}", f"{new} records dropped: {_DROP_REASONS.get(reason, reason)}")
            self._reported_drops = dict(dropped)

    def _finish(self, producer: Producer, stop_at: float) -> None:
        """Wait for acknowledgements until ``stop_at``; what is left then is spooled (or has failed).

        One line says what became of the records the broker did not acknowledge,
        written after the spool write, so "in the spool" is said only when true.
        """
        while len(producer) and time.monotonic() < stop_at:
            producer.poll(min(0.05, max(0.0, stop_at - time.monotonic())))  # beside the reaper
        self._stop_reaper()  # from here on, this thread alone serves the producer
        spool = self.spool
        before = (spool.spooled, self.spool_lost) if spool is not None else (0, 0)
        failed_before = self.failed
        left = 0
        unsettled = len(producer) or len(self._held)
        self._quiet = True
        try:
            if unsettled:
                left = self._purge(producer)  # the records left report as failed (purged): spooled for the next start
            else:
                self._handle_failures()
            self._producer = None
            self._settle_replay(left)
            self._commit_spool()  # what the disk refuses now is held, for one more try below
            self._spool_held()
            if spool is not None:
                spool.close(sync=not self._exiting)
                self._spool_held()
        finally:
            self._quiet = False
        self._settle_barriers()
        if unsettled:
            self._say_unsettled(spool, before, self.failed - failed_before)

    def _spool_held(self) -> None:
        """At the end: records held in memory (the disk refused them, Kafka did not take them) go to
        the spool if it takes writes now; else they are lost, counted (``_say_unsettled`` says it)."""
        held, spool = self._held, self.spool
        if not held:
            return
        self._held = deque()
        if spool is not None:
            spool.refused_at = -1e9  # one more try
            for rec in held:
                spool.append(*rec)
            spool.commit()
            held = deque(spool.take_unwritten())
        self.spool_lost += len(held)

    def _say_unsettled(self, spool: Spool | None, before: tuple[int, int], failed: int) -> None:
        why = "cannot reach Kafka" if self.broker_reachable is False else \
            f"not acknowledged within flush_timeout ({self._flush_timeout:g}s)"
        parts = []
        if spool is not None:
            spooled, lost = spool.spooled - before[0], self.spool_lost - before[1]
            if spooled:
                parts.append(f"{spooled} records written to the spool {spool.directory} for the next start")
            if lost:
                parts.append(f"{lost} records lost: {spool.last_error}")
        if failed:
            parts.append(f"{failed} records lost" + ("" if spool is not None else " (no spool_dir)"))
        if parts:
            report("shutdown", f"{self._topic}: {why} at close: {'; '.join(parts)}", interval=0.0)

    def _settle_replay(self, unreported: int) -> None:
        """End a replay stopped half way (at close, or before a new producer) without duplicates.

        The producer has been purged: what it had acknowledged is delivered and what it
        had not is back in the spool (its failure reports). So the segment's progress is
        committed up to the first record not produced, and the segment released: the rest
        is sent from there later. Only when some records gave no report at all is the
        progress left where it was (those records may then come twice).
        """
        segment, spool = self._replay, self.spool
        if segment is None:
            return
        self._replay = None
        rest, self._replay_next = self._replay_next, None
        self._replay_iter = None
        self._since_progress = 0
        if rest is not None:
            segment.unread(rest.size)
        if unreported or spool is None:
            segment.release()
            return
        self._commit_spool()
        if self._replay_produced:
            segment.delete()
        else:
            segment.commit_progress()
            segment.release()

    def _purge(self, producer: Producer) -> int:
        """Purge what ``producer`` holds and handle the purge reports (spooled, or counted failed).

        ``len(producer)`` counts the client's queued events too (the error event of a
        reconnect attempt, say), not only messages, and such events keep coming while
        the broker is down. So reports are served until it reads 0 right after a poll,
        for up to ``_PURGE_GRACE`` seconds, with the (slower) spooling of failures done
        between polls, never between a poll and the count; only what is left then counts
        as failed.
        """
        producer.purge()
        grace = time.monotonic() + _PURGE_GRACE
        while True:
            self._handle_failures()
            producer.poll(0.01)
            left = len(producer)
            if not left or time.monotonic() >= grace:
                break
        self._handle_failures()
        left = min(left, self.in_flight())  # records, not the client's events
        self.failed += left  # not even a purge report came back: count those as failed too
        self._dr_failed += left
        return left

    def _rebuild(self, producer: Producer, *, reaper: bool) -> Producer:
        """A fatal producer error: spool what it holds, then carry on with a new producer."""
        self._fatal = False
        report("fatal", f"building a new producer (a new session) after: {self.last_error}; what the old one "
               "held is sent again through the spool")
        self._stop_reaper()
        left = 1
        self._quiet = True
        try:
            left = self._purge(producer)
        except Exception as exc:
            report("fatal", f"could not purge the failed producer: {exc}")
            self._handle_failures()
        finally:
            self._quiet = False
        self.rebuilds += 1
        self._rebuild_at = time.monotonic() + self._rebuild_backoff
        self._rebuild_backoff = min(_REBUILD_BACKOFF_MAX, self._rebuild_backoff * 2)
        self._settle_replay(left)
        self._producer = self._make_producer()
        if reaper:
            self._start_reaper()
        return self._producer
