"""Trace and span ids of the active OpenTelemetry span (opentelemetry-api is optional)."""

from __future__ import annotations

from collections.abc import Callable

try:
    from opentelemetry.trace import get_current_span as _get_current_span
except ImportError:  # pragma: no cover - opentelemetry-api is a dependency, but keep it optional
    _get_current_span = None  # type: ignore[assignment]


def _span_ids() -> tuple[int, int] | None:
    try:
        ctx = _get_current_span().get_span_context()
    except Exception:
        return None
    if ctx.is_valid:
        return (ctx.trace_id, ctx.span_id)
    return None


def _no_span() -> None:
    return None


#: Return ``(trace_id, span_id)`` as integers for the active span, or None.
current_span_ids: Callable[[], tuple[int, int] | None] = (
    _span_ids if _get_current_span is not None else _no_span
)


def hex_ids(ids: tuple[int, int]) -> tuple[str, str]:
    """Render integer ids as 32 and 16 lower-case hex digits."""
    return (f"{ids[0]:032x}", f"{ids[1]:016x}")
