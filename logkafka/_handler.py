"""``KafkaLogHandler``: the logging handler that ships records to Kafka."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from logkafka import _context, _tracing
from logkafka._formatter import (
    CTX, ERROR, HOST, RESOURCE, SPAN, JsonFormatter, default_identity, error_info, event_id_of,
)
from logkafka._report import report
from logkafka._settings import HandlerSettings, build_settings
from logkafka._snapshot import jsonable, to_text
from logkafka._worker import WORKER_IDENTS, Barrier, Worker

#: Loggers whose records never enter a KafkaLogHandler: our own and the Kafka client's.
_OWN_LOGGERS = ("logkafka", "confluent_kafka")
_LogRecord = logging.LogRecord
_new_record = _LogRecord.__new__
_STD_ATTRS = frozenset(_LogRecord("n", 0, "p", 0, "m", None, None).__dict__) | {"taskName"}
_N_STD = len(_LogRecord("n", 0, "p", 0, "m", None, None).__dict__)
_FLAT = frozenset({str, int, bool, type(None)})
_IDENTITY_KEYS = {"service", "environment", "version", "instance_id"}
_RECORD_KEYS = {
    "logger": "name", "level": "levelname", "function": "funcName", "line": "lineno",
    "thread": "threadName", "module": "module", "process": "process",
}


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
        level: int | str = logging.NOTSET,
    ) -> None:
        identity = default_identity()
        explicit = {}
        for name, value in (("service", service_name), ("environment", environment),
                            ("version", version), ("instance_id", instance_id)):
            if value is not None:
                if not isinstance(value, str) or not value:
                    setting = "service_name" if name == "service" else name
                    raise ValueError(f"{setting}: must be a non-empty string, got {value!r}")
                explicit[name] = value
        identity.update(explicit)
        self.settings: HandlerSettings = build_settings(
            bootstrap_servers=bootstrap_servers,
            topic=topic,
            producer_config=producer_config,
            queue_size=queue_size,
            flush_timeout=flush_timeout,
            key=key,
            identity=identity,
            enabled=enabled,
        )
        super().__init__(level)
        self._resource = identity if explicit else None
        self._queue: deque[Any] = deque()
        self._maxsize = self.settings.queue_size
        self._dropped: dict[str, int] = {}
        self._drop_lock = threading.Lock()
        self._enabled = self.settings.enabled
        self._closed = False
        self._flush_gave_up = -1e9
        self._worker = Worker(
            name=f"logkafka-{self.settings.topic}",
            topic=self.settings.topic,
            producer_config=self.settings.producer_config,
            queue=self._queue,
            encode=self._encode,
            key_of=self._make_key_of(self.settings.key),
            dropped=self._dropped_total,
            flush_timeout=self.settings.flush_timeout,
        )

    # -- the caller's side ----------------------------------------------------------
    def handle(self, record: logging.LogRecord) -> logging.LogRecord | bool:  # type: ignore[override]
        """Filter and emit without taking the handler lock: emit() needs none."""
        rv = self.filter(record)
        if isinstance(rv, _LogRecord):
            record = rv
        if rv:
            self.emit(record)
        return rv

    def emit(self, record: logging.LogRecord) -> None:
        """Capture ``record`` and queue it; no I/O, no waiting, never raises."""
        try:
            if (not self._enabled or record.name.startswith(_OWN_LOGGERS)
                    or threading.get_ident() in WORKER_IDENTS):
                return
            queue = self._queue
            if len(queue) >= self._maxsize:
                self._drop("queue_full")
                return
            queue.append(self.capture(record))
            worker = self._worker
            if not worker.running:
                worker.start()  # False only at interpreter exit: flush() then serves the queue
            elif worker.idle:
                worker.wake()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def capture(self, record: logging.LogRecord) -> logging.LogRecord:
        """A copy of ``record`` with everything fixed as it is at the call.

        The message is rendered, the exception formatted, the bound context and
        the active span read, mutable ``extra`` values copied. The caller's
        record only gains ``event_id``, so every handler shows the same id.
        """
        d = record.__dict__.copy()
        try:
            message = record.getMessage()
        except Exception as exc:
            message = f"{to_text(record.msg)} {to_text(record.args)} <format error: {to_text(exc)}>"
        if type(message) is not str:
            message = to_text(message)
        d["message"] = d["msg"] = message
        d["args"] = None
        if record.exc_info:
            d[ERROR] = error_info(record.exc_info)
            d["exc_info"] = None
        else:
            d[ERROR] = None
        if len(d) > _N_STD + 2:  # extra keys: copy what later mutation could change
            for k, v in d.items():
                if type(v) not in _FLAT and k not in _STD_ATTRS:
                    d[k] = jsonable(v)
        d[CTX] = _context.current()
        d[SPAN] = _tracing.current_span_ids()
        d["event_id"] = event_id_of(record)
        if self._resource is not None:
            d[RESOURCE] = self._resource
        copy = _new_record(_LogRecord)
        copy.__dict__ = d
        return copy

    def _drop(self, reason: str) -> None:
        with self._drop_lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + 1

    def _dropped_total(self) -> int:
        return sum(self._dropped.values())

    # -- the worker's side ---------------------------------------------------------------
    def _encode(self, record: logging.LogRecord) -> bytes:
        formatter = self.formatter
        if formatter is None:
            formatter = self.formatter = JsonFormatter(
                service_name=self.settings.identity["service"],
                environment=self.settings.identity["environment"],
                version=self.settings.identity["version"],
                instance_id=self.settings.identity["instance_id"],
            )
        if isinstance(formatter, JsonFormatter):
            return formatter.encode(record)
        try:
            return formatter.format(record).encode("utf-8", "replace")
        except Exception as exc:
            report("format", f"formatter {type(formatter).__name__} failed, shipping a minimal record: {exc}")
            return JsonFormatter().encode(record)

    def _make_key_of(self, key: str | None) -> Callable[[logging.LogRecord], bytes | None]:
        if key is None:
            return lambda record: None
        if key in _IDENTITY_KEYS or key == "host":
            def identity_key(record: logging.LogRecord) -> bytes | None:
                res = record.__dict__.get(RESOURCE)
                if res is None:
                    fmt = self.formatter
                    res = fmt.identity if isinstance(fmt, JsonFormatter) else self.settings.identity
                return _key_bytes(res.get(key) if key != "host" else HOST)
            return identity_key
        kind, _, name = key.partition(".")
        if kind == "context" and name:
            return lambda record: _key_bytes(record.__dict__.get(CTX, {}).get(name))
        if kind == "extra" and name:
            return lambda record: _key_bytes(record.__dict__.get(name))
        attr = _RECORD_KEYS.get(key, key)

        def record_key(record: logging.LogRecord) -> bytes | None:
            value = record.__dict__.get(attr)
            if value is None:
                value = record.__dict__.get(CTX, {}).get(attr)
            return _key_bytes(value)
        return record_key

    # -- flush, close, stats ---------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record queued before the call is acknowledged, or ``timeout``.

        ``timeout`` defaults to ``flush_timeout``. Returns True when everything
        was settled (acknowledged, or failed and counted) in time.
        """
        if not self._enabled:
            return True
        worker = self._worker
        if not self._queue and not worker.in_flight():
            return True
        limit = self.settings.flush_timeout if timeout is None else max(0.0, float(timeout))
        barrier = Barrier()
        self._queue.append(barrier)
        done = worker.wait_for(barrier, limit)
        if not done:
            self._flush_gave_up = time.monotonic()
        return done

    def close(self) -> None:
        """Deliver what is queued (up to ``flush_timeout``), stop the thread, close the handler.

        Records logged to the handler after ``close()`` are still delivered by a
        short-lived thread, so reconfiguring logging loses nothing.
        """
        try:
            if self._enabled:
                now = time.monotonic()
                recently_gave_up = now - self._flush_gave_up < self.settings.flush_timeout
                self._worker.stop(now + (0.0 if recently_gave_up else self.settings.flush_timeout))
            self._closed = True
        finally:
            super().close()

    def stats(self) -> dict[str, Any]:
        """Counters of this handler: what was delivered, failed, dropped, and what waits."""
        w = self._worker
        with self._drop_lock:
            dropped = dict(self._dropped)
        return {
            "enabled": self._enabled,
            "topic": self.settings.topic,
            "queue_depth": sum(1 for item in list(self._queue) if type(item) is not Barrier),
            "queue_size": self._maxsize,
            "produced": w.produced(),
            "delivered": w.delivered,
            "failed": w.failed,
            "in_flight": w.in_flight(),
            "dropped": dropped,
            "dropped_total": sum(dropped.values()),
            "errors": w.errors,
            "last_error": w.last_error,
            "broker_reachable": w.broker_reachable,
        }
