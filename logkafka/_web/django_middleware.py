"""The Django middleware: ``"logkafka.DjangoMiddleware"`` in ``MIDDLEWARE``, sync and async.

It does for a Django project what ``WSGIMiddleware`` and ``ASGIMiddleware`` do around an application
(see :mod:`logkafka._web`), from inside Django: the request's context bound while Django handles it (so the
view's records, and Django's own ``django.request`` record of an unhandled exception, carry the correlation
id), the correlation id echoed, one ``request_completed`` / ``request_failed`` record per request. Under
ASGI (``async`` views, or any view behind Django's async handler) it runs as a coroutine, without a thread
switch. Put it first in ``MIDDLEWARE``, so the context covers the rest. Its options are the other
middlewares', from the ``LOGKAFKA_MIDDLEWARE`` setting (a dict: ``logger``, ``request_headers``,
``response_header``, ``trusted_proxies``, ``exclude_paths``). Django is imported only by this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from logkafka import _context
from logkafka._web.core import (
    DEFAULT_LOGGER,
    DEFAULT_REQUEST_HEADERS,
    DEFAULT_RESPONSE_HEADER,
    ExcInfo,
    Options,
    exc_info_now,
)

_FAILED = "_logkafka_exc_info"  # set on the request by process_exception: the view raised
_OPTIONS = ("logger", "request_headers", "response_header", "trusted_proxies", "exclude_paths")


def _options() -> Options:
    from django.conf import settings  # type: ignore[import-untyped]

    given = getattr(settings, "LOGKAFKA_MIDDLEWARE", None) or {}
    if not isinstance(given, dict):
        raise ValueError(f"LOGKAFKA_MIDDLEWARE: expected a dict of middleware options, got {type(given).__name__}")
    unknown = sorted(set(given) - set(_OPTIONS))
    if unknown:
        raise ValueError(f"LOGKAFKA_MIDDLEWARE: unknown option {unknown[0]!r} (options: {', '.join(_OPTIONS)})")
    return Options(given.get("logger", DEFAULT_LOGGER), given.get("request_headers", DEFAULT_REQUEST_HEADERS),
                   given.get("response_header", DEFAULT_RESPONSE_HEADER), given.get("trusted_proxies", 0),
                   given.get("exclude_paths", ()))


class DjangoMiddleware:
    """A request's context on every record it logs, and one record per request, for Django's ``MIDDLEWARE``."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction

        self.get_response = get_response
        self._options = _options()
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self._async:
            return self._acall(request)
        values, started = self._begin(request)
        with _context.bound(**values):
            try:
                response = self.get_response(request)
            except BaseException:
                self._options.log_end(None, started, exc_info_now())
                raise
            return self._end(request, response, values, started)

    async def _acall(self, request: Any) -> Any:
        values, started = self._begin(request)
        with _context.bound(**values):
            try:
                response = await self.get_response(request)
            except BaseException:
                self._options.log_end(None, started, exc_info_now())
                raise
            return self._end(request, response, values, started)

    def process_exception(self, request: Any, exception: BaseException) -> None:
        """The view raised: Django makes a 500 response of it; the request record keeps the stack trace."""
        setattr(request, _FAILED, (type(exception), exception, exception.__traceback__))

    def _begin(self, request: Any) -> tuple[dict[str, Any], float]:
        started = time.perf_counter()
        headers = request.headers
        values = self._options.request_context(headers.get, str(request.method or "GET"), str(request.path),
                                               request.META.get("REMOTE_ADDR"))
        return values, started

    def _end(self, request: Any, response: Any, values: dict[str, Any], started: float) -> Any:
        opts = self._options
        if opts.response_header is not None and not response.has_header(opts.response_header):
            response[opts.response_header] = values["correlation_id"]
        failed: ExcInfo | None = getattr(request, _FAILED, None)
        if failed is not None or values["http.path"] not in opts.exclude_paths:
            status = getattr(response, "status_code", None)
            opts.log_end(status, started, failed)
        return response
