"""``JsonFormatter``: one JSON object per record, the same on every handler."""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import traceback
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import orjson
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

from logkafka import _context, _tracing
from logkafka._snapshot import jsonable, repair_text, to_text

# Attributes set on captured copies of records by KafkaLogHandler.emit().
CTX = "_lk_ctx"  # the bound context at the call
SPAN = "_lk_span"  # (trace_id, span_id) ints of the active span at the call, or None
ERROR = "_lk_error"  # {"type", "message", "stack_trace"} captured at the call, or None
RESOURCE = "_lk_res"  # the handler's service identity, overriding the formatter's

#: Fields the formatter owns; an ``extra`` or context key of the same name is
#: shipped as ``extra.<name>`` instead of overwriting it.
CORE_FIELDS = frozenset({
    "timestamp", "level", "logger", "message", "service", "environment", "version",
    "host", "instance_id", "process", "thread", "module", "function", "line",
    "trace_id", "span_id", "error", "stack_info",
})
_SKIP = frozenset(RESERVED_ATTRS) | {"message", "asctime", "event_id", "taskName", CTX, SPAN, ERROR, RESOURCE}
HOST = socket.gethostname()
_OPTS = orjson.OPT_NON_STR_KEYS


def _env(*names: str, default: str) -> str:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return default


def default_service_name() -> str:
    """``OTEL_SERVICE_NAME``, else ``SERVICE_NAME``, else ``unknown_service:python``."""
    return _env("OTEL_SERVICE_NAME", "SERVICE_NAME", default="unknown_service:python")


def default_identity() -> dict[str, str]:
    """Service identity from the environment: service, environment, version, instance_id."""
    return {
        "service": default_service_name(),
        "environment": _env("ENVIRONMENT", default="unknown"),
        "version": _env("APP_VERSION", default="unknown"),
        "instance_id": _env("SERVICE_INSTANCE_ID", default=HOST),
    }


def new_event_id() -> str:
    """A random (version 4) UUID as text; cheaper than ``str(uuid.uuid4())``."""
    n = (random.getrandbits(128) & ~(0xF000 << 64) & ~(0xC000 << 48)) | (0x4000 << 64) | (0x8000 << 48)
    h = "%032x" % n
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def event_id_of(record: logging.LogRecord) -> str:
    """The record's ``event_id``, created and kept on the record the first time it is asked.

    Every handler that formats the same record then shows the same id.
    """
    eid = record.__dict__.get("event_id")
    if type(eid) is not str or not eid:
        eid = record.event_id = new_event_id()
    return eid


def error_info(
    exc_info: tuple[type[BaseException] | None, BaseException | None, TracebackType | None],
) -> dict[str, str] | None:
    """``{"type", "message", "stack_trace"}`` for an exception tuple; never raises."""
    etype, value, tb = exc_info
    if etype is None:
        return None
    try:
        module = getattr(etype, "__module__", "builtins")
        name = etype.__qualname__ if module == "builtins" else f"{module}.{etype.__qualname__}"
        stack = "".join(traceback.format_exception(etype, value, tb)).rstrip("\n")
    except Exception as exc:  # a hostile __str__ or traceback
        name, stack = to_text(etype), f"<stack trace unavailable: {to_text(exc)}>"
    return {"type": name, "message": to_text(value), "stack_trace": stack}


class _Clock:
    """RFC 3339 UTC timestamps with milliseconds, the date part cached per second."""

    __slots__ = ("_second", "_prefix")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, created: float) -> str:
        ms = int(created * 1000)
        second, milli = divmod(ms, 1000)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{milli:03d}Z"


class JsonFormatter(OrjsonFormatter):
    """Render a record as one JSON object (see the README's field reference).

    Usable on any handler: the same instance on a FileHandler, a StreamHandler and
    a ``KafkaLogHandler`` gives the same line everywhere. The record is never
    modified except for ``event_id``, which is stored on it so every handler
    shows the same id. python-json-logger's ``rename_fields``, ``static_fields``
    and ``defaults`` keep their meaning.
    """

    def __init__(
        self,
        fmt: str | Sequence[str] | None = None,
        datefmt: str | None = None,
        style: str = "%",
        validate: bool = True,
        *,
        service_name: str | None = None,
        environment: str | None = None,
        version: str | None = None,
        instance_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(fmt, datefmt, style, validate, **kwargs)
        identity = default_identity()
        for key, value in (("service", service_name), ("environment", environment),
                           ("version", version), ("instance_id", instance_id)):
            if value is not None:
                if not isinstance(value, str) or not value:
                    raise ValueError(f"{key if key != 'service' else 'service_name'}: must be a non-empty string, got {value!r}")
                identity[key] = value
        self.identity: dict[str, str] = identity
        self._clock = _Clock()

    # -- the record -> dict step -------------------------------------------------
    def to_dict(self, record: logging.LogRecord) -> dict[str, Any]:
        """Build the JSON-safe dict for ``record`` (before renames and serialization)."""
        rd = record.__dict__
        captured = CTX in rd
        msg = record.msg
        fields: Mapping[str, Any] = {}
        if isinstance(msg, dict) and not captured:
            fields, message = msg, to_text(msg.get("message", ""))
        elif captured:
            message = rd["message"]
        else:
            try:
                message = record.getMessage()
            except Exception as exc:  # a bad format string or args: ship what we have
                message = f"{to_text(msg)} {to_text(record.args)} <format error: {to_text(exc)}>"
        identity = rd.get(RESOURCE) or self.identity
        d: dict[str, Any] = dict(self.defaults) if self.defaults else {}
        d["timestamp"] = self._clock(record.created)
        d["level"] = record.levelname
        d["logger"] = record.name
        d["message"] = message if type(message) is str else to_text(message)
        code = rd.get("code")
        if code is not None:
            d["code"] = jsonable(code)
        d["service"] = identity["service"]
        d["environment"] = identity["environment"]
        d["version"] = identity["version"]
        d["host"] = HOST
        d["instance_id"] = identity["instance_id"]
        d["process"] = record.process
        d["thread"] = record.threadName
        d["module"] = record.module
        d["function"] = record.funcName
        d["line"] = record.lineno
        d["event_id"] = event_id_of(record)
        context = rd[CTX] if captured else _context.current()
        for key, value in context.items():
            d[key if key not in CORE_FIELDS else f"extra.{key}"] = value if captured else jsonable(value)
        span = rd[SPAN] if captured else _tracing.current_span_ids()
        if span is not None:
            d["trace_id"], d["span_id"] = _tracing.hex_ids(span)
        error = rd[ERROR] if captured else (error_info(record.exc_info) if record.exc_info else None)
        if error is None and record.exc_text:
            error = {"type": None, "message": None, "stack_trace": record.exc_text}
        if error is not None:
            d["error"] = error
        if record.stack_info:
            d["stack_info"] = record.stack_info
        for key, value in rd.items():
            if key not in _SKIP and key != "code" and key[:4] != "_lk_":
                d[key if key not in CORE_FIELDS else f"extra.{key}"] = value if captured else jsonable(value)
        for key, value in fields.items():
            if key != "message":
                d[to_text(key) if to_text(key) not in CORE_FIELDS else f"extra.{key}"] = jsonable(value)
        for key, value in self.static_fields.items():
            d.setdefault(key, value)
        if self.rename_fields:
            d = {self.rename_fields.get(k, k): v for k, v in d.items()}
        return d

    # -- serialization -------------------------------------------------------------
    def encode(self, record: logging.LogRecord) -> bytes:
        """Format ``record`` to UTF-8 JSON bytes; never raises.

        Text that is not valid Unicode (lone surrogates) is repaired and the
        object marked ``"logkafka_repaired": true``; a record the formatter
        cannot build at all still ships as a minimal object marked
        ``"logkafka_error"``.
        """
        try:
            data = self.process_log_record(self.to_dict(record))
        except Exception as exc:
            data = self._minimal(record, exc)
        try:
            return orjson.dumps(data, default=to_text, option=_OPTS)
        except Exception:
            pass
        try:
            data = repair_text(jsonable(data))
            data["logkafka_repaired"] = True
            return orjson.dumps(data, default=to_text, option=_OPTS)
        except Exception as exc:
            return orjson.dumps(repair_text(self._minimal(record, exc)), default=to_text, option=_OPTS)

    def format(self, record: logging.LogRecord) -> str:
        """Format ``record`` as one line of JSON."""
        return self.prefix + self.encode(record).decode("utf-8")

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:  # type: ignore[override]
        """Serialize a dict the way ``format`` does (python-json-logger's hook)."""
        return orjson.dumps(jsonable(log_data), default=to_text, option=_OPTS).decode("utf-8")

    def _minimal(self, record: logging.LogRecord, exc: BaseException) -> dict[str, Any]:
        rd = record.__dict__
        return {
            "timestamp": self._clock(float(rd.get("created") or time.time())),
            "level": to_text(rd.get("levelname")),
            "logger": to_text(rd.get("name")),
            "message": to_text(rd.get("message", rd.get("msg"))),
            "service": self.identity["service"],
            "event_id": to_text(rd.get("event_id") or new_event_id()),
            "logkafka_error": f"formatter failed: {type(exc).__name__}: {to_text(exc)}",
        }
