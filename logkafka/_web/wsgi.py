"""The WSGI middleware: a request's context on every record it logs, and one record per request."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from logkafka import _context
from logkafka._web.core import ExcInfo, Middleware, Options, exc_info_now

StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _environ_getter(environ: dict[str, Any]) -> Callable[[str], str | None]:
    def get(name: str) -> str | None:
        key = name.upper().replace("-", "_")
        value = environ.get(key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key)
        return value if isinstance(value, str) else None

    return get


def _wsgi_text(value: Any) -> str:
    """A WSGI native string (bytes as latin-1) read back as the UTF-8 it usually is."""
    text = value if isinstance(value, str) else ""
    try:
        return text.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text


class WSGIMiddleware(Middleware[WSGIApp]):
    """Per-request context and one ``request_completed`` record for a WSGI application.

    Each request runs in a ``contextvars.Context`` of its own: the application call,
    every step of the response iterable and its ``close()``. Records logged while the
    body is produced lazily carry the request's context too, and the server thread's
    own context is never changed. ``request_completed`` is logged when the server
    closes the response (the application's ``close()`` is called first); an exception
    from the application, its iterable or its ``close()`` is logged as
    ``request_failed`` (``request_cancelled`` for ``KeyboardInterrupt``, ``SystemExit``
    and ``GeneratorExit``) and raised again. ``close()`` before the iterable was read
    to its end is logged as ``request_cancelled`` (``cancelled_by="early_close"``), as
    the package documentation (:mod:`logkafka._web`) says.

    The options are those of :class:`ASGIMiddleware`.
    """

    _app_kind = "a WSGI application"

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = _WSGIRequest(self.app, self._options, environ, start_response)
        return request.ctx.run(request.start)


class _WSGIRequest:
    """One WSGI request: its context, its status, and the wrapped response iterable."""

    def __init__(self, app: WSGIApp, opts: Options, environ: dict[str, Any], start_response: StartResponse) -> None:
        self.ctx = contextvars.copy_context()
        self.app = app
        self.opts = opts
        self.environ = environ
        self.server_start_response = start_response
        self.started = time.perf_counter()
        self.status: int | None = None
        self.done = False
        self.body: Iterable[bytes] | None = None
        self.iterator: Iterator[bytes] | None = None
        self.cid = ""
        self.path = ""
        self.method = ""
        self.exhausted = False  # the server read the body to its end
        self.produced = 0  # bytes of body produced
        self.content_length: int | None = None  # as declared in start_response

    # Runs in self.ctx.
    def start(self) -> Iterable[bytes]:
        environ = self.environ
        self.path = _wsgi_text(environ.get("SCRIPT_NAME", "")) + _wsgi_text(environ.get("PATH_INFO", ""))
        peer = environ.get("REMOTE_ADDR")
        values = self.opts.request_context(
            _environ_getter(environ), str(environ.get("REQUEST_METHOD") or "GET"), self.path,
            peer if isinstance(peer, str) and peer else None,
        )
        self.cid = str(values["correlation_id"])
        self.path = str(values["http.path"])
        self.method = str(values["http.method"]).upper()
        _context.bind(**values)  # in this request's own Context: nothing to restore
        try:
            self.body = self.app(environ, self.start_response)
        except BaseException:
            self.end(exc_info_now())
            raise
        return _WSGIBody(self)

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None,
    ) -> Callable[[bytes], object]:
        try:
            self.status = int(str(status).split(None, 1)[0])
        except (ValueError, IndexError):
            self.status = None
        self.content_length = None
        if isinstance(headers, list):
            for h in headers:
                if isinstance(h, tuple) and len(h) == 2 and str(h[0]).lower() == "content-length":
                    try:
                        self.content_length = int(str(h[1]))
                    except ValueError:
                        pass
        name = self.opts.response_header
        if name is not None and isinstance(headers, list):
            lowered = name.lower()
            if not any(isinstance(h, tuple) and str(h[0]).lower() == lowered for h in headers):
                headers = [*headers, (name, self.cid)]
        if exc_info is not None:
            return self.server_start_response(status, headers, exc_info)
        return self.server_start_response(status, headers)

    def end(self, exc_info: ExcInfo | None, cancelled_by: str | None = None) -> None:
        if self.done:
            return
        self.done = True
        if exc_info is None and cancelled_by is None and self.path in self.opts.exclude_paths:
            return
        self.opts.log_end(self.status, self.started, exc_info, cancelled_by)

    # Runs in self.ctx.
    def next_chunk(self) -> bytes:
        if self.iterator is None:
            assert self.body is not None
            self.iterator = iter(self.body)
        try:
            chunk = next(self.iterator)
        except StopIteration:
            self.exhausted = True
            raise
        except BaseException:
            self.end(exc_info_now())
            raise
        try:
            self.produced += len(chunk)
        except TypeError:
            pass
        return chunk

    # Runs in self.ctx.
    def close(self) -> None:
        close = getattr(self.body, "close", None)
        try:
            if close is not None:
                close()
        except BaseException:
            self.end(exc_info_now())
            raise
        if self.abandoned():
            self.end(None, cancelled_by="early_close")
        self.end(None)

    def abandoned(self) -> bool:
        """The server closed the response before the end of its body (gunicorn does when the client went away)."""
        if self.exhausted or self.method == "HEAD":
            return False
        return self.content_length is None or self.produced < self.content_length


class _WSGIBody:
    """The response iterable handed to the server: each step runs in the request's Context."""

    __slots__ = ("_request",)

    def __init__(self, request: _WSGIRequest) -> None:
        self._request = request

    def __iter__(self) -> _WSGIBody:
        return self

    def __next__(self) -> bytes:
        request = self._request
        return request.ctx.run(request.next_chunk)

    def close(self) -> None:
        request = self._request
        request.ctx.run(request.close)
