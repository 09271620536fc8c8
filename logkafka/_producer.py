"""A worker's producer: made with our callbacks, watched for a broker that lost its idempotent session,
purged and replaced after a fatal error."""

from __future__ import annotations

import logging
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
from confluent_kafka import KafkaError, Producer

from logkafka._delivery import Deliveries
from logkafka._link import PROBE_EVERY, PROBE_TIMEOUT, Link
from logkafka._report import report
from logkafka._spill import Spill

#: Seconds with records held and none settled, while a broker answers, before the producer is rebuilt.
_STALL = 120.0
_UNKPID_LINES = 3  # UNKNOWN_PRODUCER_ID lines within _UNKPID_WINDOW seconds, nothing acknowledged: state lost
_UNKPID_WINDOW = 10.0
_REBUILD_BACKOFF_MAX = 60.0  # seconds: the longest wait between two producer rebuilds without an acknowledgement
_PURGE_GRACE = 0.5  # after a purge, how long to serve its reports (and the client's queued events) at most
_FORK_SETTLE = 10.0  # seconds a new producer's connections may take: a fork then waits for them (see wait_connected)
#: librdkafka log facilities whose news the error callback already gives, in plain words.
_SAID_BY_ERROR_CB = frozenset({"FAIL", "ERROR"})


class LibrdkafkaLog:
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


def _both_error_cbs(ours: Callable[[KafkaError], None], theirs: Callable[[KafkaError], None],
                    err: KafkaError) -> None:
    """A client error to logkafka's watch, then to the user's ``error_cb`` (whose failure is said, not raised)."""
    ours(err)
    try:
        theirs(err)
    except Exception as exc:
        report("error_cb", f"producer_config['error_cb'] raised {type(exc).__name__}: {exc}")


class Session:
    """The current producer (one idempotent session with the cluster) and its replacement."""

    def __init__(self, config: dict[str, Any], *, topic: str, link: Link, deliveries: Deliveries, spill: Spill,
                 on_error: Callable[[KafkaError], None], wake: Callable[[], None]) -> None:
        self._config = config  # the handler's dict: read anew at each producer (its client.id may change)
        self._topic = topic
        self._link = link
        self._deliveries = deliveries
        self._spill = spill
        self._on_error = on_error
        self._wake = wake
        self.producer: Producer | None = None
        self._generation = 0  # of the producer: lines of a replaced producer's logger are ignored
        self._unkpid: deque[float] = deque(maxlen=_UNKPID_LINES)
        self._made_at = -1e9  # when the current producer was made, and the acknowledgements then
        self._made_acks = 0
        self.rebuilds = 0  # producers replaced after a fatal error
        self.rebuild_at = 0.0  # no rebuild before this time (rebuilds that do not help wait longer)
        self._rebuild_backoff = 1.0
        self._progress_at = time.monotonic()  # the last time a record was settled (or none was held)
        self._settled_seen = 0
        self._stall_probe_at = 0.0

    def make(self) -> Producer:
        """A new producer with our callbacks (and librdkafka's idempotence lines watched)."""
        config = dict(self._config)
        debug = str(config.get("debug", ""))
        if config.get("enable.idempotence") in (True, "true", "True") and "eos" not in debug and "all" not in debug:
            config["debug"] = f"{debug},eos" if debug else "eos"  # a few lines a session: see LibrdkafkaLog
        self._generation += 1
        config["logger"] = LibrdkafkaLog(partial(self._lost_state, self._generation), config.get("logger"),
                                         quiet_debug=not debug)
        theirs = config.get("error_cb")  # the user's: called after ours
        config["error_cb"] = self._on_error if theirs is None else partial(_both_error_cbs, self._on_error, theirs)
        config["on_delivery"] = self._deliveries.on_delivery
        self._made_at = time.monotonic()
        self._made_acks = self._deliveries.delivered()
        self.producer = Producer(config)
        return self.producer

    def acknowledged(self) -> None:
        """The broker acknowledged records: the session is alive, rebuilds need not wait."""
        self._rebuild_backoff = 1.0
        self._unkpid.clear()

    def wait_connected(self, deadline: float, idle: Callable[[], bool]) -> None:
        """Before a fork: while the producer is new (its client threads are connecting, and so resolving
        broker addresses), wait until it has an acknowledgement, or nothing waits (``idle``), or
        ``deadline``. A fork while a client thread is inside getaddrinfo() leaves glibc's resolver lock held
        in the child for good: the child's own client, and any name lookup there, would never return."""
        if (self.producer is None or self._link.broker_reachable is False
                or time.monotonic() - self._made_at > _FORK_SETTLE):
            return  # (no broker answers: its lookups go on whatever we wait; none is worth a slow fork)
        while time.monotonic() < deadline:
            if self._deliveries.delivered() != self._made_acks:
                self._made_at = -1e9  # a leader acknowledged: connected, later forks need not wait
                return
            if self._link.broker_reachable is True and idle():
                return  # nothing to send: no connection is being made
            time.sleep(0.005)
        self._made_at = -1e9  # one wait that ran out per producer: later forks do not wait again

    def watch_stall(self, producer: Producer) -> None:
        """Records held, none settled for ``_STALL`` seconds, yet a broker answers: rebuild the producer.

        A broker that lost the producer's state (replaced, or restarted with empty storage)
        answers every produce with UNKNOWN_PRODUCER_ID; librdkafka bumps the epoch and
        retries without end and without a word, so the records would wait forever. A new
        producer (a new idempotent session) gets them through: the old one's records are
        purged into the spool and replayed. A broker that does not answer (down, frozen)
        is left alone: that is an outage, not lost state.
        """
        now = time.monotonic()
        settled = self._deliveries.settled()
        if not len(producer) or settled != self._settled_seen:
            self._settled_seen = settled
            self._progress_at = now
            return
        if now - self._progress_at < _STALL or now < self._stall_probe_at or self._spill.spool is None:
            return
        self._stall_probe_at = now + PROBE_EVERY
        try:
            answers = bool(producer.list_topics(self._topic, timeout=PROBE_TIMEOUT).brokers)
        except Exception:
            answers = False
        if answers:
            self._link.lose_producer(f"Kafka answers but acknowledged none of {len(producer)} records for "
                                     f"{now - self._progress_at:.0f}s (the broker lost this producer's state?)")
            self._progress_at = now

    def _lost_state(self, generation: int) -> None:
        """librdkafka said UNKNOWN_PRODUCER_ID (on its thread). Once it may be librdkafka's own recovery
        (an expired producer id); said again and again with nothing acknowledged in between, the broker
        lost this producer's state: the draining thread rebuilds. Without a spool there is nowhere to
        keep what the old producer holds, so it is left to retry rather than purged."""
        if generation != self._generation or self._spill.spool is None:
            return
        now = time.monotonic()
        self._unkpid.append(now)
        if len(self._unkpid) < _UNKPID_LINES or now - self._unkpid[0] > _UNKPID_WINDOW:
            return
        if not self._link.fatal:
            self._link.lose_producer("the broker does not know this producer (UNKNOWN_PRODUCER_ID: restarted empty?)")
            self._wake()

    def purge(self, producer: Producer) -> int:
        """Purge what ``producer`` holds and handle the purge reports (spooled, or counted failed); the
        number of records that gave no report at all.

        ``len(producer)`` counts the client's queued events too (the error event of a
        reconnect attempt, say), not only messages, and such events keep coming while
        the broker is down. So reports are served until it reads 0 right after a poll, or
        every record has its report, for up to ``_PURGE_GRACE`` seconds, with the (slower)
        spooling of failures done between polls, never between a poll and the count; only
        what is left then counts as failed.
        """
        spill, deliveries = self._spill, self._deliveries
        producer.purge()
        grace = time.monotonic() + _PURGE_GRACE
        while True:
            spill.handle_failures()
            producer.poll(0.01)
            left = len(producer)
            if not left or not deliveries.in_flight() or time.monotonic() >= grace:
                break
        spill.handle_failures()
        left = min(left, deliveries.in_flight())  # records, not the client's events
        deliveries.failed += left  # not even a purge report came back: count those as failed too
        deliveries.reported_failed += left
        return left

    def retire(self, producer: Producer) -> int:
        """A fatal producer error: purge what it holds into the spool (quietly: one line says it); the
        number of records that gave no report. The next rebuild waits longer if none is acknowledged."""
        self._link.fatal = False
        report("fatal", f"building a new producer (a new session) after: {self._link.last_error}; what the old "
               "one held is sent again through the spool")
        left = 1
        self._spill.quiet = True
        try:
            left = self.purge(producer)
        except Exception as exc:
            report("fatal", f"could not purge the failed producer: {exc}")
            self._spill.handle_failures()
        finally:
            self._spill.quiet = False
        self.rebuilds += 1
        self.rebuild_at = time.monotonic() + self._rebuild_backoff
        self._rebuild_backoff = min(_REBUILD_BACKOFF_MAX, self._rebuild_backoff * 2)
        return left
