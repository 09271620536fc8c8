"""The records ``logkafka.events`` publishes, built as ``Logger.makeRecord`` builds them, checked."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from enum import Enum
from types import FrameType
from typing import Any, NamedTuple

from logkafka._audit import Parts, add_context, check_text
from logkafka._record import OWN_LOGGERS

#: The modules whose frames are the publisher's own, not the service's call.
_OWN_MODULES = frozenset({"logkafka.events", __name__})


class Site(NamedTuple):
    """Where the service called the publisher."""

    path: str
    line: int
    function: str


class Identity(NamedTuple):
    """The identity of an application record's handler."""

    service_name: str
    instance_id: str


class Publication(NamedTuple):
    """A record to publish, and the identity of the handler that ships it (None: the publisher's own)."""

    record: logging.LogRecord
    identity: Identity | None


def plain(value: Any) -> Any:
    """An enum member's value (``Outcome.SUCCESS`` -> ``"success"``), anything else as it is."""
    return value.value if isinstance(value, Enum) else value


def _level(value: Any) -> int:
    """A logging level from a name (any case) or a number with a name; else ``ValueError``."""
    value = plain(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if value >= 0 and logging.getLevelName(value) != f"Level {value}":
            return value
    elif isinstance(value, str):
        level = logging.getLevelName(value.strip().upper())
        if isinstance(level, int):
            return level
    raise ValueError(f"level: unknown logging level {value!r}")


def caller_site() -> Site:
    """The first frame outside the publisher's modules: the service's call."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__") not in _OWN_MODULES:
            code = frame.f_code
            return Site(code.co_filename, frame.f_lineno, code.co_name)
        frame = frame.f_back
    return Site("(unknown file)", 0, "(unknown function)")


def _record(name: str, level: int, msg: str, args: tuple[Any, ...] | None, extra: Mapping[str, Any],
            site: Site) -> logging.LogRecord:
    """A record as ``Logger.makeRecord`` makes it: the standard attributes, then ``extra``."""
    record = logging.LogRecord(name, level, site.path, site.line, msg, args, None, site.function, None)
    record.__dict__.update(extra)
    return record


def application(site: Site, service_name: Any, instance_id: Any, level: Any, logger_name: Any, message: Any,
                code: Any, context: Any, correlation_id: Any) -> Publication:
    """An application record, shipped with ``service_name`` and ``instance_id`` as its identity; its
    arguments checked (``ValueError`` naming the argument)."""
    identity = Identity(check_text("service_name", service_name), check_text("instance_id", instance_id))
    levelno = _level(level)
    name = check_text("logger_name", logger_name)
    if name.startswith(OWN_LOGGERS):
        raise ValueError(f"logger_name: {name!r} is reserved: handlers never ship records of logkafka's "
                         "and confluent_kafka's loggers")
    if not isinstance(message, str):
        raise ValueError(f"message: expected a string, got {type(message).__name__}")
    extra: dict[str, Any] = {"code": check_text("code", code)}
    add_context(extra, correlation_id, context)
    return Publication(_record(name, levelno, message, None, extra, site), identity)


def stream(site: Site, logger: logging.Logger, parts: Parts) -> Publication:
    """The record ``logkafka.audit()`` or ``security()`` logs with ``parts`` on ``logger``, for the
    publisher's own handler."""
    return Publication(_record(logger.name, parts.level, parts.msg, parts.args, parts.extra, site), None)
