"""Trace and span ids of the active OpenTelemetry span (opentelemetry-api is optional).

On the caller's thread only the current OpenTelemetry ``Context`` is taken (it
is immutable, so it is the state at the call); the span and its ids are read
from it later, on the worker, through the public API.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

try:
    from opentelemetry import context as _otel_context
    from opentelemetry.trace import INVALID_SPAN as _INVALID_SPAN
    from opentelemetry.trace import get_current_span as _get_current_span
except ImportError:  # pragma: no cover - opentelemetry-api is a dependency, but keep it optional
    _otel_context = None  # type: ignore[assignment]


def _capture_fn() -> Callable[[], Any]:
    if _otel_context is None:  # pragma: no cover
        return lambda: None
    # The default runtime context keeps the current Context in one ContextVar:
    # reading it directly costs one C call instead of four Python calls.
    runtime = getattr(_otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    if isinstance(var, ContextVar) and type(runtime).__name__ == "ContextVarsRuntimeContext":
        return var.get
    return _otel_context.get_current


#: The OpenTelemetry context active now (falsy when it holds nothing).
current_otel_context: Callable[[], Any] = _capture_fn()


def span_ids(otel_context: Any) -> tuple[int, int] | None:
    """``(trace_id, span_id)`` of the span active in ``otel_context``, if it is valid."""
    if not otel_context or _otel_context is None:
        return None
    try:
        span = _get_current_span(otel_context)
        if span is _INVALID_SPAN:
            return None
        ctx = span.get_span_context()
        if ctx.is_valid:
            return (ctx.trace_id, ctx.span_id)
    except Exception:
        pass
    return None


def hex_ids(ids: tuple[int, int]) -> tuple[str, str]:
    """Render integer ids as 32 and 16 lower-case hex digits."""
    trace_id, span_id = ids
    return (f"{trace_id:032x}", f"{span_id:016x}")
