"""What a log record read from Kafka says, whatever its format and field preset; which records to show.

:func:`parse` understands records in the ``flat`` or ``envelope`` format and in every field preset
(``default``, ``ecs``, ``datadog``, ``otel``): a value that is not JSON gives a :class:`LogLine` with
``data=None``. :class:`Filters` selects records by level, service, correlation id, code, message or field.
Every reader of log topics (``tail``, ``demo``, and the readers to come) uses these.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_LEVELS = {
    "TRACE": 5, "DEBUG": 10, "INFO": 20, "NOTICE": 25, "WARN": 30, "WARNING": 30,
    "ERROR": 40, "CRITICAL": 50, "FATAL": 50, "ALERT": 50, "EMERGENCY": 50,
}


# -- finding the fields of a record, whatever its format and preset -------------------------

Path = tuple[str, ...]
_TIME: tuple[Path, ...] = (("timestamp",), ("@timestamp",))
_LEVEL: tuple[Path, ...] = (("level",), ("log.level",), ("severity_text",), ("status",))
_SERVICE: tuple[Path, ...] = (("service",), ("service.name",), ("resource", "service.name"))
_LOGGER: tuple[Path, ...] = (("logger",), ("log.logger",), ("logger.name",), ("instrumentation_scope", "name"))
_MESSAGE: tuple[Path, ...] = (("message",), ("body",))
_CODE: tuple[Path, ...] = (("code",), ("event.code",), ("event_name",))
_CORRELATION: tuple[Path, ...] = (("correlation_id",), ("attributes", "correlation_id"))
_ERROR: tuple[Path, ...] = (("error", "type"), ("error.type",), ("error.kind",), ("exception.type",),
                            ("attributes", "exception.type"))


def _get(d: Mapping[str, Any], path: Path) -> Any:
    value: Any = d
    for name in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value


def _first(d: Mapping[str, Any], paths: Sequence[Path]) -> Any:
    for path in paths:
        value = _get(d, path)
        if value is not None and value != "":
            return value
    return None


def text_of(value: Any) -> str | None:
    """A field's value as text: a string as it is, anything else as JSON; None stays None."""
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def level_number(level: Any) -> int | None:
    """The numeric level of a level name (``INFO``, ``warning``, ``Level 5``) or number; None if unknown."""
    if isinstance(level, bool):
        return None
    if isinstance(level, int):
        return level
    if not isinstance(level, str):
        return None
    text = level.strip().upper()
    if text in _LEVELS:
        return _LEVELS[text]
    text = text.removeprefix("LEVEL ")
    return int(text) if text.isascii() and text.isdigit() else None


def _level_of_severity(number: Any) -> int | None:
    """An OpenTelemetry severity number (1-24) as a Python level."""
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 24:
        return None
    return (5, 10, 20, 30, 40, 50)[(number - 1) // 4]


@dataclass
class LogLine:
    """The readable fields of one consumed record."""

    topic: str
    partition: int
    offset: int
    value: bytes
    data: dict[str, Any] | None  # the record's own fields (an envelope's payload), None for a non-JSON value
    envelope: dict[str, Any] | None = None
    time: str | None = None
    level: str | None = None
    levelno: int | None = None
    service: str | None = None
    logger: str | None = None
    message: str | None = None
    code: str | None = None
    correlation_id: str | None = None
    error: str | None = None
    raw: str = field(default="", repr=False)

    def member(self, name: str) -> Any:
        """A field of the record by name: its own, else an otel attribute, else the envelope's."""
        for d in (self.data, _get(self.data or {}, ("attributes",)), self.envelope):
            if isinstance(d, Mapping) and d.get(name) is not None:
                return d[name]
        return None


def parse(topic: str, partition: int, offset: int, value: bytes | None) -> LogLine:
    """The fields of a record value, in any format and preset; a non-JSON value gives ``data=None``."""
    value = value or b""
    raw = value.decode("utf-8", "replace")
    line = LogLine(topic, partition, offset, value, None, raw=raw)
    try:
        data = json.loads(value)
    except ValueError:
        return line
    if not isinstance(data, dict):
        return line
    payload = data.get("payload")
    if "schema_ref" in data and "event_type" in data and payload is not None:
        line.envelope = data
        if not isinstance(payload, dict):  # a formatter that did not write JSON: the payload is its text
            payload = {"message": text_of(payload)}
        data = payload
    line.data = data
    env = line.envelope or {}
    line.time = text_of(_first(data, _TIME))
    if line.time is None and isinstance(data.get("time_unix_nano"), int):
        stamp = datetime.datetime.fromtimestamp(data["time_unix_nano"] / 1e9, datetime.timezone.utc)
        line.time = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    line.time = line.time or text_of(env.get("timestamp"))
    level = _first(data, _LEVEL)
    line.level = text_of(level)
    line.levelno = level_number(level)
    if line.levelno is None:
        line.levelno = _level_of_severity(data.get("severity_number"))
    if line.level is not None and line.level.islower():  # datadog's "status": "warning"
        line.level = line.level.upper()
    line.service = text_of(_first(data, _SERVICE)) or text_of(env.get("source"))
    line.logger = text_of(_first(data, _LOGGER))
    line.message = text_of(_first(data, _MESSAGE))
    line.code = text_of(_first(data, _CODE))
    line.correlation_id = text_of(_first(data, _CORRELATION)) or text_of(env.get("correlation_id"))
    line.error = text_of(_first(data, _ERROR))
    return line


# -- filters --------------------------------------------------------------------------------

@dataclass
class Filters:
    """Which records to show: every given filter must match (a repeated one: any of its values)."""

    min_level: int | None = None
    services: frozenset[str] = frozenset()
    correlation_ids: frozenset[str] = frozenset()
    codes: frozenset[str] = frozenset()
    grep: re.Pattern[str] | None = None
    members: dict[str, str] = field(default_factory=dict)  # field name -> value (the demo's run id)

    @property
    def active(self) -> bool:
        """Whether anything is filtered out."""
        return bool(self.min_level is not None or self.services or self.correlation_ids or self.codes
                    or self.grep or self.members)

    def __call__(self, line: LogLine) -> bool:
        if not self.active:
            return True
        if line.data is None:  # a value that is not JSON matches no filter
            return False
        if self.min_level is not None and (line.levelno is None or line.levelno < self.min_level):
            return False
        if self.services and line.service not in self.services:
            return False
        if self.correlation_ids and line.correlation_id not in self.correlation_ids:
            return False
        if self.codes and line.code not in self.codes:
            return False
        if self.grep is not None and (line.message is None or not self.grep.search(line.message)):
            return False
        return all(text_of(line.member(k)) == v for k, v in self.members.items())
