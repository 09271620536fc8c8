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

from logkafka._web.asgi import ASGIMiddleware
from logkafka._web.core import (
    DEFAULT_REQUEST_HEADERS,
    client_ip,
    correlation_id,
    is_cancellation,
    traceparent_trace_id,
)
from logkafka._web.wsgi import WSGIMiddleware

__all__ = [
    "DEFAULT_REQUEST_HEADERS",
    "ASGIMiddleware",
    "WSGIMiddleware",
    "client_ip",
    "correlation_id",
    "is_cancellation",
    "traceparent_trace_id",
]
