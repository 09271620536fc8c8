"""``JsonFormatter``: one JSON object per record, the same on every handler.

A record goes through two steps. :func:`capture` fixes everything as it is at
the call (message, exception, bound context, OpenTelemetry context, copies of
mutable ``extra`` values); ``KafkaLogHandler.emit`` runs it on the caller's
thread. The formatter then renders the captured attributes, on whatever
thread it runs. Both steps are shared by every handler, so a FileHandler line
and the Kafka message of the same record are the same bytes (unless a
handler's filter changes the record in between: each handler ships the record
as it finds it).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import socket
import sys
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from itertools import islice
from typing import Any

import orjson
from pythonjsonlogger.core import RESERVED_ATTRS, BaseJsonFormatter
from pythonjsonlogger.orjson import OrjsonFormatter

from logkafka import _context, _tracing
from logkafka._presets import apply_preset
from logkafka._redact import Redactor, redaction_settings
from logkafka._report import report
from logkafka._snapshot import INT_MAX, INT_MIN, jsonable, repair_text, to_text

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

#: Fields the formatter owns; an ``extra`` or context key of the same name is
#: shipped as ``extra.<name>`` instead.
CORE_FIELDS = frozenset({
    "timestamp", "level", "logger", "message", "code", "service", "environment", "version",
    "host", "instance_id", "process", "thread", "module", "function", "line", "event_id",
    "trace_id", "span_id", "error", "stack_info",
})
_SKIP = frozenset(RESERVED_ATTRS) | {
    "message", "asctime", "event_id", "code", "taskName", CTX, SPAN, ERROR, FIELDS, RESOURCE, EID, EXTRA,
    STREAM, SAMPLE,
}
#: The record attributes a ``capture(full=False)`` keeps.
SLIM_KEYS = frozenset({"name", "levelname", "created", "process", "threadName", "module", "funcName", "lineno",
                       "stack_info", "message"})
#: ``LogRecord.__init__`` sets this many attributes; ``makeRecord`` adds ``extra`` after them.
N_STD = len(logging.LogRecord("n", 0, "p", 0, "m", None, None).__dict__)
HOST = socket.gethostname()
_OPTS = orjson.OPT_NON_STR_KEYS
_FLAT = frozenset({str, int, bool, type(None)})
_dumps = orjson.dumps
_U128 = (1 << 128) - 1
_SEQ_BITS = 48
_SEQ_MASK = (1 << _SEQ_BITS) - 1
_VERSION_VARIANT = (0x8 << 76) | (0b10 << 62)  # RFC 9562: version 8 (custom layout), variant 10
_MILLIS = tuple(f".{i:03d}Z" for i in range(1000))
_MILLIS_B = tuple(m.encode() for m in _MILLIS)
_OWN_PROCESS_LOG_RECORD = BaseJsonFormatter.process_log_record


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
        self.text = uuid_text(self.prefix)[:24]  # 'xxxxxxxx-xxxx-8xxx-yxxx-'
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


def new_event_id() -> int:
    """A new event id, as the 128-bit number :func:`uuid_text` renders."""
    ids = _ids
    n = ids.seq()
    if n > _SEQ_MASK:  # 2**48 records from one process: start a new prefix
        _renew_event_ids()
        return new_event_id()
    return ids.prefix | n


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
            full: bool = True, formatter: logging.Formatter | None = None) -> dict[str, Any]:
    """The attributes of ``record`` with everything fixed as it is at the call.

    The message is rendered, the exception formatted, the bound context and the
    OpenTelemetry context taken, mutable ``extra`` values copied (JSON-safe).
    The caller's record only gains the private event-id number, so every
    handler that formats it shows the same ``event_id``.

    ``full=False`` keeps only what ``JsonFormatter`` renders (:data:`SLIM_KEYS`,
    the extras in ``EXTRA``): a smaller dict, cheaper for the caller to make and
    to keep queued. Formatters of other kinds need ``full``: every attribute.
    ``formatter`` is kept with it (``FMT``): the one to render it with.
    """
    rd = record.__dict__
    if EID not in rd:
        ids = _ids
        pid = rd["process"]
        if pid != ids.pid and pid is not None:  # a copy of this process made without fork hooks
            ids = _renew_event_ids()
        n = ids.seq()
        rd[EID] = ids.prefix | n if n <= _SEQ_MASK else new_event_id()
    msg = record.msg
    fields = None
    if type(msg) is dict:  # python-json-logger's dict message: its items become fields
        fields = jsonable({k: v for k, v in msg.items() if k != "message"})
        message = to_text(msg.get("message", ""))
    else:
        try:
            message = record.getMessage()
        except Exception as exc:  # a bad format string or args: ship what we have, marked
            message = f"{to_text(msg)} {to_text(record.args)} <format error: {to_text(exc)}>"
        if type(message) is not str:
            message = to_text(message)
    # Only the keys below are added: every insertion costs the caller. ERROR, FIELDS,
    # SPAN and RESOURCE are there only when they have a value; msg and args keep the
    # caller's, record_of() fixes them for formatters that format the message again.
    if full:
        d = rd.copy()
        d["message"] = d["msg"] = message
        d["args"] = None  # not the caller's objects: they could be held long while the record waits
        d[FMT] = formatter
    else:
        d = {"name": rd["name"], "levelname": rd["levelname"], "created": rd["created"], "process": rd["process"],
             "threadName": rd["threadName"], "module": rd["module"], "funcName": rd["funcName"],
             "lineno": rd["lineno"], "stack_info": rd["stack_info"], "message": message, EID: rd[EID],
             FMT: formatter}
    if fields is not None:
        d[FIELDS] = fields
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
    d[CTX] = _context_now()
    span = _otel_now()
    if span:
        d[SPAN] = span
    if resource is not None:
        d[RESOURCE] = resource
    return d


_context_now = _context.current
_otel_now = _tracing.current_otel_context


class _Collision(Exception):
    """An extra key collides with a context key: render_captured leaves the record to to_dict."""


def extra_name(key: Any) -> str:
    """The output name of an extra key: ``extra.<name>`` where it would collide with a core field."""
    name = key if type(key) is str else to_text(key)
    return f"extra.{name}" if name in CORE_FIELDS else name


class Clock:
    """RFC 3339 UTC timestamps with milliseconds, the date part cached per second."""

    __slots__ = ("_cached",)

    def __init__(self) -> None:
        self._cached = (-1, "")  # (second, its text): one tuple, so threads never see a mix

    def __call__(self, created: float) -> str:
        ms = int(created * 1000)
        second = ms // 1000
        cached = self._cached
        if cached[0] != second:
            cached = self._cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return cached[1] + _MILLIS[ms - second * 1000]


class JsonFormatter(OrjsonFormatter):
    """Render a record as one JSON object (see the README's field reference).

    Usable on any handler: the same instance on a FileHandler, a StreamHandler
    and a ``KafkaLogHandler`` gives the same line everywhere. The record is
    never modified but for a private event-id number, kept on it so every
    handler shows the same ``event_id``. python-json-logger's options
    (``rename_fields``, ``static_fields``, ``defaults``, ``prefix``) and hooks
    (``process_log_record``) keep their meaning.
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
        format: str = "flat",
        namespace: str | None = None,
        fields: str = "default",
        redact: bool = True,
        redact_keys: Iterable[str] = (),
        redact_patterns: Iterable[str | re.Pattern[str]] = (),
        redact_allow: Iterable[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(fmt, datefmt, style, validate, **kwargs)
        if format not in ("flat", "envelope"):
            raise ValueError(f"format: expected 'flat' or 'envelope', got {format!r}")
        from logkafka._settings import check_namespace

        #: ``"flat"``: one object per record; ``"envelope"``: wrapped as ``{event_type, ..., payload}``.
        self.format_name = format
        self.namespace = check_namespace(namespace)
        from logkafka._presets import check_preset

        #: The field names: ``default``, ``ecs``, ``datadog`` or ``otel`` (see the README).
        self.fields = check_preset(fields)
        r = redaction_settings(redact, redact_keys, redact_patterns, redact_allow)  # with LOGKAFKA_REDACT_*
        redactor = Redactor(keys=r["redact_keys"], patterns=r["redact_patterns"], allow=r["redact_allow"],
                            enabled=r["redact"])
        #: Removes secrets from the message, exception text, context and extra members;
        #: None with ``redact=False``.
        self.redactor: Redactor | None = redactor if redactor.enabled else None
        self.identity: dict[str, str] = {
            **default_identity(), **check_identity(service_name, environment, version, instance_id),
        }
        self._clock = Clock()
        # JSON pieces that repeat, cached for render_captured()
        self._sites: dict[tuple[Any, ...], tuple[bytes, bytes]] = {}
        self._codes: dict[str, bytes] = {}
        self._ctx: tuple[Any, bytes, frozenset[str]] = (None, b"", frozenset())
        self._blocks: tuple[Any, bytes] = (None, b"")  # (identity, its JSON members)
        # The byte template renders records only when no hook or option changes the object
        # (python-json-logger's options are settled by now, as in its own formatters).
        cls = type(self)
        #: Whether slim captures (``capture(full=False)``) hold all this formatter reads:
        #: true unless a subclass overrides a method that is given the record.
        self.slim_capture = (
            cls.to_dict is JsonFormatter.to_dict
            and cls.encode_captured is JsonFormatter.encode_captured
            and cls.render_captured is JsonFormatter.render_captured
        )
        self._templated = (
            self.slim_capture
            and cls.process_log_record is _OWN_PROCESS_LOG_RECORD
            and not (self.defaults or self.static_fields or self.rename_fields)
            and self.fields == "default"
        )

    # -- the captured record -> dict -------------------------------------------------
    def to_dict(self, record: logging.LogRecord) -> dict[str, Any]:
        """The JSON-safe object for ``record``, before python-json-logger's hooks."""
        rd = record.__dict__
        if CTX not in rd:
            rd = capture(record, None, not self.slim_capture)
        identity = rd.get(RESOURCE) or self.identity
        d: dict[str, Any] = dict(self.defaults) if self.defaults else {}
        d["timestamp"] = self._clock(rd["created"])
        d["level"] = rd["levelname"]
        d["logger"] = rd["name"]
        red = self.redactor
        d["message"] = rd["message"] if red is None else red.text(rd["message"])
        code = rd.get("code")
        if code is not None:
            d["code"] = code
        d["service"] = identity["service"]
        d["environment"] = identity["environment"]
        d["version"] = identity["version"]
        d["host"] = HOST
        d["instance_id"] = identity["instance_id"]
        d["process"] = rd["process"]
        d["thread"] = rd["threadName"]
        d["module"] = rd["module"]
        d["function"] = rd["funcName"]
        d["line"] = rd["lineno"]
        d["event_id"] = self._event_id(rd)
        if red is None:
            d.update(self._members(rd))
        else:  # as the byte template does: the context's members, then the rest
            d.update(red.mapping({extra_name(k): v for k, v in rd[CTX].items()}, record=True))
            d.update(red.mapping(self._after_context(rd, {}), record=True))
        for key, value in d.items():  # capture() keeps integers as they are: JSON takes 64 bits
            if type(value) is int and not INT_MIN <= value <= INT_MAX:
                d[key] = str(value)
        if self.fields != "default":
            d = apply_preset(self.fields, d, rd.get("levelno"))
        for key, value in self.static_fields.items():
            d.setdefault(key, value)
        if self.rename_fields:
            d = {self.rename_fields.get(k, k): v for k, v in d.items()}
        return d

    @staticmethod
    def _event_id(rd: dict[str, Any]) -> str:
        eid = rd.get("event_id")  # extra={"event_id": ...} wins
        return eid if type(eid) is str and eid else uuid_text(rd[EID])

    @staticmethod
    def _members(rd: dict[str, Any]) -> dict[str, Any]:
        """Context, trace, error and extra members, in their order."""
        d: dict[str, Any] = {}
        for key, value in rd[CTX].items():
            d[extra_name(key)] = value
        return JsonFormatter._after_context(rd, d)

    @staticmethod
    def _after_context(rd: dict[str, Any], d: dict[str, Any]) -> dict[str, Any]:
        """Add the trace, error, stack and extra members to ``d``, in their order."""
        otel = rd.get(SPAN)
        if otel:
            ids = _tracing.span_ids(otel)
            if ids is not None:
                d["trace_id"], d["span_id"] = _tracing.hex_ids(ids)
        error = rd.get(ERROR)
        if error is not None:
            d["error"] = error
        if rd["stack_info"]:
            d["stack_info"] = rd["stack_info"]
        d.update(rd[EXTRA])
        fields = rd.get(FIELDS)
        if fields:
            for k, v in fields.items():
                d[extra_name(k)] = v
        return d

    # -- the captured record -> bytes, without building the whole object ---------------------
    def _site(self, key: tuple[Any, ...]) -> tuple[bytes, bytes]:
        """The JSON of what is constant at one call site: level and logger, and process,
        thread, module, function and line (cached: they repeat)."""
        cache = self._sites
        if len(cache) > 4096:
            cache.clear()
        level, logger, process, thread, module, function, line = (_dumps(v, default=to_text) for v in key)
        site = cache[key] = (
            b'"level":%s,"logger":%s' % (level, logger),
            b',"process":%s,"thread":%s,"module":%s,"function":%s,"line":%s'
            % (process, thread, module, function, line),
        )
        return site

    def _identity_block(self, identity: Mapping[str, str]) -> bytes:
        cached = self._blocks
        if cached[0] is not identity:
            members = {"service": identity["service"], "environment": identity["environment"],
                       "version": identity["version"], "host": HOST, "instance_id": identity["instance_id"]}
            cached = self._blocks = (identity, b"," + _dumps(members)[1:-1])
        return cached[1]

    def _context_json(self, ctx: Mapping[str, Any]) -> tuple[Any, bytes, frozenset[str]]:
        """(context, its JSON members, their names): the same context object is
        usually current for many records, and is never changed in place."""
        members = {k if k not in CORE_FIELDS else f"extra.{k}": v for k, v in ctx.items()}
        if self.redactor is not None:
            members = self.redactor.mapping(members, record=True)
        cached = self._ctx = (ctx, b"," + _dumps(members, option=_OPTS)[1:-1] if members else b"",
                              frozenset(members))
        return cached

    def render_captured(self, rd: dict[str, Any]) -> bytes:
        """The hot path: ``encode_captured`` from cached pieces, when no hook or option is set.

        Gives exactly ``orjson.dumps(self.to_dict(record))``. Raises on anything
        unexpected: call ``encode_captured`` then, which never raises.
        """
        key = (rd["levelname"], rd["name"], rd["process"], rd["threadName"], rd["module"], rd["funcName"],
               rd["lineno"])
        level_logger, site = self._sites.get(key) or self._site(key)
        ms = int(rd["created"] * 1000)
        second = ms // 1000
        clock = self._clock._cached
        if clock[0] != second:
            self._clock(rd["created"])
            clock = self._clock._cached
        eid = rd.get("event_id")
        if type(eid) is str and eid:  # the caller's text: may need escaping
            eid_json = _dumps(eid)
        else:
            eid = rd[EID]
            ids = _ids
            if eid >> _SEQ_BITS == ids.high:  # this process's prefix, then the sequence number
                eid_json = ids.json + b'%012x"' % (eid & _SEQ_MASK)
            else:
                eid_json = _dumps(uuid_text(eid))
        code = rd.get("code")
        if code is None:
            code_json = b""
        elif type(code) is str:
            code_json = self._codes.get(code) or self._code_json(code)
        else:
            code_json = b',"code":' + _dumps(code, option=_OPTS)
        identity = rd.get(RESOURCE) or self.identity
        blocks = self._blocks
        red = self.redactor
        message = rd["message"] if red is None else red.text(rd["message"])
        ctx = rd[CTX]
        cached = self._ctx
        if cached[0] is not ctx:
            cached = self._context_json(ctx)
        _, ctx_json, ctx_names = cached
        head = b'{"timestamp":"%s%s",%s,"message":%s%s%s%s,"event_id":%s%s' % (
            clock[1].encode(), _MILLIS_B[ms - second * 1000], level_logger, _dumps(message), code_json,
            blocks[1] if blocks[0] is identity else self._identity_block(identity), site, eid_json, ctx_json)
        if SPAN in rd or ERROR in rd or FIELDS in rd or rd["stack_info"]:
            d = self._after_context(rd, {})
        else:
            d = rd[EXTRA]  # the common case: nothing else follows the context
        if not d:
            return head + b"}"
        if red is not None:
            d = red.mapping(d, record=True)
        if ctx_names and not ctx_names.isdisjoint(d):
            raise _Collision  # an extra replaces a context value in place: the general path does that
        return head + b"," + _dumps(d, option=_OPTS)[1:]

    def _code_json(self, code: str) -> bytes:
        if len(self._codes) > 4096:
            self._codes.clear()
        text = self._codes[code] = b',"code":' + _dumps(code)
        return text

    # -- serialization -------------------------------------------------------------
    def encode(self, record: logging.LogRecord) -> bytes:
        """Format ``record`` to UTF-8 JSON bytes; never raises.

        Text that is not valid Unicode (lone surrogates) is repaired and the
        object marked ``"logkafka_repaired": true``; a record the formatter
        cannot build at all still ships as a minimal object marked
        ``"logkafka_error"``.
        """
        rd = record.__dict__
        if CTX not in rd:
            try:
                rd = capture(record, None, not self.slim_capture)
            except Exception as exc:  # pragma: no cover - capture() is written not to raise
                return _dumps(repair_text(self._minimal(rd, exc)), default=to_text, option=_OPTS)
        if self.format_name == "envelope":
            return self.envelope(rd, self.encode_captured(rd))
        return self.encode_captured(rd)

    def envelope(self, rd: dict[str, Any], payload: bytes) -> bytes:
        """``payload`` (this formatter's flat object for ``rd``) wrapped in the event envelope; never raises."""
        from logkafka import _envelope

        try:
            identity = rd.get(RESOURCE) or self.identity
            return _envelope.wrap(rd, payload, timestamp=self._clock(rd["created"]), namespace=self.namespace,
                                  source=identity["service"], clean=self._clean)
        except Exception as exc:
            report("envelope", f"could not build an envelope, shipping the flat record: {type(exc).__name__}: {exc}")
            return payload

    def encode_captured(self, rd: dict[str, Any]) -> bytes:
        """:meth:`encode` for the attributes :func:`capture` returned."""
        if self._templated:
            try:
                return self.render_captured(rd)
            except Exception:  # anything unusual: the general path below handles it
                pass
        try:
            return _dumps(self.process_log_record(self.to_dict(record_of(rd))), default=to_text, option=_OPTS)
        except Exception:  # text that is not valid Unicode, or a hook that failed: repair below
            pass
        try:
            data = self.process_log_record(self.to_dict(record_of(rd)))
        except Exception as exc:
            data = self._minimal(rd, exc)
        try:
            data = repair_text(jsonable(data))
            data["logkafka_repaired"] = True
            return _dumps(data, default=to_text, option=_OPTS)
        except Exception as exc:
            return _dumps(repair_text(self._minimal(rd, exc)), default=to_text, option=_OPTS)

    def format(self, record: logging.LogRecord) -> str:
        """Format ``record`` as one line of JSON."""
        return self.prefix + self.encode(record).decode("utf-8")

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        """Serialize a dict the way ``format`` does (python-json-logger's hook)."""
        return _dumps(jsonable(log_data), default=to_text, option=_OPTS).decode("utf-8")

    def _clean(self, text: str) -> str:
        red = self.redactor
        if red is None:
            return text
        try:
            return red.text(text)
        except Exception:
            return "[REDACTED]"

    def _minimal(self, rd: dict[str, Any], exc: BaseException) -> dict[str, Any]:
        created = rd.get("created")
        return {
            "timestamp": self._clock(created if isinstance(created, float) else time.time()),
            "level": to_text(rd.get("levelname")),
            "logger": to_text(rd.get("name")),
            "message": self._clean(to_text(rd.get("message", rd.get("msg")))),
            "service": self.identity["service"],
            "event_id": uuid_text(rd[EID]) if isinstance(rd.get(EID), int) else uuid_text(new_event_id()),
            "logkafka_error": f"formatter failed: {type(exc).__name__}: {to_text(exc)}",
        }


_new_record = logging.LogRecord.__new__


def record_of(rd: dict[str, Any]) -> logging.LogRecord:
    """A LogRecord over captured attributes, its message already rendered (``getMessage()`` gives it)."""
    if rd.get("args") is not None or rd.get("msg") is not rd["message"]:
        rd["msg"] = rd["message"]
        rd["args"] = None
    record = _new_record(logging.LogRecord)
    record.__dict__ = rd
    return record
