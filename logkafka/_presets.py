"""Field-name presets: the formatter's record, named the way a log platform expects it.

The ``fields`` setting picks one. ``default`` is the formatter's own shape (the
README's field reference). The others take that flat dict and return a new
one, renamed for the platform: ``ecs`` for Elasticsearch / Kibana (Elastic
Common Schema 8.x), ``datadog`` for Datadog's reserved and standard
attributes, ``otel`` for the OpenTelemetry log data model.

| field | `ecs` | `datadog` | `otel` |
| --- | --- | --- | --- |
| `timestamp` | `@timestamp` | `timestamp` | `timestamp`, and `time_unix_nano` (integer nanoseconds) |
| `level` | `log.level`, as is (`INFO`) | `status`, lower-case (`info`) | `severity_text` (`INFO`), `severity_number` |
| `logger` | `log.logger` | `logger.name` | `instrumentation_scope` `{"name": ...}` |
| `message` | `message` | `message` | `body` |
| `code` | `event.code` | `code` | `event_name` |
| `service` | `service.name` | `service` | resource `service.name` |
| `environment` | `service.environment` | `env` | resource `deployment.environment.name` |
| `version` | `service.version` | `version` | resource `service.version` |
| `host` | `host.hostname` | `host` | resource `host.name` |
| `instance_id` | `service.node.name` | `instance_id` | resource `service.instance.id` |
| `process` | `process.pid` | `process` | resource `process.pid` |
| `thread` | `process.thread.name` | `logger.thread_name` | `thread.name` |
| `module` | `log.origin.file.name` | `module` | `code.namespace` |
| `function` | `log.origin.function` | `logger.method_name` | `code.function.name` |
| `line` | `log.origin.file.line` | `line` | `code.line.number` |
| `event_id` | `event.id` | `event_id` | `log.record.uid` |
| `trace_id` | `trace.id` | `trace_id`, and `dd.trace_id` | `trace_id` (top level) |
| `span_id` | `span.id` | `span_id`, and `dd.span_id` | `span_id` (top level) |
| `error` `type` | `error.type` | `error.kind` | `exception.type` |
| `error` `message` | `error.message` | `error.message` | `exception.message` |
| `error` `stack_trace` | `error.stack_trace` | `error.stack` | `exception.stacktrace` |
| `stack_info` | `stack_info` | `stack_info` | `code.stacktrace` |
| `user_id` | `user.id` | `usr.id` | `user.id` |
| `tenant_id` | `organization.id` | `tenant_id` | `tenant_id` |
| `client.ip`, else `ip_address` | `client.ip` | `network.client.ip` | `client.address` |
| `http.method` | `http.request.method` | `http.method` | `http.request.method` |
| `http.status_code` | `http.response.status_code` | `http.status_code` | `http.response.status_code` |
| `http.path` | `url.path` | `http.url_details.path` | `url.path` |
| `http.user_agent`, else `user_agent` | `user_agent.original` | `http.useragent` | `user_agent.original` |
| `duration` (seconds), else `duration_ms` | `event.duration` (integer ns) | `duration` (integer ns) | as is |
| `action` | `event.action` | `evt.name` | as is |
| `outcome` | `event.outcome` (`success`, `failure` or `unknown` only) | `evt.outcome` | as is |
| *(added)* | `ecs.version` (`"8.11.0"`), `event.dataset` (`"<service>.log"`) | | |
| *any other key* | as is | as is | an attribute, as is |

Rules every preset keeps:

- **Nothing is lost.** A key no preset knows (context keys, other ``extra``
  keys, ``logkafka_repaired``, ``truncated``, the audit members ``stream``,
  ``actor``, ``resource``, ``diff``, ``event_type``, ``decision``,
  ``context``...) keeps its name and value. A value that cannot be converted
  (a ``duration`` that is not a finite number, or whose nanoseconds do not fit
  64 bits; an ECS ``outcome`` other than the three ECS allows) keeps its own
  name and value. Members of ``error`` that are ``None`` are left out; an
  ``error`` that is not the formatter's ``{"type", "message", "stack_trace"}``
  dict is kept whole under ``error``.
- **Nothing is overwritten.** When the target name is already taken (a key of
  the record has that name, e.g. ``extra={"user.id": ...}`` next to a bound
  ``user_id``), the field keeps its original name and value instead, so both
  arrive. When two fields map to one name, the first of the pair named above
  wins (``client.ip`` over ``ip_address``, ``http.user_agent`` over
  ``user_agent``, ``duration`` over ``duration_ms``); the other keeps its
  name. If one of the ``error`` members' targets is taken, ``error`` stays
  whole. A field a preset adds (``ecs.version``, ``event.dataset``,
  ``dd.trace_id``, ``dd.span_id``, ``time_unix_nano``) is added only when no
  key has its name.
- **Flat dotted keys.** ``ecs`` and ``datadog`` write ``"log.level": "INFO"``,
  never nested objects: Elasticsearch indexes a dotted key exactly as the
  nested object (and the ecs-logging spec requires ``log.level`` dotted),
  Datadog's own trace correlation guide writes ``"dd.trace_id"`` as a dotted
  key, and the formatter's own extras are dotted already (``http.method``).
  ``otel`` attribute names are dotted strings by definition.
- The input dict is never modified; ``default`` returns it as it is.

Decisions, per preset:

- ``ecs``: ``@timestamp``, ``log.level``, ``message``, ``ecs.version`` come
  first, as the ecs-logging spec orders them; the rest keeps the record's
  order. ``log.level`` keeps the level name as logged (``INFO``): ECS defines
  it as the original level of the source, and the ecs-logging spec's
  examples write ``NOTICE``, ``ERROR`` (ecs-logging-python lower-cases;
  ecs-logging-java does not). ``ecs.version`` is 8.11.0, the schema these
  names were checked against. ``event.dataset`` is ``<service>.log``, the
  ecs-logging default Kibana's log views and anomaly detection filter on.
  ``module`` is the module name (the file name without ``.py``): the record
  has no file name.
- ``datadog``: ``status`` is lower-case, as Datadog shows statuses (its status
  remapper reads either case). ``trace_id`` / ``span_id`` stay hex (the names
  Datadog's OpenTelemetry guide now uses) and ``dd.trace_id`` / ``dd.span_id`` are
  added as decimal strings, the trace id's lower 64 bits, as Datadog's
  OpenTelemetry log correlation guide converts them (strings: JSON numbers
  above 2**53 lose digits in many parsers).
- ``otel``: the top-level names are the OpenTelemetry Collector's OTTL log
  paths (``time_unix_nano``, ``severity_text``, ``severity_number``,
  ``body``, ``event_name``, ``trace_id``, ``span_id``, ``resource``,
  ``instrumentation_scope``, ``attributes``), so a collector reading the JSON
  sets each with one statement. ``time_unix_nano`` is added next to the RFC
  3339 ``timestamp`` (same instant, milliseconds). ``severity_text`` is the
  level name as logged (the data model's "original string representation");
  ``severity_number`` follows the OpenTelemetry Python SDK's mapping (10 → 5
  DEBUG, 11 → 6, 12 → 7, 13-19 → 8; the same for 20 INFO (9), 30 WARN (13), 40
  ERROR (17), 50 FATAL (21); above 53 → 24), from ``levelno`` when given,
  else from the level name (a registered name, or ``"Level N"``); except that
  levels 1-9 are TRACE (1) where the SDK says UNSPECIFIED (0); 0 (NOTSET) and
  unknown names are 0. The logger's name is the instrumentation scope, as
  in the SDK's ``LoggingHandler``. ``code`` is ``event_name``, the data model's name for
  the class of an event (a plain ``code`` attribute would clash with the
  ``code.*`` namespace). Semantic conventions as of 1.3x, as the Python SDK
  writes them: ``code.function.name``, ``code.line.number``,
  ``deployment.environment.name`` (older backends read
  ``deployment.environment``). ``module`` has no current attribute and goes to
  ``code.namespace`` (deprecated by 1.30, still read). ``process.pid`` is a
  resource attribute in OpenTelemetry, so it is in ``resource``.
  ``resource`` and ``attributes`` are always present (maybe empty);
  ``instrumentation_scope`` only with a logger name.
"""

from __future__ import annotations

import calendar
import datetime
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ECS_VERSION", "PRESETS", "apply_preset", "check_preset", "severity_number"]

#: The values of the ``fields`` setting.
PRESETS = ("default", "ecs", "datadog", "otel")
#: ``ecs.version`` in the ``ecs`` preset.
ECS_VERSION = "8.11.0"

_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_HEX_DIGITS = "0123456789abcdefABCDEF"
_ECS_OUTCOMES = ("success", "failure", "unknown")

#: Writes a field (key, value) of the record ``d`` into ``out``.
_Handler = Callable[[dict[str, Any], Mapping[str, Any], str, Any], None]
_Route = dict[str, "str | _Handler"]


def check_preset(name: Any) -> str:
    """``name`` if it is one of :data:`PRESETS`, else ``ValueError`` naming the ``fields`` setting."""
    if isinstance(name, str) and name in PRESETS:
        return str(name)
    raise _unknown(name)


def _unknown(name: Any) -> ValueError:
    return ValueError(f"fields: expected one of {', '.join(map(repr, PRESETS))}, got {name!r}")


def apply_preset(name: str, d: dict[str, Any], levelno: int | None = None) -> dict[str, Any]:
    """The record ``d`` (the formatter's flat dict) shaped by preset ``name``.

    ``default`` returns ``d`` itself; the others a new dict, ``d`` untouched.
    ``levelno`` (the record's numeric level) only serves ``otel``'s
    ``severity_number``; without it the level name is used.
    """
    if name == "default":
        return d
    apply = _APPLY.get(name)
    if apply is None:
        raise _unknown(name)
    return apply(d, levelno)


# -- shared rules ------------------------------------------------------------------------

def _free(out: Mapping[str, Any], d: Mapping[str, Any], key: str, target: str) -> bool:
    """Whether ``key`` may be written as ``target``: the name is its own, or no one else's."""
    return target == key or (target not in d and target not in out)


def _add(out: dict[str, Any], d: Mapping[str, Any], name: str, value: Any) -> None:
    """Add a derived field, unless a key of the record or of ``out`` has its name."""
    if name not in d and name not in out:
        out[name] = value


def _route(out: dict[str, Any], d: Mapping[str, Any], route: _Route) -> None:
    """Write every field of ``d`` into ``out``, renamed by ``route``: one pass."""
    for k, v in d.items():
        r = route.get(k)
        if r is None:
            out[k] = v
        elif isinstance(r, str):
            out[r if r not in d and r not in out else k] = v
        else:
            r(out, d, k, v)


def _converted(target: str, convert: Callable[[Any], Any], rival: str | None = None) -> _Handler:
    """Write ``convert(value)`` as ``target``; keep the field as it is when ``convert`` gives
    ``None``, the name is taken, or ``rival`` (a field that wins ``target``) is in the record."""
    def put(out: dict[str, Any], d: Mapping[str, Any], key: str, value: Any) -> None:
        if rival is None or rival not in d:
            new = convert(value)
            if new is not None and (target == key or (target not in d and target not in out)):
                out[target] = new
                return
        out[key] = value
    return put


def _renamed(target: str, rival: str) -> _Handler:
    """A plain rename that yields to ``rival``."""
    return _converted(target, _same, rival)


def _same(value: Any) -> Any:
    return value


def _nanoseconds(scale: int) -> Callable[[Any], int | None]:
    """Seconds (``scale`` 10**9) or milliseconds (10**6) to integer nanoseconds, or ``None``."""
    def convert(value: Any) -> int | None:
        t = type(value)
        if t is int:
            ns = value * scale
        elif t is float:
            product = value * scale
            if not math.isfinite(product):  # NaN, infinite, or beyond floats once scaled
                return None
            ns = round(product)
        else:
            return None
        return ns if _I64_MIN <= ns <= _I64_MAX else None
    return convert


_SECONDS_NS = _nanoseconds(1_000_000_000)
_MS_NS = _nanoseconds(1_000_000)


def _split_error(names: Mapping[str, str]) -> _Handler:
    """Split the ``error`` dict into one field per member, named by ``names``."""
    def put(out: dict[str, Any], d: Mapping[str, Any], key: str, value: Any) -> None:
        if type(value) is dict:
            for member in value:
                target = names.get(member)
                if target is None or target in d or target in out:
                    break
            else:
                for member, v in value.items():
                    if v is not None:
                        out[names[member]] = v
                return
        out[key] = value
    return put


def _is_hex(value: Any, length: int) -> bool:
    return type(value) is str and len(value) == length and not value.strip(_HEX_DIGITS)


# -- ecs ---------------------------------------------------------------------------------

def _ecs_service(out: dict[str, Any], d: Mapping[str, Any], key: str, value: Any) -> None:
    out["service.name" if _free(out, d, key, "service.name") else key] = value
    if isinstance(value, str):
        _add(out, d, "event.dataset", f"{value}.log")


_ECS_HEAD = ("@timestamp", "log.level", "message")  # first, as the ecs-logging spec orders them, then ecs.version
_ECS: _Route = {
    "timestamp": "@timestamp",
    "level": "log.level",
    "logger": "log.logger",
    "code": "event.code",
    "service": _ecs_service,
    "environment": "service.environment",
    "version": "service.version",
    "host": "host.hostname",
    "instance_id": "service.node.name",
    "process": "process.pid",
    "thread": "process.thread.name",
    "module": "log.origin.file.name",
    "function": "log.origin.function",
    "line": "log.origin.file.line",
    "event_id": "event.id",
    "trace_id": "trace.id",
    "span_id": "span.id",
    "error": _split_error({"type": "error.type", "message": "error.message", "stack_trace": "error.stack_trace"}),
    "user_id": "user.id",
    "tenant_id": "organization.id",
    "ip_address": "client.ip",  # a client.ip of the record keeps the name (the collision rule)
    "http.method": "http.request.method",
    "http.status_code": "http.response.status_code",
    "http.path": "url.path",
    "http.user_agent": "user_agent.original",
    "user_agent": _renamed("user_agent.original", "http.user_agent"),
    "duration": _converted("event.duration", _SECONDS_NS),
    "duration_ms": _converted("event.duration", _MS_NS, "duration"),
    "action": "event.action",
    "outcome": _converted("event.outcome", lambda v: v if v in _ECS_OUTCOMES else None),
}


def _ecs(d: dict[str, Any], levelno: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _route(out, d, _ECS)
    head = {name: out[name] for name in _ECS_HEAD if name in out}
    head["ecs.version"] = out.get("ecs.version", ECS_VERSION)  # a record's own ecs.version is kept
    head.update(out)  # the head keeps its place, the rest follows in the record's order
    return head


# -- datadog -----------------------------------------------------------------------------

def _dd_status(out: dict[str, Any], d: Mapping[str, Any], key: str, value: Any) -> None:
    if _free(out, d, key, "status"):
        out["status"] = value.lower() if type(value) is str else value
    else:
        out[key] = value


def _dd_trace_id(out: dict[str, Any], d: Mapping[str, Any], key: str, value: Any) -> None:
    out[key] = value
    if _is_hex(value, 32):
        _add(out, d, "dd.trace_id", str(int(value[16:], 16)))


def _dd_span_id(out: dict[str, Any], d: Mapping[str, Any], key: str, value: Any) -> None:
    out[key] = value
    if _is_hex(value, 16):
        _add(out, d, "dd.span_id", str(int(value, 16)))


_DATADOG: _Route = {
    "level": _dd_status,
    "logger": "logger.name",
    "environment": "env",
    "thread": "logger.thread_name",
    "function": "logger.method_name",
    "trace_id": _dd_trace_id,
    "span_id": _dd_span_id,
    "error": _split_error({"type": "error.kind", "message": "error.message", "stack_trace": "error.stack"}),
    "user_id": "usr.id",
    "client.ip": "network.client.ip",
    "ip_address": _renamed("network.client.ip", "client.ip"),
    "http.path": "http.url_details.path",
    "http.user_agent": "http.useragent",
    "user_agent": _renamed("http.useragent", "http.user_agent"),
    "duration": _converted("duration", _SECONDS_NS),
    "duration_ms": _converted("duration", _MS_NS, "duration"),
    "action": "evt.name",
    "outcome": "evt.outcome",
}


def _datadog(d: dict[str, Any], levelno: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _route(out, d, _DATADOG)
    return out


# -- otel --------------------------------------------------------------------------------

def _band(n: int) -> int:
    if n <= 0:
        return 0
    if n < 10:
        return 1
    if n > 53:
        return 24
    band, step = divmod(n, 10)
    return 4 * band + 1 + min(step, 3)


_SEVERITY = tuple(_band(n) for n in range(54))
_SEVERITY_OF_NAME = {
    "NOTSET": 0, "DEBUG": 5, "INFO": 9, "WARNING": 13, "WARN": 13, "ERROR": 17, "CRITICAL": 21, "FATAL": 21,
}


def severity_number(levelno: int | None, level: Any = None) -> int:
    """The OpenTelemetry severity number of a Python level (``levelno``, else the name ``level``).

    10 DEBUG → 5, 20 INFO → 9, 30 WARNING → 13, 40 ERROR → 17, 50 CRITICAL → 21;
    a level 1, 2 or 3-9 above those → one, two or three more (the Python SDK's
    mapping); 1-9 → 1 (TRACE); above 53 → 24; 0 and unknown names → 0 (unspecified).
    """
    if type(levelno) is int:
        return _SEVERITY[levelno] if 0 <= levelno <= 53 else _band(levelno)
    if type(level) is str:
        number = _SEVERITY_OF_NAME.get(level)
        if number is not None:
            return number
        n = logging.getLevelName(level)  # a name registered with addLevelName gives its number
        if type(n) is int:
            return _band(n)
        digits = level[6:] if level.startswith("Level ") else ""  # logging's name of an unnamed level
        if digits.isascii() and digits.isdigit():
            return _band(int(digits))
    return 0


_MS_TAIL = {f".{ms:03d}Z": ms * 1_000_000 for ms in range(1000)}
_second: tuple[str, int] = ("", 0)  # the last "YYYY-MM-DDTHH:MM:SS" seen, as POSIX seconds


def _unix_nano(ts: Any) -> int | None:
    """``2026-11-23T09:45:02.781Z`` as integer nanoseconds since the epoch, else ``None``."""
    global _second
    if type(ts) is not str or len(ts) != 24:
        return None
    ms = _MS_TAIL.get(ts[19:])
    if ms is None:
        return None
    head = ts[:19]
    seen, seconds = _second  # one tuple: threads never see a mix
    if seen != head:
        if ts[4] + ts[7] + ts[10] + ts[13] + ts[16] != "--T::":
            return None
        try:
            seconds = calendar.timegm(datetime.datetime.fromisoformat(head).timetuple())
        except ValueError:
            return None
        _second = (head, seconds)
    return seconds * 1_000_000_000 + ms


# Where a field goes: a str is an attribute's name; (0, name) the top level; (1, name) the resource.
_OTEL_TOP = 0
_OTEL_RESOURCE = 1
_OTEL_ORDER = ("timestamp", "time_unix_nano", "severity_text", "severity_number", "body", "event_name",
               "trace_id", "span_id")
_OtelRoute = dict[str, "str | tuple[int, str] | _Handler"]
_OTEL: _OtelRoute = {
    "timestamp": (_OTEL_TOP, "timestamp"),
    "level": (_OTEL_TOP, "severity_text"),
    "message": (_OTEL_TOP, "body"),
    "code": (_OTEL_TOP, "event_name"),
    "trace_id": (_OTEL_TOP, "trace_id"),
    "span_id": (_OTEL_TOP, "span_id"),
    "logger": (_OTEL_TOP, "instrumentation_scope"),
    "service": (_OTEL_RESOURCE, "service.name"),
    "version": (_OTEL_RESOURCE, "service.version"),
    "environment": (_OTEL_RESOURCE, "deployment.environment.name"),
    "instance_id": (_OTEL_RESOURCE, "service.instance.id"),
    "host": (_OTEL_RESOURCE, "host.name"),
    "process": (_OTEL_RESOURCE, "process.pid"),
    "thread": "thread.name",
    "module": "code.namespace",
    "function": "code.function.name",
    "line": "code.line.number",
    "event_id": "log.record.uid",
    "stack_info": "code.stacktrace",
    "error": _split_error({
        "type": "exception.type", "message": "exception.message", "stack_trace": "exception.stacktrace",
    }),
    "user_id": "user.id",
    "client.ip": "client.address",
    "ip_address": _renamed("client.address", "client.ip"),
    "http.method": "http.request.method",
    "http.status_code": "http.response.status_code",
    "http.path": "url.path",
    "http.user_agent": "user_agent.original",
    "user_agent": _renamed("user_agent.original", "http.user_agent"),
}


def _otel(d: dict[str, Any], levelno: int | None) -> dict[str, Any]:
    top: dict[str, Any] = {}
    resource: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    slots = (top, resource)
    for k, v in d.items():
        r = _OTEL.get(k)
        if r is None:
            attributes[k] = v
        elif isinstance(r, str):
            attributes[r if r not in d and r not in attributes else k] = v
        elif isinstance(r, tuple):
            part, name = r
            slots[part][name] = v
        else:
            r(attributes, d, k, v)
    if "timestamp" in top:
        nano = _unix_nano(top["timestamp"])
        if nano is not None:
            top["time_unix_nano"] = nano
    if "severity_text" in top or levelno is not None:
        top["severity_number"] = severity_number(levelno, top.get("severity_text"))
    out = {name: top[name] for name in _OTEL_ORDER if name in top}
    out["resource"] = resource
    if "instrumentation_scope" in top:
        out["instrumentation_scope"] = {"name": top["instrumentation_scope"]}
    out["attributes"] = attributes
    return out


_APPLY: dict[str, Callable[[dict[str, Any], int | None], dict[str, Any]]] = {
    "ecs": _ecs,
    "datadog": _datadog,
    "otel": _otel,
}
