"""The ASGI middleware: a request's context on every record it logs, and one record per request."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from logkafka import _context
from logkafka._web.core import Middleware, exc_info_now

ASGIReceive = Callable[[], Awaitable[MutableMapping[str, Any]]]
ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], ASGIReceive, ASGISend], Awaitable[None]]


class ASGIMiddleware(Middleware[ASGIApp]):
    """Per-request context and one ``request_completed`` record for an ASGI application.

    ``http`` requests are bound, echoed and logged; ``websocket`` connections are bound
    and the correlation id is echoed in ``websocket.accept``, but nothing is logged;
    ``lifespan`` and other scopes pass through untouched. The duration runs until the
    application returns (the end of the response body, for streamed responses).

    Options (keyword-only):

    ``logger``
        the logger of the request records, a name or a ``logging.Logger``
        (default ``"http.requests"``; never a ``logkafka...`` name).
    ``request_headers``
        the headers a correlation id is taken from, in order of precedence
        (default ``("X-Correlation-ID", "X-Request-ID")``); ``traceparent`` comes after them.
    ``response_header``
        the response header that echoes the correlation id (default
        ``"X-Correlation-ID"``; None: not echoed). A header the application set is kept.
    ``trusted_proxies``
        how many proxies in front of the application append to ``X-Forwarded-For``
        (default 0: ``client.ip`` is the peer address). With N, ``client.ip`` is the
        Nth address from the right, the one the outermost of your proxies saw; the
        peer address when the header has fewer entries or that one is not an IP
        address. Addresses further left are written by the client and never used.
    ``exclude_paths``
        paths (exact match, e.g. ``/health``) logged without a ``request_completed``
        record; their context is still bound.
    """

    _app_kind = "an ASGI application"

    async def __call__(self, scope: MutableMapping[str, Any], receive: ASGIReceive, send: ASGISend) -> None:
        kind = scope.get("type")
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        opts = self._options
        started = time.perf_counter()
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers") or ():
            name, value = bytes(raw_name).decode("latin-1").lower(), bytes(raw_value).decode("latin-1")
            if name == "x-forwarded-for" and name in headers:  # several lines are one list, in order
                headers[name] += "," + value
            else:
                headers.setdefault(name, value)
        client = scope.get("client")
        peer = str(client[0]) if client else None
        values = opts.request_context(
            lambda h: headers.get(h.lower()), str(scope.get("method") or "GET"), str(scope.get("path") or ""), peer,
        )
        echo = opts.echo_name
        cid = str(values["correlation_id"]).encode("latin-1")
        status: int | None = None

        async def send_echoing(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            mtype = message.get("type")
            if mtype in ("http.response.start", "websocket.accept"):
                if mtype == "http.response.start":
                    status = int(message.get("status", 200))
                if echo is not None:
                    # A new message with the headers as a list: the app's may be a one-shot iterable.
                    headers_out = list(message.get("headers") or ())
                    if not any(bytes(k).lower() == echo for k, _ in headers_out):
                        headers_out.append((echo, cid))
                    message = {**message, "headers": headers_out}
            await send(message)

        with _context.bound(**values):
            if kind == "websocket":
                await self.app(scope, receive, send_echoing)
                return
            try:
                await self.app(scope, receive, send_echoing)
            except BaseException:
                opts.log_end(status, started, exc_info_now())
                raise
            if values["http.path"] not in opts.exclude_paths:
                opts.log_end(status, started, None)
