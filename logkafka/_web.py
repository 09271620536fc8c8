"""Web middleware: a request's context on every record it logs, and one record per request.

``ASGIMiddleware`` and ``WSGIMiddleware`` wrap any ASGI or WSGI application (no
framework is imported). For each HTTP request they

* take a correlation id from the request (``X-Correlation-ID``, else ``X-Request-ID``,
  else the trace id of a W3C ``traceparent``), or make a new UUID when there is none
  or it is unsafe (longer than 128 characters, or characters outside
  letters, digits and ``-_.:/+=@``);
* bind ``correlation_id``, ``http.method``, ``http.path``, ``http.user_agent`` and
  ``client.ip`` for the duration of the request, so every record logged while
  handling it carries them. ``client.ip`` is the peer address; behind proxies, set
  ``trusted_proxies`` to their number and it is the address the outermost one saw
  (counted from the right of ``X-Forwarded-For``: entries a client sends are never
  taken);
* echo the correlation id in the response (``X-Correlation-ID``);
* log one ``request_completed`` record (code ``REQUEST_COMPLETED``) with
  ``http.status_code``, ``duration`` (seconds) and ``duration_ms``, at INFO, or at ERROR
  when the status is 500 or above; when the application raises, one
  ``request_failed`` record (code ``REQUEST_FAILED``) at ERROR with the stack trace,
  and the exception is raised again;
* when the request is stopped from outside rather than failing (``asyncio.CancelledError``
  from a server that cancels the request task, e.g. hypercorn on a client disconnect or
  uvicorn when its graceful shutdown times out; ``KeyboardInterrupt``; ``SystemExit``,
  e.g. a gunicorn worker timeout), log one ``request_cancelled`` record (code
  ``REQUEST_CANCELLED``) at WARNING, without a stack trace, with ``cancelled_by`` (the
  exception's type name), the duration and ``http.status_code`` when a response had
  started; the exception is raised again. A WSGI server that closes the response
  before the end of its body (gunicorn, when the client went away: its write fails and
  it calls ``close()``) gives ``request_cancelled`` with ``cancelled_by="early_close"``;
  a HEAD request, or a body whose declared ``Content-Length`` was produced, is complete.
  A server that ignores the disconnect (uvicorn lets the app finish, dropping what it
  sends) gives ``request_completed``;
* restore the context afterwards, exactly as it was before the request.

A logging problem never breaks the request: it is reported on stderr and the
response goes on.

Where the ASGI middleware goes, and what an unhandled exception looks like. Wrap the
whole application and serve the wrapper (``api = FastAPI()``, routes on ``api``,
``app = ASGIMiddleware(api)``): the framework's 500 page is then sent through the
middleware and carries ``X-Correlation-ID``. Added with
``api.add_middleware(ASGIMiddleware)``, it sits inside Starlette's
``ServerErrorMiddleware``, which sends that page after the exception has left the
middleware, so the page has no ``X-Correlation-ID``. Either way ``request_failed``
(status 500, the stack trace, the request's context) is logged and the exception is
raised again to the server, whose own record of it (uvicorn's "Exception in ASGI
application") is logged after the context was restored and so carries no
correlation id. The same holds for a bare ASGI app that raises before responding:
the server's 500 has no ``X-Correlation-ID``.
"""

from __future__ import annotations

import builtins
import contextvars
import ipaddress
import logging
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping, Sequence
from types import TracebackType
from typing import Any

from logkafka import _context
from logkafka._record import OWN_LOGGERS

__all__ = ["ASGIMiddleware", "WSGIMiddleware"]

DEFAULT_LOGGER = "http.requests"
DEFAULT_REQUEST_HEADERS = ("X-Correlation-ID", "X-Request-ID")
DEFAULT_RESPONSE_HEADER = "X-Correlation-ID"
MAX_ID_LENGTH = 128
_MAX_TEXT = 1024  # user agent and path are cut to this many characters

_SAFE_ID = re.compile(rf"[A-Za-z0-9\-_.:/+=@]{{1,{MAX_ID_LENGTH}}}")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an HTTP header name (RFC 9110 token)

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
ASGIReceive = Callable[[], Awaitable[MutableMapping[str, Any]]]
ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], ASGIReceive, ASGISend], Awaitable[None]]


# -- correlation id -------------------------------------------------------------------
def safe_id(value: str | None) -> str | None:
    """``value`` stripped when it is a safe correlation id, else None."""
    if value is None:
        return None
    value = value.strip()
    return value if _SAFE_ID.fullmatch(value) else None


def traceparent_trace_id(value: str | None) -> str | None:
    """The trace id of a valid W3C ``traceparent`` header value, else None."""
    if not value:
        return None
    m = _TRACEPARENT.fullmatch(value.strip())
    if m is None:
        return None
    version, trace_id, parent_id, _flags, rest = m.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return trace_id


def correlation_id(get: Callable[[str], str | None], names: Sequence[str]) -> str:
    """The correlation id of a request whose header ``name`` is ``get(name)``.

    The first of ``names`` that is present decides: a safe value is taken, an unsafe
    one is replaced with a new UUID (it is never echoed nor logged). Without any of
    them, the trace id of a valid ``traceparent``, else a new UUID.
    """
    for name in names:
        value = get(name)
        if value is not None and value.strip():
            return safe_id(value) or str(uuid.uuid4())
    return traceparent_trace_id(get("traceparent")) or str(uuid.uuid4())


def _forwarded_ip(entry: str) -> str | None:
    """The IP address of one ``X-Forwarded-For`` entry (a port is allowed), else None."""
    entry = entry.strip()
    if entry.startswith("[") and "]" in entry:  # [v6]:port
        entry = entry[1:entry.index("]")]
    elif entry.count(":") == 1:  # v4:port
        entry = entry.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(entry))
    except ValueError:
        return None


def client_ip(peer: str | None, forwarded: str | None, trusted_proxies: int) -> str | None:
    """The client address: the ``trusted_proxies``-th ``X-Forwarded-For`` entry from the right, else the peer.

    Each trusted proxy appends the address it received the request from, so the
    entry that many places from the right was written by the outermost trusted
    proxy; everything left of it may be forged by the client. With 0, or when the
    header has fewer entries, or that entry is not an IP address, the peer is used.
    """
    if trusted_proxies > 0 and forwarded:
        entries = forwarded.split(",")
        if len(entries) >= trusted_proxies:
            ip = _forwarded_ip(entries[-trusted_proxies])
            if ip is not None:
                return ip
    return peer


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT]


# -- options --------------------------------------------------------------------------
def _header_name(option: str, value: Any) -> str:
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise ValueError(f"{option}: {value!r} is not an HTTP header name")
    return value


class _Options:
    """The validated options shared by both middlewares, and the per-request work."""

    def __init__(
        self,
        logger: str | logging.Logger,
        request_headers: Sequence[str],
        response_header: str | None,
        trusted_proxies: int,
        exclude_paths: Iterable[str],
    ) -> None:
        if isinstance(logger, logging.Logger):
            name = logger.name
        elif isinstance(logger, str) and logger.strip():
            name = logger
        else:
            raise ValueError(f"logger: expected a logger name or a logging.Logger, got {logger!r}")
        if name.startswith(OWN_LOGGERS):
            raise ValueError(
                f"logger: {name!r} starts with 'logkafka' or 'confluent_kafka', "
                "whose records KafkaLogHandler never ships; choose another name"
            )
        self.logger = logger if isinstance(logger, logging.Logger) else logging.getLogger(name)
        if isinstance(request_headers, (str, bytes)) or not isinstance(request_headers, Iterable):
            raise ValueError(f"request_headers: expected a sequence of header names, got {request_headers!r}")
        self.request_headers = tuple(_header_name("request_headers", h) for h in request_headers)
        self.response_header = None if response_header is None else _header_name("response_header", response_header)
        if isinstance(trusted_proxies, bool) or not isinstance(trusted_proxies, int) or trusted_proxies < 0:
            raise ValueError(
                f"trusted_proxies: expected the number of proxies in front of the app (an int >= 0), "
                f"got {trusted_proxies!r}"
            )
        self.trusted_proxies = trusted_proxies
        if isinstance(exclude_paths, (str, bytes)) or not isinstance(exclude_paths, Iterable):
            raise ValueError(f"exclude_paths: expected a collection of paths, got {exclude_paths!r}")
        paths = list(exclude_paths)
        for path in paths:
            if not isinstance(path, str) or not path.startswith("/"):
                raise ValueError(f"exclude_paths: {path!r} is not a path starting with '/'")
        self.exclude_paths = frozenset(paths)
        self._failures = 0

    def request_context(
        self, get: Callable[[str], str | None], method: str, path: str, peer: str | None,
    ) -> dict[str, Any]:
        """The values bound for one request."""
        values: dict[str, Any] = {
            "correlation_id": correlation_id(get, self.request_headers),
            "http.method": method,
            "http.path": _cut(path),
        }
        agent = get("User-Agent")
        if agent:
            values["http.user_agent"] = _cut(agent)
        ip = client_ip(peer, get("X-Forwarded-For") if self.trusted_proxies else None, self.trusted_proxies)
        if ip:
            values["client.ip"] = ip
        return values

    def log_end(
        self, status: int | None, started: float, exc_info: ExcInfo | None, cancelled_by: str | None = None,
    ) -> None:
        """Log the request record; never raises.

        ``request_cancelled`` when ``cancelled_by`` is given or ``exc_info`` is a
        cancellation, else ``request_failed`` with ``exc_info``, else ``request_completed``.
        ``status`` is None when no response was started.
        """
        try:
            duration = time.perf_counter() - started
            extra: dict[str, Any] = {"duration": duration, "duration_ms": duration * 1000.0}
            if cancelled_by is None and exc_info is not None and is_cancellation(exc_info[1]):
                cancelled_by = exc_info[0].__name__
            if cancelled_by is not None:
                if status is not None:
                    extra["http.status_code"] = status
                extra["code"] = "REQUEST_CANCELLED"
                extra["cancelled_by"] = cancelled_by
                self.logger.warning("request_cancelled", extra=extra)
                return
            extra["http.status_code"] = 500 if status is None else status
            if exc_info is None:
                level = logging.ERROR if extra["http.status_code"] >= 500 else logging.INFO
                extra["code"] = "REQUEST_COMPLETED"
                self.logger.log(level, "request_completed", extra=extra)
            else:
                extra["code"] = "REQUEST_FAILED"
                self.logger.error("request_failed", exc_info=exc_info, extra=extra)
        except Exception as exc:  # a filter or handler that raises: the response goes on
            self._failures += 1
            if self._failures == 1 or self._failures % 1000 == 0:
                try:
                    sys.stderr.write(
                        f"logkafka: could not log the request record ({self._failures} so far): "
                        f"{type(exc).__name__}: {exc}\n"
                    )
                except Exception:
                    pass


def is_cancellation(exc: BaseException) -> bool:
    """True when ``exc`` stops a request from outside rather than reports a failure of it.

    That is every ``BaseException`` that is not an ``Exception``: ``asyncio.CancelledError``
    (a server cancelling the request task), ``KeyboardInterrupt``, ``SystemExit``,
    ``GeneratorExit``, trio's ``Cancelled``; and an exception group holding only those.
    """
    if isinstance(exc, Exception):
        return False
    group = getattr(builtins, "BaseExceptionGroup", None)  # Python 3.11+
    if group is not None and isinstance(exc, group):
        return all(is_cancellation(e) for e in exc.exceptions)
    return True


def _exc_info() -> ExcInfo:
    etype, value, tb = sys.exc_info()
    assert etype is not None and value is not None
    return etype, value, tb


# -- ASGI -----------------------------------------------------------------------------
class ASGIMiddleware:
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

    def __init__(
        self,
        app: Any,
        *,
        logger: str | logging.Logger = DEFAULT_LOGGER,
        request_headers: Sequence[str] = DEFAULT_REQUEST_HEADERS,
        response_header: str | None = DEFAULT_RESPONSE_HEADER,
        trusted_proxies: int = 0,
        exclude_paths: Iterable[str] = (),
    ) -> None:
        if not callable(app):
            raise ValueError(f"app: expected an ASGI application, got {app!r}")
        self.app: ASGIApp = app
        self._options = _Options(logger, request_headers, response_header, trusted_proxies, exclude_paths)
        name = self._options.response_header
        self._echo_name = None if name is None else name.lower().encode("latin-1")

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
        echo = self._echo_name
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
                opts.log_end(status, started, _exc_info())
                raise
            if values["http.path"] not in opts.exclude_paths:
                opts.log_end(status, started, None)


# -- WSGI -----------------------------------------------------------------------------
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


class WSGIMiddleware:
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
    the module documentation says.

    The options are those of :class:`ASGIMiddleware`.
    """

    def __init__(
        self,
        app: Any,
        *,
        logger: str | logging.Logger = DEFAULT_LOGGER,
        request_headers: Sequence[str] = DEFAULT_REQUEST_HEADERS,
        response_header: str | None = DEFAULT_RESPONSE_HEADER,
        trusted_proxies: int = 0,
        exclude_paths: Iterable[str] = (),
    ) -> None:
        if not callable(app):
            raise ValueError(f"app: expected a WSGI application, got {app!r}")
        self.app: WSGIApp = app
        self._options = _Options(logger, request_headers, response_header, trusted_proxies, exclude_paths)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = _WSGIRequest(self, environ, start_response)
        return request.ctx.run(request.start)


class _WSGIRequest:
    """One WSGI request: its context, its status, and the wrapped response iterable."""

    def __init__(self, mw: WSGIMiddleware, environ: dict[str, Any], start_response: StartResponse) -> None:
        self.ctx = contextvars.copy_context()
        self.mw = mw
        self.opts = mw._options
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
            self.body = self.mw.app(environ, self.start_response)
        except BaseException:
            self.end(_exc_info())
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
            self.end(_exc_info())
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
            self.end(_exc_info())
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
