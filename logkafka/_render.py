"""A captured record's members, and its JSON from cached pieces (the formatter's hot path).

:func:`members` and :func:`after_context` give the members that follow the
formatter's own fields, in their order; ``JsonFormatter.to_dict`` builds its
object with them. :class:`Template` renders the same object as bytes without
building it, from pieces that repeat (call site, identity, bound context),
when no hook or option of the formatter changes the object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from logkafka import _json, _tracing
from logkafka._clock import MILLIS_BYTES, Clock
from logkafka._record import CORE_FIELDS, CTX, ERROR, EXTRA, FIELDS, HOST, RESOURCE, SPAN, event_id_json, extra_name
from logkafka._redact import Redactor
from logkafka._snapshot import to_text

_OPTS = _json.OPT_NON_STR_KEYS
_dumps = _json.dumps


class Collision(Exception):
    """An extra key collides with a context key: the template leaves the record to ``to_dict``."""


def members(rd: dict[str, Any]) -> dict[str, Any]:
    """Context, trace, error and extra members, in their order."""
    d: dict[str, Any] = {}
    for key, value in rd[CTX].items():
        d[extra_name(key)] = value
    return after_context(rd, d)


def after_context(rd: dict[str, Any], d: dict[str, Any]) -> dict[str, Any]:
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


class Owner(Protocol):
    """What the template reads of its formatter at each record (both may be replaced on it)."""

    identity: dict[str, str]
    redactor: Redactor | None


class Template:
    """A formatter's byte template: ``_json.dumps(to_dict(record))`` from cached JSON pieces."""

    __slots__ = ("_blocks", "_clock", "_codes", "_ctx", "_owner", "_sites")

    def __init__(self, owner: Owner, clock: Clock) -> None:
        self._owner = owner
        self._clock = clock  # the formatter's: one cache of the second's text
        # JSON pieces that repeat
        self._sites: dict[tuple[Any, ...], tuple[bytes, bytes]] = {}
        self._codes: dict[str, bytes] = {}
        self._ctx: tuple[Any, bytes, frozenset[str]] = (None, b"", frozenset())
        self._blocks: tuple[Any, bytes] = (None, b"")  # (identity, its JSON members)

    def render(self, rd: dict[str, Any]) -> bytes:
        """The captured record ``rd`` as JSON bytes.

        Gives exactly ``_json.dumps(to_dict(record))``. Raises on anything
        unexpected (:class:`Collision` for an extra named like a context key):
        the formatter's general path serves the record then.
        """
        key = (rd["levelname"], rd["name"], rd["process"], rd["threadName"], rd["module"], rd["funcName"],
               rd["lineno"])
        level_logger, site = self._sites.get(key) or self._site(key)
        ms = int(rd["created"] * 1000)
        second = ms // 1000
        seen_second, date = self._clock.cached
        if seen_second != second:
            self._clock(rd["created"])
            seen_second, date = self._clock.cached
        eid_json = event_id_json(rd)
        code = rd.get("code")
        if code is None:
            code_json = b""
        elif type(code) is str:
            code_json = self._codes.get(code) or self._code_json(code)
        else:
            code_json = b',"code":' + _dumps(code, option=_OPTS)
        owner = self._owner
        identity = rd.get(RESOURCE) or owner.identity
        seen_identity, identity_json = self._blocks
        if seen_identity is not identity:
            identity_json = self._identity_block(identity)
        red = owner.redactor
        message = rd["message"] if red is None else red.text(rd["message"])
        ctx = rd[CTX]
        seen_ctx, ctx_json, ctx_names = self._ctx
        if seen_ctx is not ctx:
            seen_ctx, ctx_json, ctx_names = self._context_json(ctx, red)
        head = b'{"timestamp":"%s%s",%s,"message":%s%s%s%s,"event_id":%s%s' % (
            date.encode(), MILLIS_BYTES[ms - second * 1000], level_logger, _dumps(message), code_json,
            identity_json, site, eid_json, ctx_json)
        if SPAN in rd or ERROR in rd or FIELDS in rd or rd["stack_info"]:
            d = after_context(rd, {})
        else:
            d = rd[EXTRA]  # the common case: nothing else follows the context
        if not d:
            return head + b"}"
        if red is not None:
            d = red.record_members(d)
        if ctx_names and not ctx_names.isdisjoint(d):
            raise Collision  # an extra replaces a context value in place: the general path does that
        return head + b"," + _dumps(d, option=_OPTS)[1:]

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
        """The JSON of the identity members (cached: a formatter's, or its handler's, repeats)."""
        members = {"service": identity["service"], "environment": identity["environment"],
                   "version": identity["version"], "host": HOST, "instance_id": identity["instance_id"]}
        block = b"," + _dumps(members)[1:-1]
        self._blocks = (identity, block)
        return block

    def _context_json(self, ctx: Mapping[str, Any], red: Redactor | None) -> tuple[Any, bytes, frozenset[str]]:
        """(context, its JSON members, their names): the same context object is
        usually current for many records, and is never changed in place."""
        members = {k if k not in CORE_FIELDS else f"extra.{k}": v for k, v in ctx.items()}
        if red is not None:
            members = red.record_members(members)
        cached = self._ctx = (ctx, b"," + _dumps(members, option=_OPTS)[1:-1] if members else b"",
                              frozenset(members))
        return cached

    def _code_json(self, code: str) -> bytes:
        if len(self._codes) > 4096:
            self._codes.clear()
        text = self._codes[code] = b',"code":' + _dumps(code)
        return text
