"""The viewer's web app (Starlette): the page, its API, and what keeps it safe.

Routes: ``/`` the page; ``/static/...`` its script and style; ``/api/records`` the newest records a
query selects; ``/api/stream`` the same, live (server-sent events), with Kafka's state and the rates;
``/api/history`` a time range read from Kafka, a page at a time; ``/api/request`` one request's records
across the three streams; ``/api/export`` what the page shows, as NDJSON (unless turned off);
``/api/status``. Every query parameter is named as the field it filters on (see ``entries.Query``).

Safety: everything the page shows is text (the script never writes HTML from a record), and the
Content-Security-Policy forbids inline script; with a token, every request must carry it (a bearer
header, the cookie the first ``?token=`` load sets, or ``?token=``); without one, only requests
naming this machine (``Host: 127.0.0.1``, ``localhost``) are served, so a web page elsewhere cannot
reach the viewer through DNS rebinding. Nothing here writes to Kafka.
"""

from __future__ import annotations

import asyncio
import datetime
import hmac
import json
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import anyio.to_thread
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from logkafka._ui.entries import Entry, Query
from logkafka._ui.history import HistoryError, RangeReader
from logkafka._ui.store import Store

COOKIE = "logkafka_ui"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY", "Cross-Origin-Opener-Policy": "same-origin",
            "Cross-Origin-Resource-Policy": "same-origin"}
_STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8",
           "index.html": "text/html; charset=utf-8"}
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
_TICK = 0.25  # seconds between the live stream's looks at the store
REQUEST_WINDOW_MS = 15 * 60 * 1000  # a request's records are looked for this long before and after a record of it


def _static(name: str) -> bytes:
    return resources.files("logkafka._ui").joinpath("static").joinpath(name).read_bytes()


def _ms(text: str | None, name: str) -> int | None:
    """Epoch milliseconds from a parameter: milliseconds, or an ISO 8601 date or time (UTC unless it says)."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        stamp = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name}: expected an ISO 8601 time (2026-12-06T10:00:00Z) or epoch milliseconds, "
                         f"got {text!r}") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    return int(stamp.timestamp() * 1000)


def _limit(request: Request, default: int, most: int) -> int:
    text = request.query_params.get("limit", "")
    if not text:
        return default
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise ValueError(f"limit: expected a number from 1 to {most}, got {text!r}")
    return int(text)


def _entries_json(entries: list[Entry]) -> bytes:
    return b"[" + b",".join(e.json for e in entries) + b"]"


class Viewer:
    """The app's state: the store, the reader of ranges, the settings; its handlers are the routes."""

    def __init__(self, store: Store, ranges: RangeReader, *, token: str | None, page: int = 500,
                 export: bool = True, loopback_only: bool = True) -> None:
        self.store = store
        self.ranges = ranges
        self.token = token
        self.page = page
        self.export = export
        self.loopback_only = loopback_only and token is None

    # -- the page ----------------------------------------------------------------------------
    async def index(self, request: Request) -> Response:
        return Response(_static("index.html"), media_type=_STATIC["index.html"], headers={"Cache-Control": "no-store"})

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC or name == "index.html":
            return PlainTextResponse("not found", status_code=404)
        return Response(_static(name), media_type=_STATIC[name], headers={"Cache-Control": "no-cache"})

    # -- the API --------------------------------------------------------------------------------
    async def status(self, request: Request) -> Response:
        return JSONResponse({**self.store.kafka.to_json(), "store": self.store.sizes(), "export": self.export,
                             "page": self.page})

    async def records(self, request: Request) -> Response:
        query = Query.of(request.query_params)
        limit = _limit(request, self.page, 5000)
        latest = self.store.latest
        found = self.store.recent(query, limit)
        body = b'{"latest":%d,"kafka":%s,"records":%s}' % (
            latest, json.dumps(self.store.kafka.to_json()).encode(), _entries_json(found))
        return Response(body, media_type="application/json")

    async def stream(self, request: Request) -> Response:
        query = Query.of(request.query_params)
        since = request.query_params.get("since", "")
        start = int(since) if since.isdigit() else self.store.latest
        return StreamingResponse(self._events(request, query, start), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def _events(self, request: Request, query: Query, last: int) -> AsyncIterator[bytes]:
        """Server-sent events: ``records`` (a JSON array, newest last; a burst comes over several events),
        ``skipped`` (how many records the buffer let go before this page got them), ``status`` when Kafka's
        state changes, ``rates`` every second."""
        yield b"retry: 2000\n\n"
        said: str | None = None
        tick = 0
        while True:
            new = self.store.newer(last, query)
            if new.lost:  # the page fell behind the buffer: it says so
                yield b"event: skipped\ndata: " + json.dumps({"records": new.lost}).encode() + b"\n\n"
            if new.entries:
                yield b"event: records\ndata: " + _entries_json(new.entries) + b"\n\n"
            last = new.upto
            status = json.dumps(self.store.kafka.to_json())
            if status != said:
                said = status
                yield b"event: status\ndata: " + status.encode() + b"\n\n"
            if tick % 4 == 0:
                yield b"event: rates\ndata: " + json.dumps(self.store.rates()).encode() + b"\n\n"
            tick += 1
            if await request.is_disconnected():
                return
            await asyncio.sleep(_TICK)

    async def history(self, request: Request) -> Response:
        params = request.query_params
        query = Query.of(params)
        limit = _limit(request, self.page, 5000)
        cursor = params.get("cursor") or None
        from_ms = _ms(params.get("from"), "from")
        to_ms = _ms(params.get("to"), "to")
        if cursor is None and from_ms is None:
            raise ValueError("from: give the start of the range (an ISO 8601 time or epoch milliseconds)")
        from_ms = from_ms or 0
        to_ms = to_ms if to_ms is not None else 2**62
        if to_ms < from_ms:
            raise ValueError("to: the range ends before it starts")
        page = await anyio.to_thread.run_sync(self.ranges.page, query, from_ms, to_ms, limit, cursor)
        body = b'{"cursor":%s,"scanned":%d,"stopped":%s,"records":%s}' % (
            json.dumps(page.cursor).encode(), page.scanned, json.dumps(page.stopped).encode(),
            _entries_json(page.entries))
        return Response(body, media_type="application/json")

    async def request_view(self, request: Request) -> Response:
        """One request across the three streams: its records in time order, from the store and from Kafka
        around a record of it (``around``, epoch ms), whatever other filters the page has."""
        params = request.query_params
        cid, tid = params.get("correlation_id") or None, params.get("trace_id") or None
        if not cid and not tid:
            raise ValueError("correlation_id: give a correlation_id or a trace_id")
        query = Query(correlation_id=cid, trace_id=tid)
        latest = self.store.latest
        found = {e.id: e for e in self.store.recent(query, 5000)}
        around = _ms(params.get("around"), "around")
        stamps = [e.ts_ms for e in found.values()] + ([around] if around else [])
        searched = False
        if stamps:
            try:
                page = await anyio.to_thread.run_sync(self.ranges.page, query, min(stamps) - REQUEST_WINDOW_MS,
                                                      max(stamps) + REQUEST_WINDOW_MS, 5000, None)
                found.update({e.id: e for e in page.entries})
                searched = True
            except HistoryError:
                pass  # the store's records still show
        records = sorted(found.values(), key=lambda e: (e.ts_ms, e.id))
        body = b'{"latest":%d,"from_kafka":%s,"records":%s}' % (latest, b"true" if searched else b"false",
                                                               _entries_json(records))
        return Response(body, media_type="application/json")

    async def export_view(self, request: Request) -> Response:
        if not self.export:
            return JSONResponse({"error": "export is turned off (logkafka ui --no-export)"}, status_code=403)
        query = Query.of(request.query_params)
        found = self.store.recent(query, _limit(request, 10_000, 100_000))
        lines = b"".join(e.json + b"\n" for e in found)
        return Response(lines, media_type="application/x-ndjson",
                        headers={"Content-Disposition": 'attachment; filename="logkafka-records.ndjson"'})

    # -- around every request --------------------------------------------------------------------
    def check(self, scope: Scope) -> Response | None:
        """A response refusing the request (no token, or a Host that is not this machine), or moving a
        ``?token=`` into a cookie; None when the request may go on."""
        request = Request(scope)
        if self.token is None:
            if self.loopback_only and _host(request.headers.get("host", "")) not in _LOOPBACK_HOSTS:
                return PlainTextResponse("this viewer answers requests for 127.0.0.1 or localhost only",
                                         status_code=403)
            return None
        given = request.headers.get("authorization", "")
        offered = [given[7:] if given.lower().startswith("bearer ") else "", request.cookies.get(COOKIE, ""),
                   request.query_params.get("token", "")]
        if not any(t and hmac.compare_digest(t.encode(), self.token.encode()) for t in offered):
            return PlainTextResponse("a token is needed: open the address logkafka ui printed (it holds "
                                     "?token=...), or send Authorization: Bearer <token>", status_code=401)
        if request.query_params.get("token") is not None and request.method == "GET":
            # the token moves to a cookie: the address shown, and shared in a ticket, no longer holds it
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            response = RedirectResponse(request.url.path + ("?" + urlencode(rest) if rest else ""), status_code=303)
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict", path="/")
            return response
        return None


def _host(header: str) -> str:
    """The host of a Host header, without its port (``[::1]:8765`` gives ``[::1]``)."""
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0]


class Guard:
    """ASGI middleware: :meth:`Viewer.check` before every request, the security headers on every response."""

    def __init__(self, app: ASGIApp, viewer: Viewer) -> None:
        self._app = app
        self._viewer = viewer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        refused = self._viewer.check(scope)
        if refused is not None:
            await refused(scope, receive, with_headers)
            return
        await self._app(scope, receive, with_headers)


async def _bad_request(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=400)


def make_app(viewer: Viewer) -> Starlette:
    """The Starlette app serving ``viewer``."""
    return Starlette(
        routes=[
            Route("/", viewer.index),
            Route("/static/{name}", viewer.static),
            Route("/api/status", viewer.status),
            Route("/api/records", viewer.records),
            Route("/api/stream", viewer.stream),
            Route("/api/history", viewer.history),
            Route("/api/request", viewer.request_view),
            Route("/api/export", viewer.export_view),
        ],
        middleware=[Middleware(Guard, viewer=viewer)],
        exception_handlers={ValueError: _bad_request, HistoryError: _bad_request},
    )


def describe(entries: list[Entry]) -> list[dict[str, Any]]:
    """The entries as the page gets them (for tests and the export)."""
    return [json.loads(e.json) for e in entries]
