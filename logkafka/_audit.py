"""``logkafka.audit`` and ``logkafka.security``: checked records of their own streams.

Each is an ordinary logging call on its own logger (``logkafka.audit``,
``logkafka.security``), so the records also reach the application's files.
A ``KafkaLogHandler`` sends them to the stream's topic, keyed by tenant, with
``durability="disk"``; no sampling filter and no drop policy removes them.
Every member is passed under a fixed name of ours, and what the caller gives
in ``context`` is nested under ``"context"``: nothing the caller passes can
collide with a ``LogRecord`` attribute.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from logkafka import _context
from logkafka._process import is_handler
from logkafka._record import STREAM
from logkafka._report import report

AUDIT_LOGGER = logging.getLogger("logkafka.audit")
SECURITY_LOGGER = logging.getLogger("logkafka.security")
#: Records of each stream that reached no KafkaLogHandler (see ``unrouted``).
_UNROUTED = {"audit": 0, "security": 0}
_SAID: set[str] = set()
OUTCOMES = ("success", "failure")
DECISIONS = ("allow", "deny")


def default_tenant() -> str:
    """The tenant of records that name none: the bound ``tenant_id``, else ``$TENANT_ID``, else ``default``."""
    bound = _context.current().get("tenant_id")
    if isinstance(bound, str) and bound:
        return bound
    return os.environ.get("TENANT_ID") or "default"


def check_text(name: str, value: Any) -> str:
    """``value``, a non-empty string, else ``ValueError`` naming the argument ``name``."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name}: expected a non-empty string, got {value!r}")
    return value


def _optional_text(name: str, value: Any) -> str | None:
    return None if value is None else check_text(name, value)


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
    return str(value)


def _mapping(name: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"{name}: expected a mapping, got {type(value).__name__}")
    return {str(k): v for k, v in value.items()}


def _diff(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not set(value) <= {"old", "new"} or not value:
        raise ValueError("diff: expected {'old': {...}, 'new': {...}}")
    out: dict[str, Any] = {}
    for side in ("old", "new"):
        if side in value:
            part = value[side]
            if part is not None and not isinstance(part, Mapping):
                raise ValueError(f"diff: {side!r} must be a mapping or None, got {type(part).__name__}")
            out[side] = None if part is None else {str(k): v for k, v in part.items()}
    return out


def add_context(extra: dict[str, Any], correlation_id: Any, context: Any) -> None:
    """Add ``correlation_id`` and ``context`` (nested under ``"context"``) to ``extra``, checked
    (``ValueError`` naming the argument)."""
    cid = _optional_text("correlation_id", correlation_id)
    if cid is not None:  # else the bound context's correlation_id shows, as on every record
        extra["correlation_id"] = cid
    ctx = _mapping("context", context)
    if ctx:
        extra["context"] = ctx


def _common(extra: dict[str, Any], tenant_id: Any, correlation_id: Any, context: Any) -> None:
    extra["tenant_id"] = _optional_text("tenant_id", tenant_id) or default_tenant()
    add_context(extra, correlation_id, context)


class Parts(NamedTuple):
    """What a stream's record is logged with: ``logger.log(level, msg, *args, extra=extra)``."""

    level: int
    msg: str
    args: tuple[Any, ...]
    extra: dict[str, Any]


def audit_parts(action: Any, actor: Any, resource: Any, outcome: Any, *, tenant_id: Any = None, diff: Any = None,
                ip_address: Any = None, user_agent: Any = None, correlation_id: Any = None,
                context: Any = None) -> Parts:
    """(level, msg, args, extra) of an audit record, arguments checked (``ValueError`` naming the field)."""
    extra: dict[str, Any] = {
        STREAM: "audit",
        "action": check_text("action", action),
        "actor": check_text("actor", actor),
        "resource": check_text("resource", resource),
        "outcome": _one_of("outcome", outcome, OUTCOMES),
    }
    d = _diff(diff)
    if d is not None:
        extra["diff"] = d
    for name, value in (("ip_address", ip_address), ("user_agent", user_agent)):
        if _optional_text(name, value) is not None:
            extra[name] = value
    _common(extra, tenant_id, correlation_id, context)
    level = logging.INFO if outcome == "success" else logging.WARNING
    return Parts(level, "audit: %s %s %s: %s", (actor, action, resource, outcome), extra)


def security_parts(event_type: Any, user_id: Any, resource: Any, decision: Any, *, tenant_id: Any = None,
                   correlation_id: Any = None, context: Any = None) -> Parts:
    """(level, msg, args, extra) of a security record, arguments checked (``ValueError`` naming the field)."""
    extra: dict[str, Any] = {
        STREAM: "security",
        "event_type": check_text("event_type", event_type),
        "user_id": check_text("user_id", user_id),
        "resource": check_text("resource", resource),
        "decision": _one_of("decision", decision, DECISIONS),
    }
    _common(extra, tenant_id, correlation_id, context)
    level = logging.INFO if decision == "allow" else logging.WARNING
    return Parts(level, "security: %s %s %s: %s", (event_type, user_id, resource, decision), extra)


def audit(
    action: str,
    actor: str,
    resource: str,
    outcome: str,
    *,
    tenant_id: str | None = None,
    diff: Mapping[str, Any] | None = None,
    ip_address: str | None = None,
    user_agent: str | None = None,
    correlation_id: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> None:
    """Record that ``actor`` did ``action`` to ``resource``, with ``outcome`` ``success`` or ``failure``.

    ``diff`` is ``{"old": {...}, "new": {...}}``. Raises ``ValueError`` naming
    the field for a bad argument; never raises because of logging itself.
    """
    level, msg, args, extra = audit_parts(action, actor, resource, outcome, tenant_id=tenant_id, diff=diff,
                                          ip_address=ip_address, user_agent=user_agent,
                                          correlation_id=correlation_id, context=context)
    _log(AUDIT_LOGGER, "audit", level, msg, args, extra)


def security(
    event_type: str,
    user_id: str,
    resource: str,
    decision: str,
    *,
    tenant_id: str | None = None,
    correlation_id: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> None:
    """Record a security event (``event_type`` e.g. ``authentication``) with ``decision`` ``allow`` or ``deny``.

    Raises ``ValueError`` naming the field for a bad argument.
    """
    level, msg, args, extra = security_parts(event_type, user_id, resource, decision, tenant_id=tenant_id,
                                             correlation_id=correlation_id, context=context)
    _log(SECURITY_LOGGER, "security", level, msg, args, extra)


def unrouted() -> dict[str, int]:
    """Audit and security records of this process that reached no ``KafkaLogHandler``, by stream."""
    return dict(_UNROUTED)


def _log(logger: logging.Logger, stream: str, level: int, msg: str, args: tuple[Any, ...],
         extra: dict[str, Any]) -> None:
    """Log a stream's record at the caller's line; nothing in the app's configuration switches it off.

    ``dictConfig`` disables every logger that exists before it runs and that it
    does not name, unless ``disable_existing_loggers`` is False; importing
    logkafka creates these two, so a recipe without that line would silence the
    audit trail. Their records are not the app's verbosity either: a logger at
    NOTSET is set to INFO, so a quiet root logger does not hide them.
    """
    if logger.disabled:
        logger.disabled = False
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if not _reaches_kafka(logger, level):
        _UNROUTED[stream] += 1
        if stream not in _SAID:
            _SAID.add(stream)
            report("unrouted", f"logkafka.{stream}() records reach no KafkaLogHandler: no handler on the logger "
                   f"{logger.name!r} or its parents takes them, so they are not sent to Kafka (counted in "
                   f"stats()['unrouted']); attach a KafkaLogHandler to the root logger or to {logger.name!r}",
                   interval=0.0)
    logger.log(level, msg, *args, extra=extra, stacklevel=3)


def _reaches_kafka(logger: logging.Logger, level: int) -> bool:
    """Whether a record at ``level`` on ``logger`` meets a KafkaLogHandler (directly or behind a QueueHandler)."""
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if level < handler.level:
                continue
            if is_handler(handler):
                return True
            listener = getattr(handler, "listener", None)  # a QueueHandler configured with its listener
            if any(is_handler(h) and level >= h.level for h in getattr(listener, "handlers", ())):
                return True
        if not current.propagate:
            break
        current = current.parent
    return False
