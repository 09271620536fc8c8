"""Trace and span ids of the active OpenTelemetry span (opentelemetry-api is optional).

On the caller's thread only the current OpenTelemetry ``Context`` is taken (it
is immutable, so it is the state at the call); the span and its ids are read
from it later, on the worker. Only OpenTelemetry's public API is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:
    from opentelemetry import context as _otel_context
    from opentelemetry.trace import INVALID_SPAN as _INVALID_SPAN
    from opentelemetry.trace import get_current_span as _get_current_span
except ImportError:  # pragma: no cover - opentelemetry-api is a dependency, but keep it optional
    _otel_context = None  # type: ignore[assignment]


#: The OpenTelemetry context active now (falsy when it holds nothing): immutable, so the state at the call.
current_otel_context: Callable[[], Any] = (
    _otel_context.get_current if _otel_context is not None else lambda: None)  # pragma: no branch

#: The last context looked at and its span's (trace id, span id, flags): records logged in one span share
#: its context object, so its ids are read once. One tuple, replaced whole: safe across threads.
_last: tuple[Any, tuple[int, int, int] | None] = (None, None)


def span_context(otel_context: Any) -> tuple[int, int, int] | None:
    """``(trace_id, span_id, trace_flags)`` of the span active in ``otel_context``, if it is valid."""
    global _last
    last = _last
    if last[0] is otel_context and otel_context is not None:
        return last[1]
    if not otel_context or _otel_context is None:
        return None
    found = None
    try:
        span = _get_current_span(otel_context)
        if span is not _INVALID_SPAN:
            ctx = span.get_span_context()
            if ctx.is_valid:
                found = (ctx.trace_id, ctx.span_id, int(ctx.trace_flags))
    except Exception:
        pass
    _last = (otel_context, found)
    return found


def span_ids(otel_context: Any) -> tuple[int, int] | None:
    """``(trace_id, span_id)`` of the span active in ``otel_context``, if it is valid."""
    found = span_context(otel_context)
    return None if found is None else found[:2]


def traceparent(otel_context: Any) -> str | None:
    """The W3C Trace Context ``traceparent`` of the span active in ``otel_context`` (version 00), if valid."""
    found = span_context(otel_context)
    return None if found is None else f"00-{found[0]:032x}-{found[1]:016x}-{found[2] & 0xFF:02x}"


def hex_ids(ids: tuple[int, int]) -> tuple[str, str]:
    """Render integer ids as 32 and 16 lower-case hex digits."""
    trace_id, span_id = ids
    return (f"{trace_id:032x}", f"{span_id:016x}")
