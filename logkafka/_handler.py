"""``KafkaLogHandler``: the logging handler that ships records to Kafka."""

from __future__ import annotations

import atexit
import dataclasses
import difflib
import inspect
import itertools
import logging
import os
import re
import signal
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from typing import Any

from logkafka import _envelope, _tracing
from logkafka._audit import unrouted
from logkafka._clock import Clock
from logkafka._formatter import JsonFormatter
from logkafka._health import Health, asgi_app, combine, wsgi_app
from logkafka._levels import env_interval, watch_levels_later
from logkafka._prometheus import export_multiprocess, multiprocess_dir, sync_multiprocess
from logkafka._record import (
    CTX,
    EXTRA,
    HOST,
    SLIM_KEYS,
    SPAN,
    STREAM,
    capture,
    capture_slim,
    check_identity,
    default_identity,
    event_id_of,
    extra_name,
    record_of,
)
from logkafka._redact import Redactor, redaction_settings
from logkafka._report import report, set_service
from logkafka._settings import HandlerSettings, build_settings
from logkafka._snapshot import to_text
from logkafka._spool import Spool, destination_dir
from logkafka._values import env_level
from logkafka._worker import WORKER_IDENTS, Barrier, BindPlan, Headers, Worker
from logkafka._worker import count_of as _count_of

#: Loggers whose records never enter a KafkaLogHandler: our own and the Kafka client's.
_OWN_LOGGERS = ("logkafka", "confluent_kafka")
#: Every live handler, for the fork hook.
_HANDLERS: weakref.WeakSet[KafkaLogHandler] = weakref.WeakSet()
_ABANDONED: list[Any] = []  # the parent's workers in a forked child: kept, never torn down there
_get_ident = threading.get_ident
_sleep = time.sleep
_FILTER_RETURNS_RECORD = sys.version_info >= (3, 12)  # Handler.handle's return value since 3.12
_LogRecord = logging.LogRecord
_IDENTITY_KEYS = {"service", "environment", "version", "instance_id"}
_STD_ATTRS = frozenset(logging.LogRecord("n", 0, "p", 0, "m", None, None).__dict__)
_OWN_FIELD_EXTRAS = ("code", "event_id")  # extras with a field of their own: captured as they are
_RECORD_KEYS = {
    "logger": "name", "level": "levelname", "function": "funcName", "line": "lineno",
    "thread": "threadName", "module": "module", "process": "process",
}


Encode = Callable[[dict[str, Any]], bytes]
KeyOf = Callable[[dict[str, Any]], bytes | None]
_UNREACHABLE_LOOK = 0.05  # seconds between looks at whether the broker is known unreachable, at close
_SPILL_WAIT = 5.0  # seconds close() waits for the thread to spool what the broker did not take
_EXITING = False  # set at interpreter exit, before logging.shutdown() flushes the handlers
#: The monotonic time by which the process's exit is done with logging: every flush() and close()
#: at exit (exit hooks, then logging.shutdown()) shares this one budget.
_EXIT_DEADLINE: float | None = None
_FORK_WAIT = 2.0  # seconds a fork may wait for a new producer's connections
_ROOM_RETRY = 5.0  # seconds after a vain wait for room in a full queue during which callers do not wait
_ROOM_STALL = 0.25  # seconds without an acknowledgement after which a caller stops waiting on Kafka for room
_SPILL_SHARE = 0.4  # of an exit budget kept for writing what is unsettled to the spool (2 s at most)


def _at_exit() -> None:
    _start_exit(None)


def _start_exit(timeout: float | None) -> float:
    """Mark the process as exiting and fix its budget (once: a later start only shortens it)."""
    global _EXITING, _EXIT_DEADLINE
    _EXITING = True
    if timeout is None:
        timeout = max((h.settings.flush_timeout for h in list(_HANDLERS) if h._enabled), default=0.0)
    deadline = time.monotonic() + max(0.0, timeout)
    if _EXIT_DEADLINE is None or deadline < _EXIT_DEADLINE:
        _EXIT_DEADLINE = deadline
    return _EXIT_DEADLINE


def _exit_left(limit: float) -> tuple[float, float]:
    """At exit: (seconds to wait for acknowledgements, seconds for the spool write) within the budget."""
    if not _EXITING or _EXIT_DEADLINE is None:
        return limit, _SPILL_WAIT
    left = max(0.0, _EXIT_DEADLINE - time.monotonic())
    spill = min(2.0, left * _SPILL_SHARE)
    return min(limit, left - spill), spill


def shutdown(timeout: float | None = None) -> bool:
    """Deliver what every ``KafkaLogHandler`` holds and close them, all within ``timeout`` seconds.

    For exit hooks (gunicorn's ``worker_exit``, Celery's ``worker_process_shutdown``):
    ``timeout`` defaults to the largest ``flush_timeout``; what is not acknowledged
    by then is written to the spool. ``logging.shutdown()`` at exit then spends only
    what is left of the same budget. Returns whether everything was delivered.
    """
    _start_exit(timeout)
    done = True
    for handler in list(_HANDLERS):
        try:
            done = handler.flush() and done
            handler.close()
        except Exception as exc:
            done = False
            report("exit", f"could not deliver a handler's records at exit: {type(exc).__name__}: {exc}")
    sync_multiprocess()  # the final counts, for prometheus_client's multiprocess mode
    return done


atexit.register(_at_exit)  # registered after logging's own hook, so it runs before logging.shutdown()

_FINALIZER_PID = 0  # the process whose multiprocessing finalizer is registered (or that needs none)


def _note_process() -> None:
    """In a multiprocessing child, register a finalizer that delivers what the handlers hold.

    multiprocessing ends its children with ``os._exit``: ``atexit`` and so
    ``logging.shutdown()`` never run there, but its own finalizers do, when the
    child's target returns (``Pool`` workers: at ``close()`` and ``join()``).
    """
    global _FINALIZER_PID
    pid = os.getpid()
    if pid == _FINALIZER_PID:
        return
    _FINALIZER_PID = pid
    process = sys.modules.get("multiprocessing.process")
    if process is None or process.parent_process() is None:
        return  # not a multiprocessing child: atexit runs logging.shutdown()
    from multiprocessing import util

    util.Finalize(None, shutdown, exitpriority=100)


def health() -> dict[str, Any]:
    """The process's logging health: the worst status of its handlers, with every reason.

    ``{"status": "ok" | "degraded" | "failing", "reasons": [...], "handlers": [...]}``:
    failing when records were lost in the last minute or no broker answers and there is
    no usable spool; degraded when no broker answers (records go to the spool), records
    wait in the spool, or the spool is off or refuses writes.
    """
    return combine(h.health() for h in list(_HANDLERS) if h._enabled)


#: A WSGI app for a health route: ``health()`` as JSON, status 200, or 503 when failing.
health_wsgi = wsgi_app(health)
#: The same as an ASGI app.
health_asgi = asgi_app(health)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    # A second SIGTERM (supervisors repeat it) must not cut short the shutdown it started; a SIGKILL still ends it.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)  # unwinds: finally blocks, atexit, logging.shutdown() deliver the records


def _install_sigterm() -> bool:
    """Turn SIGTERM into ``SystemExit(143)``, only when the app has no handler of its own (and on the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return False
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    except (ValueError, OSError):
        return False
    return True


def _tenant_key(rd: dict[str, Any]) -> bytes:
    return _envelope.tenant_of(rd).encode("utf-8", "replace")


def _encode_with(formatter: logging.Formatter, rd: dict[str, Any]) -> bytes:
    """A message from a formatter that is not a JsonFormatter; never raises."""
    try:
        return formatter.format(record_of(rd)).encode("utf-8", "replace")
    except Exception as exc:
        report("format", f"formatter {type(formatter).__name__} failed, shipping the record as JSON: {exc}")
        return JsonFormatter().encode_captured(rd)


def _check_arguments(names: list[str], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Unknown or surplus arguments of ``KafkaLogHandler(...)`` (its settings: ``names``): a ``ValueError``
    naming the setting and the likely intended one.

    Python's own ``TypeError`` would reach a dictConfig user wrapped in "Unable
    to configure handler", with no hint of the right name.
    """
    if len(args) > 2:
        raise ValueError("KafkaLogHandler: only bootstrap_servers and topic may be given by position; "
                         f"name every other setting (got {len(args)} positional arguments)")
    for name in kwargs:
        if name in names:
            continue
        close = [name.replace(".", "_")] if name.replace(".", "_") in names else []
        if not close and "." not in name and name not in _CLIENT_WORDS:
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        if close:
            hint = f" (did you mean {close[0]!r}?)"
        elif "." in name or name in _CLIENT_WORDS:  # librdkafka's names are dotted
            hint = f" (a Kafka client setting? those go in producer_config: {{{name!r}: ...}})"
        else:
            hint = f"; the settings are: {', '.join(names)}"
        raise ValueError(f"unknown setting {name!r}{hint}")


#: Undotted librdkafka settings people pass as handler arguments.
_CLIENT_WORDS = frozenset({"acks", "debug", "partitioner"})


def _key_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    return to_text(value).encode("utf-8", "replace")


class KafkaLogHandler(logging.Handler):
    """Ship every record as one JSON message to a Kafka topic, without ever blocking the caller.

    ``emit()`` captures the record on the caller's thread (message, exception,
    bound context, active span) and puts it on a bounded in-memory queue; one
    background thread formats it, produces it and counts the broker's
    acknowledgements. Every argument can be given in ``logging.config.dictConfig``;
    see the README for each setting's environment variable and default.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> KafkaLogHandler:
        if cls.__init__ is KafkaLogHandler.__init__:  # a subclass with its own __init__ checks its own
            _check_arguments(_SETTINGS, args, kwargs)
        return super().__new__(cls)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__signature__ = None  # type: ignore[attr-defined]  # its own __init__'s, not the base's

    def __init__(
        self,
        bootstrap_servers: str | None = None,
        topic: str | None = None,
        *,
        producer_config: Mapping[str, Any] | None = None,
        queue_size: int | None = None,
        flush_timeout: float | None = None,
        key: str | None = "service",
        service_name: str | None = None,
        environment: str | None = None,
        version: str | None = None,
        instance_id: str | None = None,
        enabled: bool | str | None = None,
        spool_dir: str | os.PathLike[str] | bool | None = None,
        spool_max_bytes: int | None = None,
        spool_fsync: str | None = None,
        durability: str | None = None,
        overflow: str | None = None,
        block_timeout: float | None = None,
        handle_sigterm: bool | str | None = None,
        memory_budget: int | str | None = None,
        audit_topic: str | None = None,
        security_topic: str | None = None,
        namespace: str | None = None,
        format: str | None = None,
        fields: str | None = None,
        redact: bool = True,
        redact_keys: Iterable[str] = (),
        redact_patterns: Iterable[str | re.Pattern[str]] = (),
        redact_allow: Iterable[str] = (),
        level: int | str = logging.NOTSET,
    ) -> None:
        explicit = check_identity(service_name, environment, version, instance_id)
        levels_interval = env_interval() if os.environ.get("LOGKAFKA_LEVELS_FILE") else None
        identity = {**default_identity(), **explicit}
        self.settings: HandlerSettings = build_settings(
            bootstrap_servers=bootstrap_servers,
            topic=topic,
            producer_config=producer_config,
            queue_size=queue_size,
            flush_timeout=flush_timeout,
            key=key,
            identity=identity,
            enabled=enabled,
            spool_dir=spool_dir,  # type: ignore[arg-type]
            spool_max_bytes=spool_max_bytes,
            spool_fsync=spool_fsync,
            durability=durability,
            overflow=overflow,
            block_timeout=block_timeout,
            audit_topic=audit_topic,
            security_topic=security_topic,
            namespace=namespace,
            format=format,
            fields=fields,
            handle_sigterm=handle_sigterm,
            memory_budget=memory_budget,
        )
        # checked now (ValueError naming the setting), used by the default formatter
        keys: Any = list(redact_keys) if isinstance(redact_keys, Iterator) else redact_keys
        patterns: Any = list(redact_patterns) if isinstance(redact_patterns, Iterator) else redact_patterns
        allow: Any = list(redact_allow) if isinstance(redact_allow, Iterator) else redact_allow
        self._redaction: dict[str, Any] = {"redact": redact, "redact_keys": keys, "redact_patterns": patterns,
                                           "redact_allow": allow}  # LOGKAFKA_REDACT_* added by JsonFormatter
        r = redaction_settings(redact, keys, patterns, allow)
        Redactor(keys=r["redact_keys"], patterns=r["redact_patterns"], allow=r["redact_allow"], enabled=r["redact"])
        super().__init__(env_level(level))
        self._explicit_identity = explicit
        self._resource = identity if explicit else None
        self._queue: deque[Any] = deque()
        self._maxsize = self.settings.queue_size
        self._yield_at = max(1, self._maxsize // 2)
        self._dropped: dict[str, int] = {}
        self._drop_lock = threading.Lock()
        self._enabled = self.settings.enabled
        self._flush_gave_up = -1e9
        self._room_gave_up = -1e9  # when a caller last waited in vain for room in a full queue
        self._bound: tuple[Any, Any] = (None, None)  # (formatter, what _bind() worked out for it)
        self._default_formatter: JsonFormatter | None = None  # for records logged while no formatter was set
        # Whether emit() must capture every record attribute (capture, not capture_slim): for
        # formatters that may read any, and for a key that names one a slim capture lacks.
        attr = _RECORD_KEYS.get(self.settings.key or "", self.settings.key)
        self._key_needs_full = attr in _STD_ATTRS and attr not in SLIM_KEYS
        self._capture_plan: tuple[Any, bool] = (None, self._key_needs_full)  # (formatter, full)
        self._overflow = self.settings.overflow
        self._clock = Clock()
        # Audit and security records: their own queue and worker (built on the first such
        # record), durability "disk", keyed by tenant, never dropped by the overflow policy.
        self._stream_queue: deque[Any] = deque()
        self._stream_max = self.settings.memory.stream_queue_size if self.settings.memory else self._maxsize
        self._stream_lock = threading.Lock()
        self._stream_bound: tuple[Any, Any] = (None, None)
        self._stream_worker: Worker | None = None
        self._worker = self._new_worker()
        self._accepted = itertools.count()  # records emit() took (next() is atomic, whatever thread logs)
        self._shut = False  # closed at interpreter exit: later records cannot be sent by a thread
        self._health = Health()
        set_service(self.settings.identity.get("service", "-"))
        _HANDLERS.add(self)
        if self.settings.handle_sigterm and self._enabled:
            _install_sigterm()
        if levels_interval is not None:
            watch_levels_later(levels_interval)  # logger levels from a file, while the process runs
        if multiprocess_dir() and self._enabled:
            export_multiprocess(lambda: list(_HANDLERS))  # prometheus_client's multiprocess mode
        if self.settings.servers_defaulted and self._enabled:
            report("servers_default", "no Kafka address set (bootstrap_servers, KAFKA_BOOTSTRAP_SERVERS): "
                   f"using {self.settings.bootstrap_servers}", interval=3600.0)
        if self.settings.spool_off and self._enabled:
            report("spool_off", f"no disk spool: {self.settings.spool_off}; records wait in memory only while "
                   "Kafka is away (set spool_dir or LOGKAFKA_SPOOL_DIR to a writable directory, e.g. a mounted "
                   "volume)", interval=3600.0)
        if self._worker.spooling:  # records from an earlier run wait in the spool: send them now
            self._worker.start()
        st = self.settings
        if (st.spool_dir is not None and self._enabled
                and Spool.has_records(destination_dir(st.spool_dir, st.audit_topic, st.bootstrap_servers))):
            self._streams().start()  # audit or security records of an earlier run wait

    def _new_worker(self) -> Worker:
        worker = self._make_worker(self.settings.topic, self._queue, self._bind, self.settings.durability,
                                   self.settings.queue_size, self.settings.producer_config)
        # "disk": the caller writes each record to the spool before emit() returns
        self._write_ahead = self.settings.durability == "disk" and worker.spool is not None
        return worker

    def _make_worker(self, topic: str, queue: deque[Any], bind: Callable[[Any], BindPlan], durability: str,
                     queue_size: int, producer_config: dict[str, Any],
                     stream_topics: dict[Any, str] | None = None) -> Worker:
        """A worker for ``topic`` (named after it, spooling to its own directory when there is a spool)."""
        st = self.settings
        spool = None
        if st.spool_dir is not None and self._enabled:
            spool = Spool(destination_dir(st.spool_dir, topic, st.bootstrap_servers),
                          max_bytes=st.spool_max_bytes, fsync=st.spool_fsync,
                          **({"batch_bytes": st.memory.spool_batch} if st.memory else {}))
        return Worker(
            name=f"logkafka-{topic}",
            topic=topic,
            producer_config=producer_config,
            queue=queue,
            bind=bind,
            dropped=self.queue_drops,
            flush_timeout=st.flush_timeout,
            spool=spool,
            durability=durability,
            stream_topics=stream_topics,
            queue_size=queue_size,
        )

    def _streams(self) -> Worker:
        """The audit and security worker, built on first use."""
        worker = self._stream_worker
        if worker is not None:
            return worker
        with self._stream_lock:
            if self._stream_worker is None:
                st = self.settings
                self._stream_worker = self._make_worker(
                    st.audit_topic, self._stream_queue, self._bind_stream, "disk", self._stream_max,
                    st.stream_producer_config or st.producer_config,
                    {"audit": st.audit_topic, "security": st.security_topic})
            return self._stream_worker

    def _workers(self) -> list[Worker]:
        return [self._worker] if self._stream_worker is None else [self._worker, self._stream_worker]

    def _after_fork_in_child(self) -> None:
        """In a forked child: a queue, thread and producer of its own, made on its first record.

        The parent's queued records stay the parent's (never shipped twice); the
        parent's producer and its threads do not exist here and are left alone.
        """
        old = self._worker
        self._queue = deque()
        self._drop_lock = threading.Lock()
        self._dropped = {}
        self._accepted = itertools.count()
        old.after_fork_in_child()
        _ABANDONED.append(old)  # never destroyed here: librdkafka's state is the parent's
        self._worker = self._new_worker()
        old_streams = self._stream_worker
        if old_streams is not None:
            self._stream_queue = deque()
            self._stream_lock = threading.Lock()
            old_streams.after_fork_in_child()
            _ABANDONED.append(old_streams)
            self._stream_worker = None

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        """Set the formatter; a ``JsonFormatter``'s service identity becomes the handler's where it has none.

        So the Kafka client's ``client.id``, ``logkafka check`` and the records
        agree on the service the shared formatter names.
        """
        super().setFormatter(fmt)
        if isinstance(fmt, JsonFormatter):
            self._adopt_identity(fmt.identity)

    def _adopt_identity(self, base: Mapping[str, str]) -> None:
        st = self.settings
        identity = {**base, **self._explicit_identity}
        if identity == st.identity:
            return
        config = st.producer_config
        if config.get("client.id") == f"logkafka-{st.identity['service']}":  # ours, not the user's
            config["client.id"] = f"logkafka-{identity['service']}"  # the workers' producers read this dict
        self.settings = dataclasses.replace(st, identity=identity)
        if self._explicit_identity:
            self._resource = identity

    # -- the caller's side ----------------------------------------------------------
    def handle(self, record: logging.LogRecord) -> logging.LogRecord | bool:  # type: ignore[override]
        """Filter and emit without taking the handler lock: emit() needs none."""
        if self.filters:
            rv = self.filter(record)
            if isinstance(rv, _LogRecord):
                record = rv
            if not rv:
                return rv
        self.emit(record)
        return record if _FILTER_RETURNS_RECORD else True

    def emit(self, record: logging.LogRecord) -> None:
        """Capture ``record`` and queue it; no I/O (but the spool write of ``durability="disk"``), never raises."""
        try:
            if not self._enabled or _get_ident() in WORKER_IDENTS:
                return
            if record.name.startswith(_OWN_LOGGERS):
                if STREAM in record.__dict__:  # logkafka.audit() / security(): their own topics
                    self._emit_stream(record)
                return
            next(self._accepted)
            queue = self._queue
            depth = len(queue)
            plan = self._capture_plan
            formatter = self.formatter
            worker = self._worker
            if self._write_ahead or self._shut:
                # kept with the formatter of the moment: formatted as by a synchronous handler
                full = plan[1] if plan[0] is formatter else self._plan_capture(formatter)
                item = (capture if full else capture_slim)(record, self._resource, formatter)
                if self._shut:
                    self._late(item, worker)
                    return
                if worker.write_ahead(item):
                    depth = 0
                elif depth >= self._maxsize and not self._make_room(queue):
                    return
                else:
                    queue.append(item)  # the spool refused it: it goes from memory
            else:
                if depth >= self._maxsize and not self._make_room(queue):
                    return
                full = plan[1] if plan[0] is formatter else self._plan_capture(formatter)
                queue.append((capture if full else capture_slim)(record, self._resource, formatter))
            if not worker.running:
                self._start(worker, queue)
            elif worker.idle:
                worker.wake()
            elif depth >= self._yield_at and not depth & 255:
                # More than half full: the app logs faster than the handler's thread gets the GIL
                # to drain. One call in 256 hands the GIL over (no waiting on Kafka or disk: at
                # most one switch interval, and only while the thread wants it), instead of the
                # queue overflowing and records being dropped.
                _sleep(0)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def _start(self, worker: Worker, queue: deque[Any]) -> None:
        """Start the worker's thread; when none can start during interpreter teardown, what is queued is
        spooled now (or counted lost): no flush() will come to serve it."""
        _note_process()
        if worker.start() or not sys.is_finalizing():
            return  # (at exit before teardown, logging.shutdown()'s flush() serves the queue)
        while queue:
            item = queue.popleft()
            if type(item) is not Barrier:
                self._late(item, worker)

    def _late(self, item: dict[str, Any], worker: Worker) -> None:
        """A record logged after logging shut down at exit: no thread will send it. It goes to the spool
        for the next start; without a spool it is counted lost. Either is said once."""
        if worker.write_ahead(item):
            report("late", "records logged after logging shut down were written to the spool "
                   f"{worker.spool.directory if worker.spool else ''} for the next start", interval=3600.0)
            return
        self._drop("after_shutdown")
        report("late", f"records logged after logging shut down are lost (no spool to keep them): "
               f"{item.get('name', '')!s} {str(item.get('message', ''))[:80]!r}", interval=3600.0)

    def _emit_stream(self, record: logging.LogRecord) -> None:
        """Queue an audit or security record: no overflow policy drops it (only a full queue).

        These streams have ``durability="disk"``: the record is written to their spool first.
        """
        next(self._accepted)
        queue = self._stream_queue
        formatter = self.formatter
        plan = self._capture_plan
        full = plan[1] if plan[0] is formatter else self._plan_capture(formatter)
        item = (capture if full else capture_slim)(record, self._resource, formatter)
        worker = self._stream_worker or self._streams()
        if self._shut:
            self._late(item, worker)
            return
        if not worker.write_ahead(item):
            if len(queue) >= self._stream_max:
                self._drop("queue_full")
                report("dropped", "an audit or security record was dropped: their queue is full")
                return
            queue.append(item)
        if not worker.running:
            self._start(worker, queue)
        elif worker.idle:
            worker.wake()

    def _plan_capture(self, formatter: logging.Formatter | None) -> bool:
        """Whether records for ``formatter`` need every attribute captured; remembered per formatter."""
        slim = formatter is None or (isinstance(formatter, JsonFormatter) and formatter.slim_capture)
        full = not slim or self._key_needs_full
        self._capture_plan = (formatter, full)
        memory = self.settings.memory
        if memory is not None and not memory.queue_explicit:  # a full capture takes twice the memory
            self._maxsize = max(1, memory.queue_size // 2) if full else memory.queue_size
            self._yield_at = max(1, self._maxsize // 2)
        return full

    def _make_room(self, queue: deque[Any]) -> bool:
        """The queue is full: apply the overflow policy; True when the record may be queued."""
        policy = self._overflow
        if policy == "drop_oldest":
            try:
                oldest = queue.popleft()
            except IndexError:
                return True
            if type(oldest) is Barrier:  # a flush waits on it: keep it, drop the new record instead
                queue.appendleft(oldest)
                self._drop("queue_full")
                return False
            self._drop("drop_oldest")
            return True
        if policy == "block":
            deadline = time.monotonic() + self.settings.block_timeout
            worker = self._worker
            worker.wake()
            while len(queue) >= self._maxsize:
                if time.monotonic() >= deadline or not worker.running:
                    self._drop("block_timeout")
                    return False
                time.sleep(0.001)
            return True
        if policy == "spool" and self._wait_for_room(queue):
            return True
        # the worker did not make room for this record in time
        self._drop("drop_newest" if policy == "drop_newest" else "queue_full")
        return False

    def _wait_for_room(self, queue: deque[Any]) -> bool:
        """``overflow="spool"`` and the queue is full (a burst beyond the memory budget): the caller hands the
        handler's thread the GIL until there is room, up to ``block_timeout``, so the burst is kept, in order,
        at the pace of the disk or of a broker that acknowledges, instead of dropped. Without a spool, not
        unless a broker is known to answer, nor once the thread has waited on Kafka (librdkafka's buffer
        full) for ``_ROOM_STALL`` seconds without an acknowledgement, nor within a few seconds of such a
        wait giving up."""
        worker = self._worker
        now = time.monotonic()
        if not worker.running or now - self._room_gave_up < _ROOM_RETRY or (
                worker.spool is None and worker.broker_reachable is not True):
            return False  # (with a spool, the thread never waits on Kafka: what Kafka does not take goes to disk)
        deadline, acks, progress = now + self.settings.block_timeout, worker.delivered(), now
        worker.wake()
        while len(queue) >= self._maxsize:
            time.sleep(0.0002)
            now = time.monotonic()
            if worker.waiting_on_kafka():
                if worker.delivered() != acks:
                    acks, progress = worker.delivered(), now
                elif now - progress >= _ROOM_STALL:
                    break  # Kafka takes nothing: not the caller's wait
            if now >= deadline or not worker.running:
                break
        else:
            return True
        self._room_gave_up = time.monotonic()
        return False

    def _drop(self, reason: str) -> None:
        with self._drop_lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + 1

    def queue_drops(self) -> dict[str, int]:
        """Records dropped before the worker took them, by reason (the spool's losses it says itself)."""
        with self._drop_lock:
            return dict(self._dropped)

    # -- the worker's side ---------------------------------------------------------------
    def _bind(self, formatter: logging.Formatter | None) -> BindPlan:
        """How the worker turns records captured for ``formatter`` into messages.

        ``(encode, fallback, key_of, key, headers_of)``: ``encode`` may raise,
        ``fallback`` never does; ``key_of`` gives the partition key of a record,
        or is None when every record has ``key``; ``headers_of`` gives a
        record's Kafka headers. Worked out again only when the formatter
        changes. ``None`` (no formatter set when the record was logged) means
        the handler's default JsonFormatter.
        """
        formatter = self._formatter_of(formatter)
        bound = self._bound
        if bound[0] is formatter:
            return bound[1]  # type: ignore[no-any-return]
        key_of, key = self._key_plan(formatter)
        plan = self._plan(formatter, key_of, key)
        self._bound = (formatter, plan)
        return plan

    def _bind_stream(self, formatter: logging.Formatter | None) -> BindPlan:
        """``_bind`` for audit and security records: keyed by tenant."""
        formatter = self._formatter_of(formatter)
        bound = self._stream_bound
        if bound[0] is formatter:
            return bound[1]  # type: ignore[no-any-return]
        plan = self._plan(formatter, _tenant_key, None)
        self._stream_bound = (formatter, plan)
        return plan

    def _plan(self, formatter: logging.Formatter, key_of: KeyOf | None, key: bytes | None) -> BindPlan:
        clean: Callable[[str], str] | None = None
        if isinstance(formatter, JsonFormatter):
            fallback: Encode = formatter.encode_captured
            encode = formatter.render_captured if formatter.templated else fallback
            envelope = formatter.format_name == "envelope" or self.settings.format == "envelope"
            namespace = formatter.namespace or self.settings.namespace
            if formatter.redactor is not None:
                clean = formatter.clean_text
        else:
            encode = fallback = partial(_encode_with, formatter)
            envelope = self.settings.format == "envelope"
            namespace = self.settings.namespace
        if envelope:
            encode = self._enveloped(encode, namespace, clean)
            fallback = self._enveloped(fallback, namespace, clean)

        def headers_of(rd: dict[str, Any]) -> Headers:
            return _envelope.headers(rd, namespace, clean)
        return encode, fallback, key_of, key, headers_of

    def _enveloped(self, encode: Encode, namespace: str | None, clean: Callable[[str], str] | None) -> Encode:
        clock, identity = self._clock, self.settings.identity
        wrap = _envelope.wrap

        def enveloped(rd: dict[str, Any]) -> bytes:
            source = (rd.get("_lk_res") or identity)["service"]
            return wrap(rd, encode(rd), timestamp=clock(rd["created"]), namespace=namespace, source=source,
                        clean=clean)
        return enveloped

    def _formatter_of(self, formatter: logging.Formatter | None) -> logging.Formatter:
        if formatter is None:
            formatter = self._default_formatter
            if formatter is None:
                identity = self.settings.identity
                formatter = self._default_formatter = JsonFormatter(
                    service_name=identity["service"], environment=identity["environment"],
                    version=identity["version"], instance_id=identity["instance_id"],
                    fields=self.settings.fields, namespace=self.settings.namespace, **self._redaction,
                )
                if self.formatter is None:
                    self.formatter = formatter
        return formatter

    def _key_plan(self, formatter: logging.Formatter) -> tuple[Callable[[dict[str, Any]], bytes | None] | None,
                                                               bytes | None]:
        """(key_of, None) for a key that depends on the record, (None, key) for one that does not."""
        key = self.settings.key
        if key is None:
            return None, None
        if key in _IDENTITY_KEYS or key == "host":
            res = self._resource
            if res is None:
                res = formatter.identity if isinstance(formatter, JsonFormatter) else self.settings.identity
            return None, _key_bytes(HOST if key == "host" else res[key])
        kind, _, name = key.partition(".")
        if kind == "context" and name:
            return (lambda rd: _key_bytes(rd[CTX].get(name))), None
        if kind == "extra" and name:
            if name in _OWN_FIELD_EXTRAS:
                return (lambda rd: _key_bytes(rd.get(name))), None
            shipped = extra_name(name)
            return (lambda rd: _key_bytes(rd[EXTRA].get(shipped))), None
        attr = _RECORD_KEYS.get(key, key)
        if attr in _STD_ATTRS:
            return (lambda rd: _key_bytes(rd.get(attr))), None
        if attr == "event_id":  # the record's event id, whoever chose it
            return (lambda rd: _key_bytes(event_id_of(rd))), None
        shipped = attr if attr in _OWN_FIELD_EXTRAS else extra_name(attr)
        span_part = {"trace_id": 0, "span_id": 1}.get(attr)

        def record_key(rd: dict[str, Any]) -> bytes | None:
            """The span's id (trace_id, span_id), else an extra, else a bound value."""
            if span_part is not None:
                ids = _tracing.span_ids(rd.get(SPAN))
                if ids is not None:
                    return _tracing.hex_ids(ids)[span_part].encode()
            value = rd.get(shipped) if attr in _OWN_FIELD_EXTRAS else rd[EXTRA].get(shipped)
            return _key_bytes(value if value is not None else rd[CTX].get(attr))
        return record_key, None

    # -- flush, close, stats ---------------------------------------------------------------
    # Returns whether everything was settled; logging.Handler.flush returns None,
    # and every caller of the base method ignores the result.
    def flush(self, timeout: float | None = None) -> bool:  # type: ignore[override]
        """Wait until every record queued before the call is acknowledged, or ``timeout``.

        ``timeout`` defaults to ``flush_timeout``. Returns True when everything
        was settled (acknowledged, or failed and counted) in time.
        """
        if not self._enabled or "_worker" not in self.__dict__:  # off, or its construction failed
            return True
        limit = self.settings.flush_timeout if timeout is None else max(0.0, float(timeout))
        limit = _exit_left(limit)[0]  # at exit, within the process's one budget
        done = self._settle(limit, give_up_unreachable=_EXITING)
        if not done:
            self._flush_gave_up = time.monotonic()
        return done

    def _settle(self, limit: float, *, give_up_unreachable: bool) -> bool:
        """A barrier in each queue, then wait for all of them (see ``_wait``) for up to ``limit`` seconds."""
        deadline = time.monotonic() + limit
        waits = []
        for worker, queue in ((self._worker, self._queue), (self._stream_worker, self._stream_queue)):
            if worker is None or (not queue and worker.settled()):
                continue
            barrier = Barrier(deadline)
            queue.append(barrier)
            waits.append((worker, barrier))
        done = True
        for worker, barrier in waits:
            done = self._wait(worker, barrier, deadline, give_up_unreachable=give_up_unreachable) and done
        return done

    @staticmethod
    def _wait(worker: Worker, barrier: Barrier, deadline: float, *, give_up_unreachable: bool) -> bool:
        """Wait for ``barrier`` until ``deadline``; with ``give_up_unreachable``, stop as soon as the
        worker knows no broker answers (waiting longer would only delay the spool write)."""
        if not give_up_unreachable or not (worker.running or worker.start()):
            # no thread (interpreter exit): served here, in one go until the deadline
            return worker.wait_for(barrier, max(0.0, deadline - time.monotonic()))
        while True:
            left = deadline - time.monotonic()
            if worker.wait_for(barrier, max(0.0, min(left, _UNREACHABLE_LOOK))):
                return True
            if left <= 0 or worker.unreachable:
                barrier.deadline = 0.0  # given up: it no longer holds back the records behind it
                return False

    def close(self) -> None:
        """Deliver what was queued before the call (up to ``flush_timeout``) and let the thread end.

        Records logged to the handler after ``close()`` are still delivered by
        the thread before it ends, so reconfiguring logging loses nothing.
        """
        try:
            if self._enabled and "_worker" in self.__dict__:
                timeout, spill = _exit_left(self.settings.flush_timeout)
                if time.monotonic() - self._flush_gave_up < self.settings.flush_timeout:
                    timeout = 0.0  # logging.shutdown() just waited in flush(), and gave up
                # Wait only for records queued before close(): other threads may go on logging
                # to this handler while dictConfig, holding logging's lock, replaces it. When no
                # broker answers, stop waiting: what is pending goes to the spool now.
                settled = self._settle(timeout, give_up_unreachable=True)
                for worker in self._workers():
                    worker.stop(time.monotonic() + (self.settings.flush_timeout if settled else 0.0), exiting=_EXITING)
                if not settled:  # the thread now spools (or fails and counts) what is unsettled
                    # what is left of the exit budget (at least its reserve), up to _SPILL_WAIT
                    deadline = time.monotonic() + (_SPILL_WAIT if _EXIT_DEADLINE is None or not _EXITING else
                                                   max(spill, min(_SPILL_WAIT, _EXIT_DEADLINE - time.monotonic())))
                    for worker in self._workers():
                        worker.join(max(0.0, deadline - time.monotonic()))
                    if _EXITING and any(w.running for w in self._workers()):
                        ledger = self.stats()["ledger"]
                        waiting = ledger["in_flight"] + ledger["queued"]  # neither sent nor in the spool yet
                        batch = any(w.running and w.handling() for w in self._workers())
                        if waiting or batch:
                            more = ", and those of the batch its thread was handling" if batch else ""
                            report("exit_short", f"{self.settings.topic}: the exit's time ran out with {waiting} "
                                   f"records neither acknowledged nor written to the spool{more}: they may be "
                                   "lost (a longer flush_timeout, or the platform's grace period, gives them "
                                   "time)", interval=0.0)
                if _EXITING:
                    self._shut = True  # from here on no thread may run: records go to the spool at once
        finally:
            super().close()

    def health(self) -> dict[str, Any]:
        """``{"status": "ok" | "degraded" | "failing", "reasons": [...]}``, for probes (see ``logkafka.health``)."""
        return self._health.assess(self.stats())

    def stats(self) -> dict[str, Any]:
        """Counters of this handler: what was delivered, failed, dropped, and what waits.

        Counters add up the application stream and the audit and security
        streams; ``streams`` gives each worker's own counts by topic.
        """
        w = self._worker
        with self._drop_lock:
            dropped = dict(self._dropped)
        workers = self._workers()
        spool_stats = {"spooled": 0, "spool_dropped": 0, "spool_torn": 0, "spool_errors": 0, "spool_bytes": 0}
        inherited = handed_over = 0
        for worker in workers:
            if worker.spool is not None:
                for reason, n in (("spool_full", worker.spool.dropped), ("spool_torn", worker.spool.torn),
                                  ("spool_error", worker.spool_lost)):
                    if n:
                        dropped[reason] = dropped.get(reason, 0) + n
                for name, value in worker.spool.stats().items():
                    spool_stats[name] += value
                inherited += worker.spool.inherited
                handed_over += worker.spool.handed_over
        streams = {}
        for worker, queue in zip(workers, (self._queue, self._stream_queue), strict=False):
            streams[worker.topic] = {
                "queue_depth": sum(1 for item in list(queue) if type(item) is not Barrier),
                "produced": worker.produced(), "delivered": worker.delivered(), "failed": worker.failed,
                "in_flight": worker.in_flight(), "spooling": worker.spooling,
            }
        reachable = [wk.broker_reachable for wk in workers]
        failed = sum(wk.failed for wk in workers)
        lost = {**dropped, "failed": failed} if failed else dict(dropped)
        accepted = _count_of(self._accepted)
        delivered = sum(wk.delivered() for wk in workers)
        in_flight = sum(wk.in_flight() for wk in workers)
        queued = sum(s["queue_depth"] for s in streams.values()) + sum(wk.held() for wk in workers)
        spooled = sum(wk.spooled_waiting() for wk in workers)
        balanced = accepted + inherited == delivered + in_flight + queued + spooled + handed_over + sum(lost.values())
        ledger = {"accepted": accepted, "inherited": inherited, "delivered": delivered, "in_flight": in_flight,
                  "queued": queued, "spooled": spooled, "handed_over": handed_over, "lost": lost,
                  "balanced": balanced}
        return {
            "enabled": self._enabled,
            "topic": self.settings.topic,
            "queue_depth": sum(s["queue_depth"] for s in streams.values()),
            "queue_size": self._maxsize,
            "memory_budget": self.settings.memory.budget if self.settings.memory else None,
            "produced": sum(wk.produced() for wk in workers),
            "delivered": sum(wk.delivered() for wk in workers),
            "failed": sum(wk.failed for wk in workers),
            "in_flight": sum(wk.in_flight() for wk in workers),
            "dropped": dropped,
            "dropped_total": sum(dropped.values()),
            "errors": sum(wk.errors for wk in workers),
            "last_error": next((wk.last_error for wk in reversed(workers) if wk.last_error), None),
            "broker_reachable": False if False in reachable else w.broker_reachable,
            "spooling": any(wk.spooling for wk in workers),
            "replayed": sum(wk.replayed for wk in workers),
            "producer_rebuilds": sum(wk.rebuilds for wk in workers),
            "truncated": sum(wk.truncated for wk in workers),
            "latency_s": w.latency(),
            **spool_stats,
            "spool_dir": self.settings.spool_dir,
            "spool_off": self.settings.spool_off,
            "spool_refusing": next((wk.spool.last_error for wk in workers
                                    if wk.spool is not None and not wk.spool.usable()), None),
            "trouble_s": max((t for wk in workers if (t := wk.trouble_for()) is not None), default=None),
            "unrouted": unrouted(),
            "streams": streams,
            "by_stream": self._by_stream(),
            "ledger": ledger,
        }

    def _by_stream(self) -> dict[str, dict[str, Any]]:
        """Delivered and failed records, whether the thread runs and client errors, for each of the three
        streams (audit and security share one thread: its client errors are listed under audit)."""
        st = self.settings
        app = self._worker
        out: dict[str, dict[str, Any]] = {"application": {
            "topic": st.topic, "delivered": app.delivered(), "failed": app.failed, "started": app.running,
            "spooled": app.spool.spooled if app.spool else 0, "replayed": app.replayed,
            "error_counts": dict(app.error_counts)}}
        streams = self._stream_worker
        counts = streams.by_topic() if streams is not None else {}
        for name, topic in (("audit", st.audit_topic), ("security", st.security_topic)):
            mine = counts.get(topic, {"delivered": 0, "failed": 0})
            if name == "security" and topic == st.audit_topic:  # one topic for both: counted under audit
                mine = {"delivered": 0, "failed": 0}
            shared = streams is not None and name == "audit"  # the shared thread's own counts: under audit
            out[name] = {"topic": topic, **mine, "started": bool(streams and streams.running),
                         "spooled": streams.spool.spooled if shared and streams and streams.spool else 0,
                         "replayed": streams.replayed if shared and streams else 0,
                         "error_counts": dict(streams.error_counts) if shared and streams else {}}
        return out


# The signature tools show (help(), IDEs, a caller binding arguments) is __init__'s, not __new__'s.
_INIT = inspect.signature(KafkaLogHandler.__init__)
KafkaLogHandler.__signature__ = _INIT.replace(  # type: ignore[attr-defined]
    parameters=list(_INIT.parameters.values())[1:])
_SETTINGS = list(KafkaLogHandler.__signature__.parameters)  # type: ignore[attr-defined]


def _after_fork_in_child() -> None:
    WORKER_IDENTS.clear()
    for handler in list(_HANDLERS):
        try:
            handler._after_fork_in_child()
        except Exception as exc:  # never let a fork fail because of logging
            report("fork", f"could not reset a handler after fork: {exc}")


def _before_fork() -> None:
    """A fork soon after a handler's producer was made waits (up to ``_FORK_WAIT``) for its connections:
    see ``Worker.wait_connected`` (gunicorn's master forks its workers just after its first records)."""
    deadline = time.monotonic() + _FORK_WAIT
    for handler in list(_HANDLERS):
        for worker in handler._workers():
            try:
                worker.wait_connected(deadline)
            except Exception:  # never let a fork fail because of logging
                pass


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
