"""Web middleware: request context and one record per request (being written)."""

from __future__ import annotations

from typing import Any


class ASGIMiddleware:
    """Per-request context and ``request_completed`` records for an ASGI app."""

    def __init__(self, app: Any, **options: Any) -> None:
        raise NotImplementedError("ASGIMiddleware is being written")


class WSGIMiddleware:
    """Per-request context and ``request_completed`` records for a WSGI app."""

    def __init__(self, app: Any, **options: Any) -> None:
        raise NotImplementedError("WSGIMiddleware is being written")
