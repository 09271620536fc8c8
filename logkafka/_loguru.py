"""loguru to a logging handler, as logkafka ships it: ``logger.add(logkafka.loguru_sink(handler))``.

loguru's own way of writing to a ``logging.Handler`` makes a record whose message is loguru's formatted
text (a traceback pasted in), with every ``bind()`` value nested under one ``extra`` attribute. This sink
makes the record the standard library would have made for the same call: the message as written, the
exception as ``exc_info`` (so it ships structured, under ``error``), each bound value an attribute of its
own (so it ships as a top-level field), loguru's level name and number, its time, file, function, line,
process and thread. It runs on loguru's calling thread, so the record is captured there, with the bound
context and the active span (do not ``enqueue=True``: the handler never blocks the caller anyway).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

_RESERVED = frozenset(logging.LogRecord("n", 0, "p", 0, "m", None, None).__dict__) | {"message", "asctime"}


def loguru_sink(handler: logging.Handler) -> Callable[[Any], None]:
    """A loguru sink writing each message to ``handler`` (a ``KafkaLogHandler``, or any handler) as a
    standard ``LogRecord``: ``logger.add(logkafka.loguru_sink(handler), level="INFO")``."""
    if not isinstance(handler, logging.Handler):
        raise ValueError(f"handler: expected a logging.Handler, got {type(handler).__name__}")

    def sink(message: Any) -> None:
        try:
            record = record_of(message.record)
        except Exception:  # a message of an unknown shape: what the handler would do with a failure
            handler.handleError(logging.makeLogRecord({"msg": str(message)}))
            return
        if record.levelno >= handler.level:
            handler.handle(record)

    return sink


def record_of(r: dict[str, Any]) -> logging.LogRecord:
    """The ``LogRecord`` for loguru's record dict ``r``."""
    exc = r.get("exception")
    level = r["level"]
    record = logging.LogRecord(r["name"] or "loguru", level.no, r["file"].path, r["line"], r["message"], None,
                               (exc.type, exc.value, exc.traceback) if exc else None, r["function"])
    record.levelname = level.name
    record.created = r["time"].timestamp()
    record.msecs = (record.created - int(record.created)) * 1000
    record.process, record.processName = r["process"].id, r["process"].name
    record.thread, record.threadName = r["thread"].id, r["thread"].name
    record.module = r["module"]
    rd = record.__dict__
    for key, value in r["extra"].items():
        rd[key if key not in _RESERVED else f"extra.{key}"] = value
    return record
