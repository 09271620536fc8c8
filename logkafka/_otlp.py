"""Records as OpenTelemetry logs: one ``ExportLogsServiceRequest`` per Kafka message (``encoding=``).

The OpenTelemetry Collector's Kafka receiver reads ``otlp_proto`` (protobuf, its default) or ``otlp_json``.
A record maps as the OpenTelemetry log data model and its semantic conventions say: the service identity
is the resource (``service.name``, ``service.version``, ``deployment.environment.name``,
``service.instance.id``, ``host.name``, ``process.pid``), the logger is the instrumentation scope, the
message is the body, the level the severity (number and text), the span active at the call the trace id,
span id and flags, the ``code`` the event name, the error ``exception.*``, and every other field (bound
context, extras) an attribute, nested values as maps and arrays. The fields are the formatter's, so
redaction has been applied. Protobuf is written here (a fixed, small schema: no generated classes to load,
no objects per record); the tests read it back with opentelemetry-proto's own classes.
"""

from __future__ import annotations

import base64
import logging
import struct
import time
from collections.abc import Callable, Mapping
from typing import Any

from logkafka import _json
from logkafka._formatter import JsonFormatter
from logkafka._record import HOST, SPAN, record_of
from logkafka._tracing import span_context

ENCODINGS = ("json", "otlp_json", "otlp_proto")
CONTENT_TYPES = {"otlp_json": "application/json", "otlp_proto": "application/x-protobuf"}
#: Flat-record fields that are not attributes: they have a place of their own in the log record.
_PLACED = frozenset({"timestamp", "level", "logger", "message", "code", "service", "environment", "version",
                     "host", "instance_id", "process", "trace_id", "span_id", "error", "event_id", "thread",
                     "module", "function", "line"})
_RENAMED = {"event_id": "log.record.uid", "thread": "thread.name", "module": "code.namespace",
            "function": "code.function.name", "line": "code.line.number"}
_RESOURCE = (("service", "service.name"), ("version", "service.version"),
             ("environment", "deployment.environment.name"), ("instance_id", "service.instance.id"),
             ("host", "host.name"))
_MAX_TEXT = 256 * 1024  # characters of one text value (a body, a stack trace) before it is cut


def severity_number(levelno: int) -> int:
    """The OpenTelemetry severity number of a ``logging`` level: DEBUG 5, INFO 9, WARNING 13, ERROR 17,
    CRITICAL 21, levels between them on the steps between (TRACE 1 to 4 below DEBUG)."""
    if levelno <= 0:
        return 0
    for low, base in ((50, 21), (40, 17), (30, 13), (20, 9), (10, 5)):
        if levelno >= low:
            return base + min(3, (levelno - low) * 4 // 10)
    return 1 + min(3, levelno * 4 // 10)


class LogRecordParts:
    """What one record contributes, in OTLP's terms (made once, written as protobuf or JSON)."""

    __slots__ = ("attributes", "body", "event_name", "flags", "observed_ns", "resource", "scope", "severity",
                 "severity_text", "span_id", "time_ns", "trace_id")

    def __init__(self, fields: Mapping[str, Any], created: float, levelno: int, flags: int) -> None:
        self.time_ns = int(created * 1_000_000_000)
        self.observed_ns = time.time_ns()
        self.severity = severity_number(levelno)
        self.severity_text = str(fields.get("level", ""))
        self.body = _cut(fields.get("message", ""))
        self.scope = str(fields.get("logger", ""))
        self.event_name = str(fields["code"]) if fields.get("code") is not None else ""
        trace_id, span_id = fields.get("trace_id"), fields.get("span_id")
        self.trace_id = bytes.fromhex(trace_id) if isinstance(trace_id, str) and len(trace_id) == 32 else b""
        self.span_id = bytes.fromhex(span_id) if isinstance(span_id, str) and len(span_id) == 16 else b""
        self.flags = flags & 0xFF if self.trace_id else 0
        self.resource: list[tuple[str, Any]] = [(name, fields[k]) for k, name in _RESOURCE if fields.get(k)]
        if isinstance(fields.get("process"), int):
            self.resource.append(("process.pid", fields["process"]))
        attrs: list[tuple[str, Any]] = [(_RENAMED[k], fields[k]) for k in _RENAMED if fields.get(k) is not None]
        error = fields.get("error")
        if isinstance(error, Mapping):
            for k, name in (("type", "exception.type"), ("message", "exception.message"),
                            ("stack_trace", "exception.stacktrace")):
                if error.get(k) is not None:
                    attrs.append((name, _cut(error[k])))
        attrs += [(k, v) for k, v in fields.items() if k not in _PLACED]
        self.attributes = attrs


def _cut(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "...[cut]"


# -- protobuf ------------------------------------------------------------------------------------------
def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int64: ten bytes of two's complement
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _text(number: int, text: str) -> bytes:
    return _field(number, text.encode("utf-8", "replace")) if text else b""


def _any_value(value: Any, depth: int = 0) -> bytes:
    """An ``AnyValue`` message's bytes."""
    if isinstance(value, bool):
        return b"\x10" + (b"\x01" if value else b"\x00")
    if isinstance(value, int) and -(1 << 63) <= value < (1 << 63):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + struct.pack("<d", value)
    if isinstance(value, (bytes, bytearray)):
        return _field(7, bytes(value))
    if isinstance(value, Mapping) and depth < 10:
        return _field(6, b"".join(_field(1, _key_value(str(k), v, depth + 1)) for k, v in value.items()))
    if isinstance(value, (list, tuple)) and depth < 10:
        return _field(5, b"".join(_field(1, _any_value(v, depth + 1)) for v in value))
    if value is None:
        return b""  # an empty AnyValue: no value
    return _field(1, _cut(value).encode("utf-8", "replace"))


def _key_value(key: str, value: Any, depth: int = 0) -> bytes:
    return _text(1, key) + _field(2, _any_value(value, depth))


def to_proto(parts: LogRecordParts) -> bytes:
    """The ``ExportLogsServiceRequest`` of one record, as protobuf."""
    record = b"".join((
        b"\x09" + struct.pack("<Q", parts.time_ns),
        b"\x10" + _varint(parts.severity) if parts.severity else b"",
        _text(3, parts.severity_text),
        _field(5, _any_value(parts.body)),
        b"".join(_field(6, _key_value(k, v)) for k, v in parts.attributes),
        b"\x45" + struct.pack("<I", parts.flags) if parts.flags else b"",
        _field(9, parts.trace_id) if parts.trace_id else b"",
        _field(10, parts.span_id) if parts.span_id else b"",
        b"\x59" + struct.pack("<Q", parts.observed_ns),
        _text(12, parts.event_name),
    ))
    resource = b"".join(_field(1, _key_value(k, v)) for k, v in parts.resource)
    scope_logs = _field(1, _text(1, parts.scope)) + _field(2, record)
    return _field(1, _field(1, resource) + _field(2, scope_logs))


# -- OTLP/JSON -----------------------------------------------------------------------------------------
def _json_value(value: Any, depth: int = 0) -> dict[str, Any]:
    """An ``AnyValue`` as OTLP/JSON writes it (64-bit integers as decimal strings, bytes as base64)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int) and -(1 << 63) <= value < (1 << 63):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (bytes, bytearray)):
        return {"bytesValue": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, Mapping) and depth < 10:
        return {"kvlistValue": {"values": [{"key": str(k), "value": _json_value(v, depth + 1)}
                                           for k, v in value.items()]}}
    if isinstance(value, (list, tuple)) and depth < 10:
        return {"arrayValue": {"values": [_json_value(v, depth + 1) for v in value]}}
    if value is None:
        return {}
    return {"stringValue": _cut(value)}


def to_json(parts: LogRecordParts) -> bytes:
    """The ``ExportLogsServiceRequest`` of one record, as OTLP/JSON (trace and span ids in hex)."""
    record: dict[str, Any] = {"timeUnixNano": str(parts.time_ns), "observedTimeUnixNano": str(parts.observed_ns)}
    if parts.severity:
        record["severityNumber"] = parts.severity
    if parts.severity_text:
        record["severityText"] = parts.severity_text
    record["body"] = _json_value(parts.body)
    record["attributes"] = [{"key": k, "value": _json_value(v)} for k, v in parts.attributes]
    if parts.trace_id:
        record["traceId"], record["spanId"] = parts.trace_id.hex(), parts.span_id.hex()
        record["flags"] = parts.flags
    if parts.event_name:
        record["eventName"] = parts.event_name
    return _json.dumps({"resourceLogs": [{
        "resource": {"attributes": [{"key": k, "value": _json_value(v)} for k, v in parts.resource]},
        "scopeLogs": [{"scope": {"name": parts.scope}, "logRecords": [record]}],
    }]})


WRITERS: dict[str, Callable[[LogRecordParts], bytes]] = {"otlp_json": to_json, "otlp_proto": to_proto}


def encoder(formatter: logging.Formatter, encoding: str, identity: Mapping[str, str]) -> Callable[
        [dict[str, Any]], bytes]:
    """How a captured record becomes the OTLP message of ``encoding``: from a ``JsonFormatter``'s fields (its
    redaction applied), else from the text another formatter makes (the body) and the record's own fields."""
    write = WRITERS[encoding]

    def encode(rd: dict[str, Any]) -> bytes:
        record = record_of(rd)
        if isinstance(formatter, JsonFormatter):
            fields = formatter.to_dict(record)
        else:
            ident = rd.get("_lk_res") or identity
            fields = {"message": formatter.format(record), "level": rd["levelname"], "logger": rd["name"],
                      "host": HOST, "process": rd["process"], **ident}
        span = span_context(rd.get(SPAN))
        levelno = rd.get("levelno")
        if not isinstance(levelno, int):
            levelno = logging.getLevelName(rd["levelname"])
        return write(LogRecordParts(fields, rd["created"], levelno if isinstance(levelno, int) else 0,
                                    span[2] if span is not None else 0))
    return encode
