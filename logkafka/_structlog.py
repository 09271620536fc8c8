"""structlog's stdlib paths, shipped as clean records.

``structlog.stdlib.ProcessorFormatter.wrap_for_formatter`` hands the standard library a record whose
``msg`` is structlog's event dict (and two attributes of its own, ``_logger`` and ``_name``). Such a record
ships with the event as its message, the other keys as fields, an ``exc_info`` in the event dict (or the
``exception`` text structlog rendered) as the structured ``error``, and without what the record already
says (``level``, ``timestamp``, ``logger``). Values bound with ``structlog.contextvars`` join the bound
context of every record, structlog's or not, as ``logkafka.bind`` values do (``bind`` wins a clash).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

#: Record attributes ``wrap_for_formatter`` adds.
RECORD_ATTRS = frozenset({"_logger", "_name"})
#: Event dict keys the record already holds (or structlog's ProcessorFormatter's own): not shipped again.
OWN_KEYS = frozenset({"event", "level", "log_level", "timestamp", "logger", "logger_name", "exc_info", "exception",
                      "_record", "_from_structlog"})


def is_event(rd: Mapping[str, Any], msg: Any) -> bool:
    """Whether a record (its attributes ``rd``, its ``msg``) carries a structlog event dict."""
    return type(msg) is dict and "event" in msg and "_logger" in rd and "_name" in rd


def bound() -> dict[str, Any] | None:
    """What ``structlog.contextvars`` holds bound now; None without structlog (it is never imported here)."""
    module = sys.modules.get("structlog.contextvars")
    if module is None:
        return None
    try:
        values = module.get_contextvars()
    except Exception:  # another structlog than the one known: no merged context, never a failed record
        return None
    return values if values else None
