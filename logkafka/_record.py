"""A record as captured at the call: its attributes fixed, its event id, its service identity.

A record goes through two steps. :func:`capture` (or :func:`capture_slim`)
fixes everything as it is at the call (message, exception, bound context,
OpenTelemetry context, copies of mutable ``extra`` values);
``KafkaLogHandler.emit`` runs it on the caller's thread. A formatter then
renders the captured attributes, on whatever thread it runs. Both steps are
shared by every handler, so a FileHandler line and the Kafka message of the
same record are the same bytes (unless a handler's filter changes the record in
between: each handler ships the record as it finds it).
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import sys
import traceback
from collections.abc import Mapping
from itertools import islice
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS

from logkafka import _context, _json, _structlog, _tracing
from logkafka._snapshot import jsonable, to_text

# Attributes capture() adds to its copy of a record.
CTX = "_lk_ctx"  # the bound context at the call
SPAN = "_lk_span"  # the OpenTelemetry context at the call (falsy when empty)
ERROR = "_lk_error"  # {"type", "message", "stack_trace"} captured at the call, or None
FIELDS = "_lk_fields"  # the items of a dict logged as the message, or None
RESOURCE = "_lk_res"  # a handler's service identity, overriding the formatter's
EID = "_lk_eid"  # the event id as a 128-bit int, also kept on the caller's record
EXTRA = "_lk_extra"  # the extra members, named as they ship, JSON-safe
FMT = "_lk_fmt"  # the handler's formatter when the record was logged (set by KafkaLogHandler.emit)
STREAM = "_lk_stream"  # "audit" or "security" on records of logkafka.audit() / security(); shipped as "stream"
SAMPLE = "_lk_sample"  # SamplingFilter's random draw for a record, shared by every filter it meets

#: Loggers whose records never enter a KafkaLogHandler: our own and the Kafka client's.
OWN_LOGGERS = ("logkafka", "confluent_kafka")
#: Fields the formatter owns; an ``extra`` or context key of the same name is
#: shipped as ``extra.<name>`` instead.
CORE_FIELDS = frozenset({
    "timestamp", "level", "logger", "message", "code", "service", "environment", "version",
    "host", "instance_id", "process", "thread", "module", "function", "line", "event_id",
    "trace_id", "span_id", "error", "stack_info",
})
#: What opentelemetry-instrumentation-logging adds to every record: the trace and span ids ship from the span
#: itself (``trace_id``, ``span_id``), the service from the identity.
OTEL_LOGGING_ATTRS = frozenset({"otelSpanID", "otelTraceID", "otelServiceName", "otelTraceSampled"})
_SKIP = frozenset(RESERVED_ATTRS) | OTEL_LOGGING_ATTRS | _structlog.RECORD_ATTRS | {
    "message", "asctime", "event_id", "code", "taskName", CTX, SPAN, ERROR, FIELDS, RESOURCE, EID, EXTRA,
    STREAM, SAMPLE,
}
#: The record attributes :func:`capture_slim` keeps.
SLIM_KEYS = frozenset({"name", "levelname", "levelno", "created", "process", "threadName", "module", "funcName",
                       "lineno", "stack_info", "message"})
#: ``LogRecord.__init__`` sets this many attributes; ``makeRecord`` adds ``extra`` after them.
N_STD = len(logging.LogRecord("n", 0, "p", 0, "m", None, None).__dict__)
HOST = socket.gethostname()
_FLAT = frozenset({str, int, bool, type(None)})
_dumps = _json.dumps
_U128 = (1 << 128) - 1
_SEQ_BITS = 48
_SEQ_MASK = (1 << _SEQ_BITS) - 1
_PREFIX_TEXT = 24  # len('xxxxxxxx-xxxx-8xxx-yxxx-'): a process's part of an event id's text, then 12 hex digits
_VERSION_VARIANT = (0x8 << 76) | (0b10 << 62)  # RFC 9562: version 8 (custom layout), variant 10


# -- service identity -------------------------------------------------------------------
def _env(*names: str, default: str) -> str:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return default


def default_identity() -> dict[str, str]:
    """Service identity from the environment: service, environment, version, instance_id."""
    return {
        "service": _env("OTEL_SERVICE_NAME", "SERVICE_NAME", default="unknown_service:python"),
        "environment": _env("ENVIRONMENT", default="unknown"),
        "version": _env("APP_VERSION", default="unknown"),
        "instance_id": _env("SERVICE_INSTANCE_ID", default=HOST),
    }


def check_identity(service_name: Any, environment: Any, version: Any, instance_id: Any) -> dict[str, str]:
    """The explicitly given identity settings, validated (``ValueError`` naming a bad one)."""
    given = {}
    for setting, key, value in (("service_name", "service", service_name), ("environment", "environment", environment),
                                ("version", "version", version), ("instance_id", "instance_id", instance_id)):
        if value is not None:
            if not isinstance(value, str) or not value:
                raise ValueError(f"{setting}: must be a non-empty string, got {value!r}")
            given[key] = value
    return given


# -- event ids --------------------------------------------------------------------------
def uuid_text(n: int) -> str:
    """A 128-bit number as UUID text."""
    b = (n & _U128).to_bytes(16, "big")
    return f"{b[:4].hex()}-{b[4:10].hex('-', 2)}-{b[10:].hex()}"


class _EventIds:
    """Where event ids come from: this process's random prefix and its sequence.

    An event id is a UUID (RFC 9562 version 8): 74 random bits drawn once per
    process (again in a forked child, and when a record shows another process
    id: a copy made without Python's fork hooks, as uWSGI does by default),
    then a 48-bit sequence number. Unique like a random UUID, increasing within
    a process, and much cheaper to make and to render (the prefix's text is
    kept). Not a secret: it tells the order of a process's records.
    """

    __slots__ = ("high", "json", "pid", "prefix", "seq", "text")

    def __init__(self) -> None:
        self.pid = os.getpid()
        bits = int.from_bytes(os.urandom(16), "big") & ~(0xF << 76) & ~(0b11 << 62) & ~_SEQ_MASK
        self.prefix = bits | _VERSION_VARIANT
        self.high = self.prefix >> _SEQ_BITS
        self.text = uuid_text(self.prefix)[:_PREFIX_TEXT]
        self.json = ('"' + self.text).encode()
        self.seq = itertools.count().__next__


_ids = _EventIds()


def _renew_event_ids() -> _EventIds:
    global _ids
    _ids = _EventIds()
    return _ids


os.register_at_fork(after_in_child=_renew_event_ids)


def event_id_text(n: int) -> str:
    """The text of event id ``n``; for this process's own ids, its prefix is made once."""
    ids = _ids
    if n >> _SEQ_BITS == ids.high:
        return f"{ids.text}{n & _SEQ_MASK:012x}"
    return uuid_text(n)


def made_order(ids: list[str | None]) -> list[int] | None:
    """The positions of event ids ``ids`` in the order they were made, when all are one process's (a common
    prefix, then the sequence in fixed-width hex, so their text sorts in that order); else None."""
    texts = [eid for eid in ids if eid is not None and len(eid) == 36]
    if not texts or len(texts) != len(ids) or any(not t.startswith(texts[0][:_PREFIX_TEXT]) for t in texts):
        return None
    return sorted(range(len(texts)), key=texts.__getitem__)


def new_event_id() -> int:
    """A new event id, as the 128-bit number :func:`uuid_text` renders."""
    ids = _ids
    n = ids.seq()
    if n > _SEQ_MASK:  # 2**48 records from one process: start a new prefix
        _renew_event_ids()
        return new_event_id()
    return ids.prefix | n


def event_id_of(rd: Mapping[str, Any]) -> str:
    """A captured record's event id as text: the caller's ``extra={"event_id": ...}`` (a non-empty
    string) wins, else the id the record was given at capture."""
    eid = rd.get("event_id")
    return eid if type(eid) is str and eid else event_id_text(rd[EID])


def event_id_json(rd: Mapping[str, Any]) -> bytes:
    """:func:`event_id_of` as a JSON string, for the byte template: this process's ids from their
    prefix's JSON, without making the text first."""
    eid = rd.get("event_id")
    if type(eid) is str and eid:  # the caller's text: may need escaping
        return _dumps(eid)
    n = rd[EID]
    ids = _ids
    if n >> _SEQ_BITS == ids.high:  # this process's prefix, then the sequence number
        return ids.json + b'%012x"' % (n & _SEQ_MASK)
    return _dumps(uuid_text(n))


# -- capture ----------------------------------------------------------------------------
def error_info(exc_info: Any) -> dict[str, str | None] | None:
    """``{"type", "message", "stack_trace"}`` for an exception tuple; never raises.

    Also for what ``makeLogRecord`` lets through: ``True`` (the exception being
    handled now, as ``Logger`` reads it), an exception, or anything else (as text).
    """
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if type(exc_info) is not tuple or len(exc_info) != 3:
        text = to_text(exc_info)
        return {"type": None, "message": text, "stack_trace": text}
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


def capture(record: logging.LogRecord, resource: Mapping[str, str] | None = None,
            formatter: logging.Formatter | None = None) -> dict[str, Any]:
    """The attributes of ``record`` with everything fixed as it is at the call: every attribute.

    The message is rendered, the exception formatted, the bound context and the
    OpenTelemetry context taken, mutable ``extra`` values copied (JSON-safe).
    The caller's record only gains the private event-id number, so every
    handler that formats it shows the same ``event_id``. Formatters of other
    kinds than ``JsonFormatter`` need this; ``formatter`` is kept with it
    (``FMT``): the one to render it with.
    """
    rd = record.__dict__
    if type(rd.get("msg")) is PreparedText:
        done = prepared(rd, resource, formatter, full=True)
        if done is not None:
            return done
    message = _message(record, rd)
    # Only the keys below are added: every insertion costs the caller. ERROR, FIELDS,
    # SPAN and RESOURCE are there only when they have a value; msg and args keep the
    # caller's, record_of() fixes them for formatters that format the message again.
    d = rd.copy()
    d["message"] = d["msg"] = message
    d["args"] = None  # not the caller's objects: they could be held long while the record waits
    d[FMT] = formatter
    return _fixed(record, rd, d, resource)


def capture_slim(record: logging.LogRecord, resource: Mapping[str, str] | None = None,
                 formatter: logging.Formatter | None = None) -> dict[str, Any]:
    """:func:`capture`, keeping only what ``JsonFormatter`` renders (:data:`SLIM_KEYS`, the extras in
    ``EXTRA``): a smaller dict, cheaper for the caller to make and to keep queued."""
    rd = record.__dict__
    if type(rd.get("msg")) is PreparedText:
        done = prepared(rd, resource, formatter, full=False)
        if done is not None:
            return done
    message = _message(record, rd)
    d = {"name": rd["name"], "levelname": rd["levelname"], "levelno": rd["levelno"], "created": rd["created"],
         "process": rd["process"],
         "threadName": rd["threadName"], "module": rd["module"], "funcName": rd["funcName"],
         "lineno": rd["lineno"], "stack_info": rd["stack_info"], "message": message, EID: rd[EID],
         FMT: formatter}
    return _fixed(record, rd, d, resource)


class PreparedText(str):
    """A ``JsonFormatter``'s line of JSON, carrying the capture it was rendered from (``capture``: the dict,
    and whether it is a full one). A ``QueueHandler`` given that formatter makes this text its record's
    ``msg``: a ``KafkaLogHandler`` behind the listener then ships the capture (message, context, span and
    error as at the call), not the text. Pickled (a queue to another process), it is plain text."""

    capture: tuple[dict[str, Any], bool]

    def __reduce__(self) -> tuple[Any, ...]:
        return (str, (str(self),))


def prepared(rd: dict[str, Any], resource: Mapping[str, str] | None, formatter: logging.Formatter | None,
             full: bool) -> dict[str, Any] | None:
    """The capture a record prepared by a ``QueueHandler`` with a ``JsonFormatter`` carries in its ``msg``
    (see :class:`PreparedText`), for ``formatter``; None when it holds less than ``full`` asks."""
    done, done_full = rd["msg"].capture
    if full and not done_full:
        return None
    d = dict(done)
    d[FMT] = formatter
    if resource is not None:
        d[RESOURCE] = resource
    return d


def _message(record: logging.LogRecord, rd: dict[str, Any]) -> str:
    """Give the caller's record its event id (once), and render its message as text."""
    if EID not in rd:
        ids = _ids
        pid = rd["process"]
        if pid != ids.pid and pid is not None:  # a copy of this process made without fork hooks
            ids = _renew_event_ids()
        n = ids.seq()
        rd[EID] = ids.prefix | n if n <= _SEQ_MASK else new_event_id()
    msg = record.msg
    if type(msg) is dict:  # structlog's event dict, or python-json-logger's dict message (see _fixed)
        return to_text(msg["event"] if _structlog.is_event(rd, msg) else msg.get("message", ""))
    try:
        message = record.getMessage()
    except Exception as exc:  # a bad format string or args: ship what we have, marked
        message = f"{to_text(msg)} {to_text(record.args)} <format error: {to_text(exc)}>"
    return message if type(message) is str else to_text(message)


def _fixed(record: logging.LogRecord, rd: dict[str, Any], d: dict[str, Any],
           resource: Mapping[str, str] | None) -> dict[str, Any]:
    """``d`` (a capture's copy of ``rd``, message set) with what both captures add: fields, error,
    JSON-safe extras, context, span and resource."""
    msg = record.msg
    if type(msg) is dict:
        if _structlog.is_event(rd, msg):
            d[FIELDS] = jsonable({k: v for k, v in msg.items() if k not in _structlog.OWN_KEYS})
            _structlog_error(msg, d)
        else:
            d[FIELDS] = jsonable({k: v for k, v in msg.items() if k != "message"})
    if record.exc_info:
        error = d[ERROR] = error_info(record.exc_info)
        d["exc_info"] = None  # not the traceback: it holds every frame's locals
        d["exc_text"] = error["stack_trace"] if error else None  # for formatters of other kinds
    elif record.exc_text:
        d[ERROR] = {"type": None, "message": None, "stack_trace": to_text(record.exc_text)}
    # Extra keys follow the standard ones: copy what is mutable or not JSON (integers
    # too big for JSON are immutable: the formatter turns them into digits), and
    # name them as they ship, so the formatter does not look for them again.
    extra = {}
    if len(rd) > N_STD + 1:
        for k in islice(rd, N_STD, None):
            v = rd[k]
            if type(v) not in _FLAT:  # "code" and "event_id" too
                v = d[k] = jsonable(v)
            if k not in _SKIP:
                extra[k if k not in CORE_FIELDS and type(k) is str else extra_name(k)] = v
            elif k == "code" or k == "event_id":  # extras with a field of their own
                d[k] = v
            elif k == STREAM:  # audit or security: routed by the handler, shipped as "stream"
                d[k] = extra["stream"] = v
    d[EXTRA] = extra
    if type(d["stack_info"]) not in _FLAT:
        d["stack_info"] = to_text(d["stack_info"])
    ctx = _context_now()
    theirs = _structlog.bound()
    d[CTX] = ctx if theirs is None else {**jsonable(theirs), **ctx}
    span = _otel_now()
    if span:
        d[SPAN] = span
    if resource is not None:
        d[RESOURCE] = resource
    return d


def _structlog_error(event: dict[str, Any], d: dict[str, Any]) -> None:
    """The error of a structlog event: its ``exc_info`` (as at the call), else the ``exception`` text it
    rendered."""
    exc_info, text = event.get("exc_info"), event.get("exception")
    if exc_info:
        error = error_info(exc_info)
        if error is not None:
            d[ERROR] = error
    elif isinstance(text, str) and text:
        d[ERROR] = {"type": None, "message": None, "stack_trace": text}


_context_now = _context.current
_otel_now = _tracing.current_otel_context


def extra_name(key: Any) -> str:
    """The output name of an extra key: ``extra.<name>`` where it would collide with a core field."""
    name = key if type(key) is str else to_text(key)
    return f"extra.{name}" if name in CORE_FIELDS else name


_new_record = logging.LogRecord.__new__


def record_of(rd: dict[str, Any]) -> logging.LogRecord:
    """A LogRecord over captured attributes, its message already rendered (``getMessage()`` gives it)."""
    if rd.get("args") is not None or rd.get("msg") is not rd["message"]:
        rd["msg"] = rd["message"]
        rd["args"] = None
    record = _new_record(logging.LogRecord)
    record.__dict__ = rd
    return record
