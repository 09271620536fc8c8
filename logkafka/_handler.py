"""``KafkaLogHandler``: the logging handler that ships records to Kafka.

The caller's side lives here (settings, ``emit``: capture and queue, ``flush``, ``close``, ``stats``);
the rest of a record's path is the worker's (``_worker``: the thread, ``_sender``: each turn's work).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from logkafka import _process
from logkafka._encoding import Encoder, key_needs_every_attribute
from logkafka._formatter import JsonFormatter
from logkafka._health import Health
from logkafka._outlets import Outlets
from logkafka._queue import WORKER_IDENTS, Barrier
from logkafka._record import OWN_LOGGERS, STREAM, capture, capture_slim, check_identity, default_identity
from logkafka._redact import Redactor, redaction_settings
from logkafka._report import report, set_service
from logkafka._settings import HandlerSettings, build_settings
from logkafka._values import env_level, multiprocess_dir

if TYPE_CHECKING:
    from logkafka._worker import Worker

_get_ident = threading.get_ident
_sleep = time.sleep
_FILTER_RETURNS_RECORD = sys.version_info >= (3, 12)  # Handler.handle's return value since 3.12
_LogRecord = logging.LogRecord
Capture = Callable[[logging.LogRecord, Mapping[str, str] | None, logging.Formatter | None], dict[str, Any]]
#: The keys of stats(), in the order it shows them.
_STATS_ORDER = (
    "enabled", "topic", "queue_depth", "queue_size", "memory_budget", "produced", "delivered", "failed", "in_flight",
    "dropped", "dropped_total", "errors", "last_error", "broker_reachable", "spooling", "replayed",
    "producer_rebuilds", "truncated", "latency_s", "spooled", "spool_dropped", "spool_torn", "spool_errors",
    "spool_bytes", "spool_dir", "spool_off", "spool_refusing", "trouble_s", "unrouted", "streams", "by_stream",
    "ledger",
)
_UNREACHABLE_LOOK = 0.05  # seconds between looks at whether the broker is known unreachable, at close
_FORK_WAIT = 2.0  # seconds a fork may wait for a new producer's connections


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


def _listed(values: Iterable[Any]) -> Any:
    """A one-shot iterator as a list (it is read twice: checked now, used by the default formatter)."""
    return list(values) if isinstance(values, Iterator) else values


def _wait(worker: Worker, barrier: Barrier, deadline: float) -> bool:
    """Wait for ``barrier`` until ``deadline``."""
    return worker.wait_for(barrier, max(0.0, deadline - time.monotonic()))


def _wait_unless_unreachable(worker: Worker, barrier: Barrier, deadline: float) -> bool:
    """Wait for ``barrier`` until ``deadline``, but stop as soon as the worker knows no broker answers
    (waiting longer would only delay the spool write)."""
    if not (worker.running or worker.start()):
        return _wait(worker, barrier, deadline)  # no thread (interpreter exit): served here, in one go
    while True:
        left = deadline - time.monotonic()
        if worker.wait_for(barrier, max(0.0, min(left, _UNREACHABLE_LOOK))):
            return True
        if left <= 0 or worker.unreachable:
            barrier.deadline = 0.0  # given up: it no longer holds back the records behind it
            return False


def _say_exit_short(topic: str, ledger: dict[str, Any], batch: bool) -> None:
    """The exit's time ran out before the threads wrote what is unsettled to the spool: said, with how many
    (``batch``: a thread was in the middle of a batch, whose records are not counted yet)."""
    waiting = ledger["in_flight"] + ledger["queued"]  # neither sent nor in the spool yet
    if waiting or batch:
        more = ", and those of the batch its thread was handling" if batch else ""
        report("exit_short", f"{topic}: the exit's time ran out with {waiting} records neither acknowledged "
               f"nor written to the spool{more}: they may be lost (a longer flush_timeout, or the platform's "
               "grace period, gives them time)", interval=0.0)


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
        audit_chain_key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None, encoding: str | None = None,
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
        levels_interval = _levels_interval()
        self.settings: HandlerSettings = build_settings(
            bootstrap_servers=bootstrap_servers, topic=topic, producer_config=producer_config, queue_size=queue_size,
            flush_timeout=flush_timeout, key=key, identity={**default_identity(), **explicit}, enabled=enabled,
            spool_dir=spool_dir, spool_max_bytes=spool_max_bytes,  # type: ignore[arg-type]
            spool_fsync=spool_fsync, durability=durability, overflow=overflow, block_timeout=block_timeout,
            audit_topic=audit_topic, security_topic=security_topic, namespace=namespace, format=format,
            fields=fields, handle_sigterm=handle_sigterm, memory_budget=memory_budget, audit_chain_key=audit_chain_key,
            headers=headers, encoding=encoding)
        # Checked now (a ValueError naming the setting); used by the default formatter, which adds
        # the LOGKAFKA_REDACT_* variables itself.
        keys, patterns, allow = _listed(redact_keys), _listed(redact_patterns), _listed(redact_allow)
        redaction = {"redact": redact, "redact_keys": keys, "redact_patterns": patterns, "redact_allow": allow}
        r = redaction_settings(redact, keys, patterns, allow)
        Redactor(keys=r["redact_keys"], patterns=r["redact_patterns"], allow=r["redact_allow"], enabled=r["redact"])
        super().__init__(env_level(level))
        st = self.settings
        self._explicit_identity = explicit
        self._encoder = Encoder(st, redaction)
        self._encoder.resource = self._resource = st.identity if explicit else None
        self._maxsize = st.queue_size
        self._yield_at = max(1, self._maxsize // 2)
        self._enabled = st.enabled
        self._flush_gave_up = -1e9
        # Whether emit() must capture every record attribute: for formatters that may read
        # any, and for a key that names one a slim capture lacks.
        self._key_needs_full = key_needs_every_attribute(st.key)
        # (formatter, how its records are captured)
        self._capture_plan: tuple[Any, Capture] = (None, capture if self._key_needs_full else capture_slim)
        self._outlets = Outlets(st, self._encoder, self._enabled)
        self._shut = False  # closed at interpreter exit: later records cannot be sent by a thread
        self._health = Health()
        set_service(st.identity.get("service", "-"))
        _process.register(self)
        if levels_interval is not None:  # (enabled or not: the levels are the process's)
            _watch_levels(levels_interval)  # logger levels from a file, while the process runs
        if self._enabled:
            self._begin()

    def _begin(self) -> None:
        """What an enabled handler does once made: the process-wide helpers it asks for, what it must say,
        and the records of an earlier run waiting in the spool."""
        st = self.settings
        if st.handle_sigterm:
            _process.install_sigterm()
        _export_multiprocess()
        if st.servers_defaulted:
            report("servers_default", "no Kafka address set (bootstrap_servers, KAFKA_BOOTSTRAP_SERVERS): "
                   f"using {st.bootstrap_servers}", interval=3600.0)
        if st.spool_off:
            report("spool_off", f"no disk spool: {st.spool_off}; records wait in memory only while Kafka is away "
                   "(set spool_dir or LOGKAFKA_SPOOL_DIR to a writable directory, e.g. a mounted volume)",
                   interval=3600.0)
        self._outlets.start_earlier()

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
        self.settings = self._encoder.settings = self._outlets.settings = dataclasses.replace(
            st, identity=identity)
        if self._explicit_identity:
            self._resource = self._encoder.resource = identity

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
            if record.name.startswith(OWN_LOGGERS):
                if STREAM in record.__dict__:  # logkafka.audit() / security(): their own topics
                    self._emit_stream(record)
                return
            outlets = self._outlets
            next(outlets.accepted)
            queue = outlets.queue
            depth = len(queue)
            plan = self._capture_plan
            formatter = self.formatter
            worker = outlets.worker
            if outlets.write_ahead or self._shut:
                # kept with the formatter of the moment: formatted as by a synchronous handler
                item = (plan[1] if plan[0] is formatter else self._plan_capture(formatter))(
                    record, self._resource, formatter)
                if self._shut:
                    outlets.late(item, worker)
                    return
                if worker.write_ahead(item):
                    depth = 0
                elif depth >= self._maxsize and not outlets.overflow.make_room(queue, self._maxsize, worker):
                    return
                else:
                    queue.append(item)  # the spool refused it: it goes from memory
            else:
                if depth >= self._maxsize and not outlets.overflow.make_room(queue, self._maxsize, worker):
                    return
                queue.append((plan[1] if plan[0] is formatter else self._plan_capture(formatter))(
                    record, self._resource, formatter))
            if not worker.running:
                outlets.start(worker, queue)
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

    def _emit_stream(self, record: logging.LogRecord) -> None:
        """An audit or security record: to its own queue (see ``Outlets.put_stream``)."""
        next(self._outlets.accepted)
        formatter = self.formatter
        plan = self._capture_plan
        capture_now = plan[1] if plan[0] is formatter else self._plan_capture(formatter)
        item = capture_now(record, self._resource, formatter)
        if self._shut:
            self._outlets.late(item, self._outlets.streams())
        else:
            self._outlets.put_stream(item)

    def _plan_capture(self, formatter: logging.Formatter | None) -> Capture:
        """How records for ``formatter`` are captured (every attribute, or the slim set it reads);
        remembered per formatter."""
        slim = formatter is None or (isinstance(formatter, JsonFormatter) and formatter.slim_capture)
        full = not slim or self._key_needs_full
        how = capture if full else capture_slim
        self._capture_plan = (formatter, how)
        memory = self.settings.memory
        if memory is not None and not memory.queue_explicit:  # a full capture takes twice the memory
            self._maxsize = max(1, memory.queue_size // 2) if full else memory.queue_size
            self._yield_at = max(1, self._maxsize // 2)
        return how

    def queue_drops(self) -> dict[str, int]:
        """Records dropped before the worker took them, by reason (the spool's losses it says itself)."""
        return self._outlets.drops.counts()

    # -- flush, close, stats ---------------------------------------------------------------
    # Returns whether everything was settled; logging.Handler.flush returns None,
    # and every caller of the base method ignores the result.
    def flush(self, timeout: float | None = None) -> bool:  # type: ignore[override]
        """Wait until every record queued before the call is acknowledged, or ``timeout``.

        ``timeout`` defaults to ``flush_timeout``. Returns True when everything
        was settled (acknowledged, or failed and counted) in time.
        """
        if not self._enabled or "_outlets" not in self.__dict__:  # off, or its construction failed
            return True
        limit = self.settings.flush_timeout if timeout is None else max(0.0, float(timeout))
        limit = _process.exit_left(limit).wait  # at exit, within the process's one budget
        done = self._outlets.settle(limit, _wait_unless_unreachable if _process.exiting() else _wait)
        if not done:
            self._flush_gave_up = time.monotonic()
        return done

    def close(self) -> None:
        """Deliver what was queued before the call (up to ``flush_timeout``) and let the thread end.

        Records logged to the handler after ``close()`` are still delivered by
        the thread before it ends, so reconfiguring logging loses nothing.
        """
        try:
            if self._enabled and "_outlets" in self.__dict__:
                self._close()
        finally:
            super().close()

    def _close(self) -> None:
        exiting = _process.exiting()
        timeout, spill = _process.exit_left(self.settings.flush_timeout)
        if time.monotonic() - self._flush_gave_up < self.settings.flush_timeout:
            timeout = 0.0  # logging.shutdown() just waited in flush(), and gave up
        # Wait only for records queued before close(): other threads may go on logging
        # to this handler while dictConfig, holding logging's lock, replaces it. When no
        # broker answers, stop waiting: what is pending goes to the spool now.
        outlets = self._outlets
        settled = outlets.settle(timeout, _wait_unless_unreachable)
        deadline = time.monotonic() + (self.settings.flush_timeout if settled else 0.0)
        if exiting:
            outlets.stop_at_exit(deadline)
        else:
            outlets.stop(deadline)
        if not settled:  # the thread now spools (or fails and counts) what is unsettled
            if not outlets.join(_process.spill_deadline(spill) - time.monotonic()) and exiting:
                _say_exit_short(self.settings.topic, self.stats()["ledger"], outlets.handling())
        if exiting:
            self._shut = True  # from here on no thread may run: records go to the spool at once

    def wait_closed(self, timeout: float | None = None) -> bool:
        """After ``close()``: wait up to ``timeout`` seconds (default ``flush_timeout``) for the handler's
        threads to end; True when they have (their producers disconnected)."""
        if "_outlets" not in self.__dict__:
            return True
        return self._outlets.join(self.settings.flush_timeout if timeout is None else timeout)

    def health(self) -> dict[str, Any]:
        """``{"status": "ok" | "degraded" | "failing", "reasons": [...]}``, for probes (see ``logkafka.health``)."""
        return self._health.assess(self.stats())

    def stats(self) -> dict[str, Any]:
        """Counters of this handler: what was delivered, failed, dropped, and what waits.

        Counters add up the application stream and the audit and security
        streams; ``streams`` gives each worker's own counts by topic.
        """
        st = self.settings
        counts = {"enabled": self._enabled, "topic": st.topic, "queue_size": self._maxsize,
                  "memory_budget": st.memory.budget if st.memory else None, **self._outlets.stats(),
                  "spool_dir": st.spool_dir, "spool_off": st.spool_off, "unrouted": _unrouted()}
        return {key: counts[key] for key in _STATS_ORDER}


# What only some processes use is imported when they use it (an `import logkafka` stays cheap).
def _levels_interval() -> float | None:
    """How often to read ``LOGKAFKA_LEVELS_FILE`` (checked now), when it is set."""
    if not os.environ.get("LOGKAFKA_LEVELS_FILE"):
        return None
    from logkafka._levels import env_interval

    return env_interval()


def _watch_levels(interval: float) -> None:
    from logkafka._levels import watch_levels_later

    watch_levels_later(interval)  # logger levels from a file, while the process runs


def _export_multiprocess() -> None:
    """prometheus_client's multiprocess mode, when ``PROMETHEUS_MULTIPROC_DIR`` is set."""
    if multiprocess_dir():
        from logkafka._prometheus import export_multiprocess

        export_multiprocess(_process.handlers)


def _unrouted() -> dict[str, int]:
    """Audit and security records that no handler took (see ``logkafka.audit``)."""
    from logkafka._audit import unrouted  # loaded by logkafka.audit() itself, or here when stats() asks

    return unrouted()


# The signature tools show (help(), IDEs, a caller binding arguments) is __init__'s, not __new__'s.
_INIT = inspect.signature(KafkaLogHandler.__init__)
KafkaLogHandler.__signature__ = _INIT.replace(  # type: ignore[attr-defined]
    parameters=list(_INIT.parameters.values())[1:])
_SETTINGS = list(KafkaLogHandler.__signature__.parameters)  # type: ignore[attr-defined]


def aim_at(handler: KafkaLogHandler, topic: str) -> None:
    """Point ``handler``'s application records at ``topic``, before anything was logged through it.

    The same settings, formatter, producer configuration and worker code: only the destination
    differs, so ``logkafka check``'s probe tests the application's delivery path without landing
    among its records.
    """
    handler.settings = handler._encoder.settings = handler._outlets.settings = dataclasses.replace(
        handler.settings, topic=topic)
    handler._outlets.renew_worker()


def explicit_identity(handler: KafkaLogHandler) -> dict[str, str]:
    """The service identity given to ``handler`` itself (``service_name`` and the like), without the
    environment's or a formatter's."""
    return dict(handler._explicit_identity)


def _after_fork_in_child() -> None:
    WORKER_IDENTS.clear()
    for handler in _process.handlers():
        if isinstance(handler, KafkaLogHandler):
            try:
                handler._outlets.after_fork_in_child()
            except Exception as exc:  # never let a fork fail because of logging
                report("fork", f"could not reset a handler after fork: {exc}")


def _before_fork() -> None:
    """A fork soon after a handler's producer was made waits (up to ``_FORK_WAIT``) for its connections:
    see ``Session.wait_connected`` (gunicorn's master forks its workers just after its first records)."""
    deadline = time.monotonic() + _FORK_WAIT
    for handler in _process.handlers():
        if isinstance(handler, KafkaLogHandler):
            for worker in handler._outlets.workers():
                try:
                    worker.wait_connected(deadline)
                except Exception:  # never let a fork fail because of logging
                    pass


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
