"""What the ASGI and WSGI middlewares share: the options, a request's context (correlation id, client
address), the end-of-request record, and the middleware's construction."""

from __future__ import annotations

import builtins
import ipaddress
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Generic, TypeVar

from logkafka._record import OWN_LOGGERS

DEFAULT_LOGGER = "http.requests"
DEFAULT_REQUEST_HEADERS = ("X-Correlation-ID", "X-Request-ID")
DEFAULT_RESPONSE_HEADER = "X-Correlation-ID"
MAX_ID_LENGTH = 128
_MAX_TEXT = 1024  # user agent and path are cut to this many characters

_SAFE_ID = re.compile(rf"[A-Za-z0-9\-_.:/+=@]{{1,{MAX_ID_LENGTH}}}")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an HTTP header name (RFC 9110 token)

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
App = TypeVar("App")


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


class Options:
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
        #: The response header as ASGI sends header names: lower case, bytes.
        self.echo_name = None if self.response_header is None else self.response_header.lower().encode("latin-1")
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


def exc_info_now() -> ExcInfo:
    """``sys.exc_info()`` of the exception being handled (there is one)."""
    etype, value, tb = sys.exc_info()
    assert etype is not None and value is not None
    return etype, value, tb


class Middleware(Generic[App]):
    """What both middlewares share: the application they wrap and the validated options."""

    _app_kind = "an application"  # how the error for an app that is not callable names it

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
            raise ValueError(f"app: expected {self._app_kind}, got {app!r}")
        self.app: App = app
        self._options = Options(logger, request_headers, response_header, trusted_proxies, exclude_paths)
