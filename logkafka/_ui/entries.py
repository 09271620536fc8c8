"""What the viewer shows of one consumed message, and which messages a query selects.

Every message becomes an :class:`Entry`: the row's fields (time, level, stream, service, logger,
code, message, correlation id, tenant, trace id), the audit or security fields, the whole record,
and a flag when the value is not JSON or not a log record. The page gets its JSON, made once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from logkafka._cli.records import LogLine, level_number, parse, text_of

#: Characters of a value kept for the page (the rest is cut, and the entry says so).
MAX_VALUE_CHARS = 64 * 1024
STREAMS = ("application", "audit", "security")
_TRACE: tuple[tuple[str, ...], ...] = (("trace_id",), ("trace.id",), ("attributes", "trace_id"))
_TENANT: tuple[tuple[str, ...], ...] = (("tenant_id",), ("organization.id",), ("attributes", "tenant_id"))
_AUDIT = ("actor", "action", "resource", "outcome", "diff", "ip_address", "user_agent")
_SECURITY = ("event_type", "user_id", "resource", "decision")


def _find(line: LogLine, paths: tuple[tuple[str, ...], ...]) -> str | None:
    for path in paths:
        value: Any = line.data
        for name in path:
            value = value.get(name) if isinstance(value, Mapping) else None
        if value is not None and value != "":
            return text_of(value)
    envelope = line.envelope or {}
    value = envelope.get(paths[0][0])
    return text_of(value) if value else None


@dataclass(slots=True)
class Entry:
    """One message as the viewer keeps it: the fields it filters on, and the JSON it sends."""

    seq: int  # its place in the store (increasing): the live stream sends what is newer
    id: str  # topic/partition/offset
    stream: str
    ts_ms: int  # the record's time: its Kafka timestamp, else its own
    levelno: int | None
    service: str | None
    logger: str | None
    code: str | None
    correlation_id: str | None
    trace_id: str | None
    tenant_id: str | None
    text: str  # lower-case: message, key, headers, value (free-text search)
    json: bytes  # the entry as the page gets it
    size: int  # bytes it holds, roughly (for the store's bound)


def stream_of(line: LogLine, topic_streams: Mapping[str, str]) -> str:
    """The record's stream: its own ``stream`` field (audit and security records carry one), else its topic's."""
    own = line.member("stream")
    if own in STREAMS:
        return str(own)
    return topic_streams.get(line.topic, "application")


def entry_of(seq: int, topic: str, partition: int, offset: int, value: bytes | None, timestamp_ms: int | None,
             key: bytes | None, headers: Any, topic_streams: Mapping[str, str]) -> Entry:
    """The entry of one consumed message; never raises on what the message holds."""
    cut = value is not None and len(value) > MAX_VALUE_CHARS * 4
    line = parse(topic, partition, offset, value[: MAX_VALUE_CHARS * 4] if cut and value else value)
    stream = stream_of(line, topic_streams)
    ours = line.data is not None and line.time is not None and line.message is not None and (
        line.levelno is not None or line.level is not None)
    flag = None
    if cut:
        flag = f"cut to {MAX_VALUE_CHARS} characters for the viewer"
    elif line.data is None:
        flag = "not JSON"
    elif not ours:
        flag = "not a log record"
    key_text = key.decode("utf-8", "replace") if key is not None else None
    header_map = {str(n): (v.decode("utf-8", "replace") if isinstance(v, bytes) else v) for n, v in headers or ()}
    ts = timestamp_ms if timestamp_ms is not None and timestamp_ms > 0 else _time_ms(line.time)
    trace_id, tenant_id = _find(line, _TRACE), _find(line, _TENANT)
    shown: dict[str, Any] = {
        "id": f"{topic}/{partition}/{offset}", "seq": seq, "stream": stream, "topic": topic, "partition": partition,
        "offset": offset, "ts": ts, "time": line.time, "level": line.level, "levelno": line.levelno,
        "service": line.service, "logger": line.logger, "code": line.code, "message": line.message,
        "correlation_id": line.correlation_id, "trace_id": trace_id, "tenant_id": tenant_id, "error": line.error,
        "key": key_text, "headers": header_map or None, "flag": flag,
        "record": line.data,
        "envelope": {k: v for k, v in line.envelope.items() if k != "payload"} if line.envelope else None,
        "raw": line.raw[:MAX_VALUE_CHARS] if line.data is None or cut else None,
    }
    if stream == "audit":
        shown["audit"] = {name: line.member(name) for name in _AUDIT}
    elif stream == "security":
        shown["security"] = {name: line.member(name) for name in _SECURITY}
    data = json.dumps(shown, ensure_ascii=False, default=str).encode()
    text = " ".join(t for t in (line.message, key_text, json.dumps(header_map) if header_map else None,
                                line.raw[:MAX_VALUE_CHARS]) if t).lower()
    return Entry(seq, shown["id"], stream, ts, line.levelno, line.service, line.logger, line.code,
                 line.correlation_id, trace_id, tenant_id, text, data, len(data) + len(text) + 200)


def _time_ms(text: str | None) -> int:
    """An RFC 3339 time as epoch milliseconds (0 when there is none or it does not parse)."""
    if not text:
        return 0
    import datetime

    try:
        stamp = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return 0
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    return int(stamp.timestamp() * 1000)


# -- queries --------------------------------------------------------------------------------

#: The query parameters, named as the fields they filter on.
QUERY_PARAMS = ("level", "stream", "service", "logger", "code", "correlation_id", "trace_id", "tenant_id", "q")


@dataclass(frozen=True)
class Query:
    """Which entries to show: every given filter must match (a field's filter may list values: any of them)."""

    min_level: int | None = None
    streams: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()
    logger: str | None = None  # a prefix: "checkout" matches checkout and checkout.orders
    codes: frozenset[str] = frozenset()
    correlation_id: str | None = None
    trace_id: str | None = None
    tenant_ids: frozenset[str] = frozenset()
    text: str | None = None  # lower-case, found anywhere in the message, key, headers or value

    @classmethod
    def of(cls, params: Mapping[str, str]) -> Query:
        """The query of URL parameters (comma-separated values where a field takes several); a ``ValueError``
        naming the parameter for a bad one."""
        def values(name: str) -> frozenset[str]:
            return frozenset(v.strip() for v in params.get(name, "").split(",") if v.strip())

        level = params.get("level", "").strip()
        min_level = level_number(level) if level else None
        if level and min_level is None:
            raise ValueError(f"level: unknown level {level!r} (DEBUG, INFO, WARNING, ERROR, CRITICAL or a number)")
        streams = values("stream")
        unknown = streams - set(STREAMS)
        if unknown:
            raise ValueError(f"stream: unknown stream {sorted(unknown)[0]!r} (application, audit or security)")
        text = params.get("q", "").strip().lower() or None
        return cls(min_level, streams, values("service"), params.get("logger", "").strip() or None, values("code"),
                   params.get("correlation_id", "").strip() or None, params.get("trace_id", "").strip() or None,
                   values("tenant_id"), text)

    @property
    def active(self) -> bool:
        """Whether any filter is given."""
        return self != _EVERYTHING

    def __call__(self, e: Entry) -> bool:
        if self.min_level is not None and (e.levelno is None or e.levelno < self.min_level):
            return False
        if self.streams and e.stream not in self.streams:
            return False
        if self.services and e.service not in self.services:
            return False
        if self.logger is not None and not (e.logger is not None and (
                e.logger == self.logger or e.logger.startswith(self.logger + "."))):
            return False
        if self.codes and e.code not in self.codes:
            return False
        if self.correlation_id is not None and e.correlation_id != self.correlation_id:
            return False
        if self.trace_id is not None and e.trace_id != self.trace_id:
            return False
        if self.tenant_ids and e.tenant_id not in self.tenant_ids:
            return False
        return self.text is None or self.text in e.text


_EVERYTHING = Query()
