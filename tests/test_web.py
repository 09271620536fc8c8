"""ASGIMiddleware and WSGIMiddleware: request context, one record per request, over real HTTP.

The headline tests serve real applications on loopback (Starlette under uvicorn in a
thread of the test process, Flask under gunicorn in a subprocess), send concurrent
requests with ``http.client`` and read the records back from the broker.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from webapps import asgi_app

import logkafka
from logkafka import _web
from logkafka.testing import ConsumedMessage, free_port, read_topic

UA = "logkafka-tests/1.0"
N = 50  # concurrent requests in the headline tests
TESTS = Path(__file__).resolve().parent
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


# -- helpers ----------------------------------------------------------------------------
def http_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET ``path``: (status, headers with lowercase names, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("GET", path, headers={"User-Agent": UA, **(headers or {})})
        resp = conn.getresponse()
        try:
            body = resp.read()
        except http.client.IncompleteRead as exc:  # the app failed while streaming
            body = exc.partial
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def concurrently(fn: Callable[[int], Any], n: int) -> list[Any]:
    """``fn(0) .. fn(n-1)`` on ``n`` threads at once."""
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(fn, range(n)))


def attach(handler: logging.Handler, *names: str) -> None:
    for name in names:
        lg = logging.getLogger(name)
        lg.setLevel(logging.DEBUG)
        lg.propagate = False
        lg.addHandler(handler)


class Captured(logging.Handler):
    """Keeps every record it handles, with the context bound when it was logged."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.contexts: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.contexts.append(logkafka.get_context())


def records(msgs: list[ConsumedMessage]) -> list[dict[str, Any]]:
    return [m.data for m in msgs]


def by_message(recs: list[dict[str, Any]], message: str) -> list[dict[str, Any]]:
    return [r for r in recs if r["message"] == message]


def is_uuid4(text: str) -> bool:
    try:
        return uuid.UUID(text).version == 4 and str(uuid.UUID(text)) == text
    except ValueError:
        return False


def assert_completed(rec: dict[str, Any], cid: str, path: str, status: int = 200,
                     logger: str = "http.requests") -> None:
    """``rec`` is the request_completed record of a GET ``path`` answered ``status``, for ``cid``."""
    assert rec["message"] == "request_completed"
    assert rec["code"] == "REQUEST_COMPLETED"
    assert rec["logger"] == logger
    assert rec["level"] == ("ERROR" if status >= 500 else "INFO")
    assert rec["correlation_id"] == cid
    assert rec["http.method"] == "GET"
    assert rec["http.path"] == path
    assert rec["http.status_code"] == status
    assert rec["http.user_agent"] == UA
    assert rec["client.ip"] == "127.0.0.1"
    assert isinstance(rec["duration"], float) and rec["duration"] >= 0
    assert isinstance(rec["duration_ms"], float)
    assert abs(rec["duration_ms"] - rec["duration"] * 1000) < 1e-6


@contextmanager
def serve_asgi(app: Any, **options: Any) -> Iterator[int]:
    """Serve ``app`` with uvicorn (more ``uvicorn.Config`` options in ``options``) on a loopback port, in a thread."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                            lifespan="on", ws="none", http="h11", loop="asyncio", backlog=512, **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped before it started"
        assert time.monotonic() < deadline, "uvicorn did not start in 60 s"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(60)
        assert not thread.is_alive(), "uvicorn did not stop in 60 s"


@contextmanager
def serve_gunicorn(servers: str, topic: str) -> Iterator[int]:
    """Serve ``webapps.wsgi_app:app`` with gunicorn (gthread, one worker, 64 threads); yields the port."""
    port = free_port()
    env = {**os.environ, "WEBAPP_KAFKA_SERVERS": servers, "WEBAPP_KAFKA_TOPIC": topic}
    cmd = [sys.executable, "-m", "gunicorn", "--chdir", str(TESTS), "--bind", f"127.0.0.1:{port}",
           "--worker-class", "gthread", "--workers", "1", "--threads", "64", "--timeout", "120",
           "--graceful-timeout", "10", "--log-level", "warning", "webapps.wsgi_app:app"]
    output = tempfile.TemporaryFile()  # not a pipe: nobody reads it while the server runs

    def said() -> str:
        output.seek(0)
        return output.read().decode(errors="replace")[-4000:]

    proc = subprocess.Popen(cmd, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"gunicorn exited: {said()}"
            assert time.monotonic() < deadline, "gunicorn did not answer in 60 s"
            try:
                if http_get(port, "/ping")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
        output.close()


def check_concurrent_work(results: list[Any], recs: list[dict[str, Any]], sent: dict[int, str],
                          path: str = "/work") -> dict[int, str]:
    """The shared checks of the concurrency tests; returns each request's correlation id."""
    cids: dict[int, str] = {}
    for i, (status, headers, body) in results:
        assert status == 200, (i, status, body)
        cid = headers["x-correlation-id"]
        if i in sent:
            assert cid == sent[i]
        else:
            assert is_uuid4(cid), cid
        cids[i] = cid
    assert len(set(cids.values())) == len(results)  # every request has its own id

    completed = by_message(recs, "request_completed")
    assert sorted(r["correlation_id"] for r in completed) == sorted(cids.values())  # exactly one each
    for rec in completed:
        assert_completed(rec, rec["correlation_id"], path)
    assert_no_stray(recs, cids)
    return cids


def assert_no_stray(recs: list[dict[str, Any]], cids: dict[int, str]) -> None:
    """What a request bound late (``stray``) appears only on records of that same request."""
    for rec in recs:
        if "stray" in rec:
            n = int(rec["stray"].rsplit(" ", 1)[1])
            assert rec["correlation_id"] == cids[n]


# -- pure logic: ids, options ---------------------------------------------------------
class TestCorrelationId:
    """Choosing the correlation id from request headers."""

    def test_header_precedence(self) -> None:
        """X-Correlation-ID beats X-Request-ID, which beats traceparent, which beats a new UUID."""
        names = _web.DEFAULT_REQUEST_HEADERS
        everything = {"X-Correlation-ID": "cid-1", "X-Request-ID": "rid-1", "traceparent": TRACEPARENT}
        assert _web.correlation_id(everything.get, names) == "cid-1"
        assert _web.correlation_id({"X-Request-ID": "rid-1", "traceparent": TRACEPARENT}.get, names) == "rid-1"
        assert _web.correlation_id({"traceparent": TRACEPARENT}.get, names) == TRACE_ID
        assert is_uuid4(_web.correlation_id({}.get, names))

    def test_new_uuids_differ(self) -> None:
        """A request without an id gets a fresh UUID each time."""
        ids = {_web.correlation_id({}.get, ()) for _ in range(100)}
        assert len(ids) == 100

    @pytest.mark.parametrize("value", [
        "x" * 129, "has space", "line\r\nbreak", "quote\"", "<script>", "semi;colon", "ünïcode", "tab\there",
    ])
    def test_unsafe_ids_are_replaced(self, value: str) -> None:
        """An id longer than 128 characters or with characters outside [A-Za-z0-9-_.:/+=@] becomes a new UUID."""
        cid = _web.correlation_id({"X-Correlation-ID": value}.get, _web.DEFAULT_REQUEST_HEADERS)
        assert cid != value and is_uuid4(cid)

    @pytest.mark.parametrize("value", ["a" * 128, "req-1_2.3:4/5+6=7@host", "ABCdef0123", " padded "])
    def test_safe_ids_are_kept(self, value: str) -> None:
        """Ids of up to 128 safe characters are kept (surrounding spaces stripped)."""
        assert _web.correlation_id({"X-Request-ID": value}.get, _web.DEFAULT_REQUEST_HEADERS) == value.strip()

    @pytest.mark.parametrize("value", [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # trace id all zeros
        f"00-{TRACE_ID}-0000000000000000-01",  # parent id all zeros
        f"00-{TRACE_ID.upper()}-00f067aa0ba902b7-01",  # upper case
        f"ff-{TRACE_ID}-00f067aa0ba902b7-01",  # version ff
        f"00-{TRACE_ID}-00f067aa0ba902b7-01-extra",  # version 00 has nothing more
        f"00-{TRACE_ID[:-1]}-00f067aa0ba902b7-01",  # short trace id
        "garbage",
        "",
    ])
    def test_invalid_traceparent_is_ignored(self, value: str) -> None:
        """An invalid traceparent gives no trace id: the request gets a new UUID."""
        assert _web.traceparent_trace_id(value) is None
        assert is_uuid4(_web.correlation_id({"traceparent": value}.get, ()))

    def test_future_traceparent_version(self) -> None:
        """A later traceparent version may carry more fields; its trace id is still taken."""
        assert _web.traceparent_trace_id(f"01-{TRACE_ID}-00f067aa0ba902b7-01-more") == TRACE_ID

    def test_custom_request_headers(self) -> None:
        """``request_headers`` sets which headers are read and in which order."""
        get = {"X-Request-ID": "rid-1", "X-Amzn-Trace-Id": "Root=1-abc"}.get
        assert _web.correlation_id(get, ("X-Amzn-Trace-Id", "X-Request-ID")) == "Root=1-abc"


class TestClientIp:
    """client.ip with and without trusted proxies: an address the client wrote is never taken."""

    PEER = "10.1.2.3"  # the proxy next to the app, or the client itself

    @pytest.mark.parametrize(("forwarded", "proxies", "expected"), [
        ("203.0.113.7", 0, PEER),  # no proxies trusted: the header is ignored
        ("10.0.0.1, 203.0.113.7", 1, "203.0.113.7"),  # nginx appended the real client; 10.0.0.1 is forged
        ("10.0.0.1,203.0.113.7", 1, "203.0.113.7"),
        ("10.0.0.1, 203.0.113.7, 192.0.2.10", 2, "203.0.113.7"),  # ALB then nginx
        ("203.0.113.7", 2, PEER),  # fewer entries than proxies: the header was not written by them all
        ("", 1, PEER),
        (None, 1, PEER),
        ("10.0.0.1, unknown", 1, PEER),  # not an IP: never the forged entry to its left
        ("10.0.0.1, not-an-ip\nforged", 1, PEER),
        ("10.0.0.1, 203.0.113.7:51234", 1, "203.0.113.7"),
        ("10.0.0.1, [2001:db8::1]:443", 1, "2001:db8::1"),
        ("10.0.0.1, 2001:DB8::1", 1, "2001:db8::1"),
        (", 203.0.113.7", 1, "203.0.113.7"),  # an empty header the client sent, with the address appended
    ])
    def test_client_ip(self, forwarded: str | None, proxies: int, expected: str) -> None:
        """The Nth entry from the right when there is one and it is an IP address, else the peer."""
        assert _web.client_ip(self.PEER, forwarded, proxies) == expected

    def test_wsgi_forged_header(self) -> None:
        """WSGIMiddleware with trusted_proxies=1 logs the address the proxy appended, not the forged one."""
        seen: list[dict[str, Any]] = []

        def app(environ: Any, start_response: Any) -> Any:
            seen.append(logkafka.get_context())
            start_response("200 OK", [])
            return []

        for proxies in (0, 1):
            env = _environ(X_FORWARDED_FOR="10.0.0.1, 203.0.113.7")
            assert list(logkafka.WSGIMiddleware(app, trusted_proxies=proxies)(env, _StartResponse())) == []
        assert [c["client.ip"] for c in seen] == ["10.9.8.7", "203.0.113.7"]


_GROUPS: list[tuple[BaseException, bool]] = []
if sys.version_info >= (3, 11):
    _GROUPS = [
        (BaseExceptionGroup("g", [asyncio.CancelledError()]), True),  # noqa: F821 (3.11+)
        (BaseExceptionGroup("g", [asyncio.CancelledError(), ValueError()]), False),  # noqa: F821 (3.11+)
        (ExceptionGroup("g", [ValueError()]), False),  # noqa: F821 (3.11+)
    ]


class TestIsCancellation:
    """Which exceptions end a request as cancelled rather than failed."""

    @pytest.mark.parametrize(("exc", "cancelled"), [
        (asyncio.CancelledError(), True), (KeyboardInterrupt(), True), (SystemExit(1), True),
        (GeneratorExit(), True), (RuntimeError("x"), False), (OSError(32, "Broken pipe"), False), *_GROUPS,
    ])
    def test_is_cancellation(self, exc: BaseException, cancelled: bool) -> None:
        """BaseExceptions that are not Exceptions (and groups of only those) are cancellations."""
        assert _web.is_cancellation(exc) is cancelled


class TestOptions:
    """Bad middleware options fail at construction with a ValueError naming the option."""

    @pytest.mark.parametrize(("option", "value"), [
        ("logger", "logkafka.web"),
        ("logger", "confluent_kafka"),
        ("logger", ""),
        ("logger", 42),
        ("request_headers", "X-Correlation-ID"),
        ("request_headers", ["bad header"]),
        ("response_header", "X Bad"),
        ("response_header", ""),
        ("trusted_proxies", True),
        ("trusted_proxies", -1),
        ("trusted_proxies", "1"),
        ("trusted_proxies", 1.0),
        ("exclude_paths", "/health"),
        ("exclude_paths", ["health"]),
    ])
    @pytest.mark.parametrize("middleware", [logkafka.ASGIMiddleware, logkafka.WSGIMiddleware])
    def test_bad_option(self, middleware: Any, option: str, value: Any) -> None:
        """Each bad value raises ValueError naming its option."""
        with pytest.raises(ValueError, match=option):
            middleware(lambda *a: None, **{option: value})

    def test_logkafka_logger_object_rejected(self) -> None:
        """A Logger object whose records KafkaLogHandler would drop is rejected too."""
        with pytest.raises(ValueError, match="logger"):
            logkafka.ASGIMiddleware(lambda *a: None, logger=logging.getLogger("logkafka.requests"))

    def test_not_an_app(self) -> None:
        """Wrapping something that is not callable fails at once."""
        with pytest.raises(ValueError, match="app"):
            logkafka.WSGIMiddleware("not an app")

    def test_unknown_option(self) -> None:
        """A misspelt option name is an error, not silently ignored."""
        with pytest.raises(TypeError, match="exclude_path"):
            logkafka.ASGIMiddleware(lambda *a: None, exclude_path=["/health"])

    def test_good_options(self) -> None:
        """Valid options are accepted; a Logger object is used as given."""
        lg = logging.getLogger("custom.http")
        mw = logkafka.WSGIMiddleware(lambda *a: None, logger=lg, request_headers=["X-Request-ID"],
                                     response_header=None, trusted_proxies=2, exclude_paths={"/health"})
        assert mw._options.logger is lg
        assert mw._options.response_header is None
        assert mw._options.trusted_proxies == 2

    def test_trust_forwarded_is_gone(self) -> None:
        """The unreleased trust_forwarded (which took the client-controlled leftmost address) is not accepted."""
        with pytest.raises(TypeError, match="trust_forwarded"):
            logkafka.ASGIMiddleware(lambda *a: None, trust_forwarded=True)


# -- ASGI without a server: scopes, context, protocol -----------------------------------
def _http_scope(path: str = "/x", headers: list[tuple[bytes, bytes]] | None = None,
                client: tuple[str, int] | None = ("10.1.2.3", 5555)) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": path, "headers": headers or [], "client": client}


def _run_asgi(mw: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    """Run one request through ``mw``; returns the messages it sent."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    asyncio.run(mw(scope, receive, send))
    return sent


async def _ok_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


class TestASGIDirect:
    """ASGIMiddleware called with hand-made scopes (the HTTP tests below use uvicorn)."""

    @pytest.fixture
    def captured(self) -> Captured:
        handler = Captured()
        attach(handler, "http.requests", "app.direct")
        return handler

    def test_context_restored_exactly(self, captured: Captured) -> None:
        """After a request, the caller's context is exactly what it was, even when the app bound more."""
        seen: list[dict[str, Any]] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            seen.append(logkafka.get_context())
            logkafka.bind(leaked="yes")
            logkafka.unbind("before")
            await _ok_app(scope, receive, send)

        async def main() -> tuple[dict[str, Any], dict[str, Any]]:
            logkafka.bind(before="kept")
            mw = logkafka.ASGIMiddleware(app)
            await mw(_http_scope(headers=[(b"x-correlation-id", b"direct-1")]), _never, _discard)
            after_ok = logkafka.get_context()
            with pytest.raises(RuntimeError):
                await mw(_http_scope(), _never, _raising_send)
            return after_ok, logkafka.get_context()

        after_ok, after_failed = asyncio.run(main())
        assert after_ok == {"before": "kept"}
        assert after_failed == {"before": "kept"}
        assert seen[0] == {"before": "kept", "correlation_id": "direct-1", "http.method": "POST",
                           "http.path": "/x", "client.ip": "10.1.2.3"}

    def test_header_echoed_and_status_recorded(self, captured: Captured) -> None:
        """The correlation id is added to http.response.start; the status is read from it."""
        sent = _run_asgi(logkafka.ASGIMiddleware(_ok_app), _http_scope(headers=[(b"x-request-id", b"rid-7")]))
        assert (b"x-correlation-id", b"rid-7") in sent[0]["headers"]
        assert (b"content-type", b"text/plain") in sent[0]["headers"]
        [rec] = captured.records
        assert rec.getMessage() == "request_completed"
        assert rec.__dict__["http.status_code"] == 201 and rec.levelno == logging.INFO

    def test_app_header_kept(self, captured: Captured) -> None:
        """A response header of the same name set by the app is kept, not duplicated."""
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": [(b"X-Correlation-ID", b"mine")]})
            await send({"type": "http.response.body", "body": b""})

        sent = _run_asgi(logkafka.ASGIMiddleware(app), _http_scope())
        assert sent[0]["headers"] == [(b"X-Correlation-ID", b"mine")]

    @pytest.mark.parametrize("kind", ["http", "websocket"])
    @pytest.mark.parametrize("app_sets_it", [True, False])
    def test_one_shot_headers(self, captured: Captured, kind: str, app_sets_it: bool) -> None:
        """Headers given as a generator reach the server whole, with the app's or the echoed correlation id."""
        mine = [(b"x-correlation-id", b"mine")] if app_sets_it else []
        original: dict[str, Any] = {}

        async def app(scope: Any, receive: Any, send: Any) -> None:
            start = "http.response.start" if kind == "http" else "websocket.accept"
            original.update(type=start, status=200, headers=(h for h in [(b"content-type", b"text/plain"), *mine]))
            await send(original)
            if kind == "http":
                await send({"type": "http.response.body", "body": b""})

        scope = {**_http_scope(headers=[(b"x-correlation-id", b"echoed")]), "type": kind}
        sent = _run_asgi(logkafka.ASGIMiddleware(app), scope)
        assert sent[0]["headers"] == [(b"content-type", b"text/plain"), *(mine or [(b"x-correlation-id", b"echoed")])]
        assert sent[0]["type"] == original["type"] and sent[0]["status"] == 200

    def test_trusted_proxies(self, captured: Captured) -> None:
        """client.ip is the peer, or with trusted_proxies=N the Nth X-Forwarded-For entry from the right."""
        forged = [(b"x-forwarded-for", b"10.0.0.1, 203.0.113.7")]  # the client sent 10.0.0.1, nginx appended
        _run_asgi(logkafka.ASGIMiddleware(_ok_app), _http_scope(headers=forged))
        _run_asgi(logkafka.ASGIMiddleware(_ok_app, trusted_proxies=1), _http_scope(headers=forged))
        two_lines = [(b"x-forwarded-for", b"10.0.0.1"), (b"x-forwarded-for", b"203.0.113.8, 192.0.2.1")]
        _run_asgi(logkafka.ASGIMiddleware(_ok_app, trusted_proxies=2), _http_scope(headers=two_lines))
        _run_asgi(logkafka.ASGIMiddleware(_ok_app, trusted_proxies=1),
                  _http_scope(headers=[(b"x-forwarded-for", b"[2001:db8::1]:443")], client=None))
        ips = [c.get("client.ip") for c in captured.contexts]
        assert ips == ["10.1.2.3", "203.0.113.7", "203.0.113.8", "2001:db8::1"]

    def test_cancelled_task(self, captured: Captured) -> None:
        """A cancelled request task gives request_cancelled at WARNING with the status sent and no stack trace."""
        async def main() -> BaseException | None:
            started = asyncio.Event()

            async def app(scope: Any, receive: Any, send: Any) -> None:
                await send({"type": "http.response.start", "status": 202, "headers": []})
                started.set()
                await asyncio.Event().wait()

            mw = logkafka.ASGIMiddleware(app)
            task = asyncio.create_task(mw(_http_scope(headers=[(b"x-request-id", b"c-1")]), _never, _discard))
            await started.wait()
            task.cancel()
            try:
                await task
            except BaseException as exc:
                return exc
            return None

        assert isinstance(asyncio.run(main()), asyncio.CancelledError)  # raised again
        [rec] = captured.records
        assert rec.getMessage() == "request_cancelled" and rec.levelno == logging.WARNING
        assert rec.exc_info is None and rec.exc_text is None
        fields = rec.__dict__
        assert fields["code"] == "REQUEST_CANCELLED" and fields["cancelled_by"] == "CancelledError"
        assert fields["http.status_code"] == 202
        assert fields["duration_ms"] == pytest.approx(fields["duration"] * 1000)
        assert captured.contexts[0]["correlation_id"] == "c-1"

    @pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit, asyncio.CancelledError])
    def test_interrupted_before_response(self, captured: Captured, exc_type: type[BaseException]) -> None:
        """KeyboardInterrupt, SystemExit or CancelledError before any response: request_cancelled without a status."""
        async def app(scope: Any, receive: Any, send: Any) -> None:
            raise exc_type()

        async def main() -> BaseException | None:
            try:
                await logkafka.ASGIMiddleware(app)(_http_scope(), _never, _discard)
            except BaseException as exc:
                return exc
            return None

        assert type(asyncio.run(main())) is exc_type
        [rec] = captured.records
        assert rec.getMessage() == "request_cancelled" and rec.levelno == logging.WARNING and rec.exc_info is None
        assert rec.__dict__["cancelled_by"] == exc_type.__name__ and "http.status_code" not in rec.__dict__
        assert isinstance(rec.__dict__["duration"], float)

    def test_lifespan_untouched(self, captured: Captured) -> None:
        """lifespan (and any other non-HTTP scope) reaches the app as it came, with nothing bound or logged."""
        calls: list[tuple[Any, Any, Any, dict[str, Any]]] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            calls.append((scope, receive, send, logkafka.get_context()))

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
        asyncio.run(logkafka.ASGIMiddleware(app)(scope, _never, _discard))
        assert calls == [(scope, _never, _discard, {})]
        assert captured.records == []

    def test_websocket_bound_not_logged(self, captured: Captured) -> None:
        """A websocket connection has the context bound and the id echoed in accept, but no record."""
        seen: list[dict[str, Any]] = []
        sent: list[Any] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            seen.append(logkafka.get_context())
            await send({"type": "websocket.accept"})

        async def send(message: Any) -> None:
            sent.append(message)

        scope = {"type": "websocket", "path": "/ws", "headers": [(b"x-correlation-id", b"ws-1")], "client": None}
        asyncio.run(logkafka.ASGIMiddleware(app)(scope, _never, send))
        assert seen[0]["correlation_id"] == "ws-1" and seen[0]["http.path"] == "/ws"
        assert sent == [{"type": "websocket.accept", "headers": [(b"x-correlation-id", b"ws-1")]}]
        assert captured.records == []

    def test_no_response_started(self, captured: Captured) -> None:
        """An app that returns without a response is recorded as status 500, at ERROR."""
        async def app(scope: Any, receive: Any, send: Any) -> None:
            return None

        _run_asgi(logkafka.ASGIMiddleware(app), _http_scope())
        [rec] = captured.records
        assert rec.__dict__["http.status_code"] == 500 and rec.levelno == logging.ERROR

    def test_logging_failure_does_not_break_request(self, captured: Captured,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
        """A filter that raises on the request record is reported on stderr; the response is still sent."""
        def explode(record: logging.LogRecord) -> bool:
            raise RuntimeError("filter exploded")

        logging.getLogger("http.requests").addFilter(explode)
        try:
            sent = _run_asgi(logkafka.ASGIMiddleware(_ok_app), _http_scope())
        finally:
            logging.getLogger("http.requests").removeFilter(explode)
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
        assert "filter exploded" in capsys.readouterr().err


async def _never() -> dict[str, Any]:
    raise AssertionError("receive() not expected")


async def _discard(message: Any) -> None:
    return None


async def _raising_send(message: Any) -> None:
    raise RuntimeError("client went away")


# -- WSGI without a server: lazy bodies, close, exc_info ----------------------------------
class _StartResponse:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> Callable[[bytes], None]:
        self.calls.append(args)
        return lambda data: None


def _environ(path: str = "/w", **headers: str) -> dict[str, Any]:
    env: dict[str, Any] = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "REMOTE_ADDR": "10.9.8.7"}
    env.update({"HTTP_" + k.upper(): v for k, v in headers.items()})
    return env


class _Body:
    """A response iterable with close(), logging while it is iterated."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.closed_with: dict[str, Any] | None = None
        self.fail_at = fail_at

    def __iter__(self) -> Iterator[bytes]:
        for i in range(3):
            if i == self.fail_at:
                raise ValueError("body failed")
            logging.getLogger("app.direct").info("producing", extra={"chunk": i})
            yield b"x"

    def close(self) -> None:
        self.closed_with = logkafka.get_context()


class TestWSGIDirect:
    """WSGIMiddleware called with hand-made environs (the HTTP tests below use gunicorn)."""

    @pytest.fixture
    def captured(self) -> Captured:
        handler = Captured()
        attach(handler, "http.requests", "app.direct")
        return handler

    def test_lazy_body_carries_context_and_caller_untouched(self, captured: Captured) -> None:
        """Records of a lazily produced body carry the request context; the server thread's context never changes."""
        body = _Body()

        def app(environ: Any, start_response: Any) -> Any:
            logkafka.bind(bound_in_app="yes")
            start_response("200 OK", [("Content-Type", "text/plain")])
            return body

        logkafka.bind(server="thread")
        start = _StartResponse()
        result = logkafka.WSGIMiddleware(app)(_environ(X_CORRELATION_ID="w-1"), start)
        assert logkafka.get_context() == {"server": "thread"}  # after the call
        chunks = []
        for chunk in result:
            chunks.append(chunk)
            assert logkafka.get_context() == {"server": "thread"}  # between steps
        assert captured.records == [r for r in captured.records if r.getMessage() == "producing"]
        result.close()  # type: ignore[attr-defined]
        assert logkafka.get_context() == {"server": "thread"}
        assert chunks == [b"x", b"x", b"x"]
        assert body.closed_with is not None and body.closed_with["correlation_id"] == "w-1"
        assert [r.getMessage() for r in captured.records] == ["producing"] * 3 + ["request_completed"]
        for ctx in captured.contexts:
            assert ctx["correlation_id"] == "w-1" and ctx["bound_in_app"] == "yes" and ctx["server"] == "thread"
        assert start.calls[0][1][-1] == ("X-Correlation-ID", "w-1")

    def test_failure_in_body(self, captured: Captured) -> None:
        """An exception while iterating is logged once as request_failed and raised; close() still reaches the app."""
        body = _Body(fail_at=1)

        def app(environ: Any, start_response: Any) -> Any:
            start_response("200 OK", [])
            return body

        result = logkafka.WSGIMiddleware(app)(_environ(), _StartResponse())
        it = iter(result)
        assert next(it) == b"x"
        with pytest.raises(ValueError, match="body failed"):
            next(it)
        result.close()  # type: ignore[attr-defined]
        assert body.closed_with is not None
        msgs = [r.getMessage() for r in captured.records]
        assert msgs == ["producing", "request_failed"]
        failed = captured.records[1]
        assert failed.levelno == logging.ERROR and failed.__dict__["code"] == "REQUEST_FAILED"
        assert failed.exc_info is not None and failed.exc_info[0] is ValueError
        assert "body failed" in str(failed.exc_info[1])

    def test_failure_in_app_call(self, captured: Captured) -> None:
        """An exception from the app call itself is logged as request_failed with status 500, and raised."""
        def app(environ: Any, start_response: Any) -> Any:
            raise KeyError("no such thing")

        with pytest.raises(KeyError):
            logkafka.WSGIMiddleware(app)(_environ(), _StartResponse())
        [rec] = captured.records
        assert rec.getMessage() == "request_failed" and rec.__dict__["http.status_code"] == 500
        assert logkafka.get_context() == {}

    def test_exc_info_protocol(self, captured: Captured) -> None:
        """start_response's exc_info reaches the server, and the replacing status is the one recorded."""
        def app(environ: Any, start_response: Any) -> Any:
            start_response("200 OK", [])
            try:
                raise OSError("late failure")
            except OSError:
                start_response("503 Service Unavailable", [("Retry-After", "1")], sys.exc_info())
            return [b"sorry"]

        start = _StartResponse()
        result = logkafka.WSGIMiddleware(app)(_environ(), start)
        assert list(result) == [b"sorry"]
        result.close()  # type: ignore[attr-defined]
        assert len(start.calls[0]) == 2
        status, headers, exc_info = start.calls[1]
        assert status == "503 Service Unavailable" and exc_info[0] is OSError
        assert headers[0] == ("Retry-After", "1") and headers[1][0] == "X-Correlation-ID"
        [rec] = captured.records
        assert rec.__dict__["http.status_code"] == 503 and rec.levelno == logging.ERROR

    def test_close_failure(self, captured: Captured) -> None:
        """An exception from the app's close() is logged as request_failed and raised."""
        class Body(list[bytes]):
            def close(self) -> None:
                raise RuntimeError("close failed")

        def app(environ: Any, start_response: Any) -> Any:
            start_response("200 OK", [])
            return Body([b"a"])

        result = logkafka.WSGIMiddleware(app)(_environ(), _StartResponse())
        assert list(result) == [b"a"]
        with pytest.raises(RuntimeError, match="close failed"):
            result.close()  # type: ignore[attr-defined]
        assert [r.getMessage() for r in captured.records] == ["request_failed"]

    def test_early_close_is_cancelled(self, captured: Captured) -> None:
        """close() before the body's end (gunicorn, when the client went away) gives request_cancelled."""
        body = _Body()

        def app(environ: Any, start_response: Any) -> Any:
            start_response("200 OK", [("Content-Type", "text/plain")])
            return body

        result = logkafka.WSGIMiddleware(app)(_environ(X_CORRELATION_ID="gone-1"), _StartResponse())
        assert next(iter(result)) == b"x"
        result.close()  # type: ignore[attr-defined]
        assert body.closed_with is not None and body.closed_with["correlation_id"] == "gone-1"
        assert [r.getMessage() for r in captured.records] == ["producing", "request_cancelled"]
        rec = captured.records[1]
        assert rec.levelno == logging.WARNING and rec.exc_info is None
        assert rec.__dict__["code"] == "REQUEST_CANCELLED" and rec.__dict__["cancelled_by"] == "early_close"
        assert rec.__dict__["http.status_code"] == 200 and captured.contexts[1]["correlation_id"] == "gone-1"

    @pytest.mark.parametrize(("method", "headers", "read"), [
        ("HEAD", [], 0),  # a server may send no body for HEAD
        ("GET", [("Content-Length", "3")], 3),  # the declared length was produced
        ("GET", [], 4),  # read to its end
    ])
    def test_whole_body_is_completed(self, captured: Captured, method: str, headers: list[Any], read: int) -> None:
        """A HEAD request, a body whose Content-Length was produced, or one read to its end, is request_completed."""
        def app(environ: Any, start_response: Any) -> Any:
            start_response("200 OK", headers)
            return _Body()

        env = {**_environ(), "REQUEST_METHOD": method}
        result = logkafka.WSGIMiddleware(app)(env, _StartResponse())
        it = iter(result)
        for _ in range(read):
            next(it, None)
        result.close()  # type: ignore[attr-defined]
        assert captured.records[-1].getMessage() == "request_completed"
        assert captured.records[-1].__dict__["http.status_code"] == 200

    @pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
    def test_interrupted_app_call(self, captured: Captured, exc_type: type[BaseException]) -> None:
        """KeyboardInterrupt or SystemExit (a gunicorn worker timeout) in the app: request_cancelled, raised again."""
        def app(environ: Any, start_response: Any) -> Any:
            raise exc_type()

        with pytest.raises(exc_type):
            logkafka.WSGIMiddleware(app)(_environ(), _StartResponse())
        [rec] = captured.records
        assert rec.getMessage() == "request_cancelled" and rec.levelno == logging.WARNING and rec.exc_info is None
        assert rec.__dict__["cancelled_by"] == exc_type.__name__ and "http.status_code" not in rec.__dict__

    def test_excluded_path_bound_not_logged(self, captured: Captured) -> None:
        """An excluded path has its context bound but no request_completed record."""
        def app(environ: Any, start_response: Any) -> Any:
            logging.getLogger("app.direct").info("inside")
            start_response("200 OK", [])
            return [b"ok"]

        result = logkafka.WSGIMiddleware(app, exclude_paths=["/health"])(_environ("/health"), _StartResponse())
        list(result)
        result.close()  # type: ignore[attr-defined]
        [rec] = captured.records
        assert rec.getMessage() == "inside" and captured.contexts[0]["http.path"] == "/health"

    def test_utf8_path(self, captured: Captured) -> None:
        """A UTF-8 path, which WSGI passes as latin-1 text, is recorded as the characters it is."""
        def app(environ: Any, start_response: Any) -> Any:
            start_response("200 OK", [])
            return []

        raw = "/café".encode().decode("latin-1")
        result = logkafka.WSGIMiddleware(app)(_environ(raw), _StartResponse())
        assert list(result) == []
        result.close()  # type: ignore[attr-defined]
        assert captured.contexts[0]["http.path"] == "/café"


# -- ASGI over HTTP: Starlette under uvicorn ----------------------------------------------
class TestASGIOverHTTP:
    """A Starlette app in ASGIMiddleware, served by uvicorn, its records read from the topic."""

    def test_concurrent_requests(self, make_handler: Any, kafka_broker: Any, kafka_topic: str) -> None:
        """50 interleaved requests: one request_completed each, and every record carries its own request's id."""
        attach(make_handler(), "http.requests", asgi_app.LOGGER)
        run = uuid.uuid4().hex[:8]
        sent = {i: f"asgi-{run}-{i}" for i in range(0, N, 2)}  # odd requests send no id: a UUID is made

        app = asgi_app.make_app()
        with serve_asgi(app) as port:
            results = concurrently(lambda i: (i, http_get(
                port, f"/work?n={i}&gate={N}&group=all",
                {"X-Correlation-ID": sent[i]} if i in sent else {})), N)
        assert app.lifespan_seen == ["startup", "shutdown"]  # lifespan passed through
        logging.getLogger(asgi_app.LOGGER).info("after_requests")

        recs = records(read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=3 * N + 1, timeout=120))
        assert len(recs) == 3 * N + 1
        cids = check_concurrent_work(results, recs, sent)
        for i, (_, _, body) in results:
            data = json.loads(body)
            assert data["together"] is True  # all N requests were inside the endpoint at once
            assert data["context"] == {"correlation_id": cids[i], "http.method": "GET", "http.path": "/work",
                                       "http.user_agent": UA, "client.ip": "127.0.0.1"}
        for message in ("work_started", "work_done"):
            got = by_message(recs, message)
            assert sorted(r["n"] for r in got) == list(range(N))
            for rec in got:
                assert rec["correlation_id"] == cids[rec["n"]]
                assert rec["http.path"] == "/work" and rec["client.ip"] == "127.0.0.1"
        [after] = by_message(recs, "after_requests")
        assert not any(k == "correlation_id" or k.startswith(("http.", "client.")) for k in after)

    def test_header_precedence_and_unsafe_ids(self, make_handler: Any, kafka_broker: Any, kafka_topic: str) -> None:
        """Over HTTP: X-Correlation-ID > X-Request-ID > traceparent > new UUID; unsafe ids never echoed nor logged."""
        attach(make_handler(), "http.requests", asgi_app.LOGGER)
        long_id = "L" * 129
        cases: list[tuple[dict[str, str], str | None]] = [
            ({"X-Correlation-ID": "cid-a", "X-Request-ID": "rid-a", "traceparent": TRACEPARENT}, "cid-a"),
            ({"X-Request-ID": "rid-b", "traceparent": TRACEPARENT}, "rid-b"),
            ({"traceparent": TRACEPARENT}, TRACE_ID),
            ({"traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01"}, None),
            ({}, None),
            ({"X-Correlation-ID": long_id}, None),
            ({"X-Correlation-ID": "forged id\" level=CRITICAL"}, None),
            ({"X-Request-ID": "ok:id/with+safe=chars@x"}, "ok:id/with+safe=chars@x"),
            ({"X-Correlation-ID": "M" * 128}, "M" * 128),
        ]
        with serve_asgi(asgi_app.make_app()) as port:
            echoed = [http_get(port, f"/work?n={i}&group=p{i}", h)[1]["x-correlation-id"]
                      for i, (h, _) in enumerate(cases)]
        msgs = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=3 * len(cases), timeout=120)
        recs = records(msgs)
        completed = {r["n"]: r for r in by_message(recs, "work_started")}
        assert len(recs) == 3 * len(cases)
        for i, ((headers, expected), cid) in enumerate(zip(cases, echoed, strict=True)):
            if expected is None:
                assert is_uuid4(cid), (headers, cid)
            else:
                assert cid == expected
            assert completed[i]["correlation_id"] == cid
        assert sorted(r["correlation_id"] for r in by_message(recs, "request_completed")) == sorted(echoed)
        assert len(set(echoed)) == len(echoed)
        for m in msgs:  # the rejected values are nowhere in the topic
            assert long_id.encode() not in m.value and b"forged" not in m.value

    def test_failures_and_status(self, make_handler: Any, kafka_broker: Any, kafka_topic: str) -> None:
        """An app exception gives request_failed with its stack trace, re-raised out of the middleware; 5xx is ERROR."""
        attach(make_handler(), "http.requests", asgi_app.LOGGER)
        with serve_asgi(asgi_app.make_app()) as port:
            status, headers, _ = http_get(port, "/fail", {"X-Correlation-ID": "fail-1"})
            assert status == 500 and headers["x-correlation-id"] == "fail-1"
            status, headers, body = http_get(port, "/stream-fail", {"X-Correlation-ID": "sfail-1"})
            assert status == 200 and body.startswith(b"first chunk")
            assert http_get(port, "/status?code=503", {"X-Correlation-ID": "s503"})[0] == 503
            assert http_get(port, "/status?code=404", {"X-Correlation-ID": "s404"})[0] == 404
            status, _, body = http_get(port, "/stream", {"X-Correlation-ID": "stream-1"})
            assert status == 200 and body == b"chunk 0\nchunk 1\nchunk 2\n"
        # fail: about_to_fail, request_failed, outer; stream-fail: request_failed, outer; 503, 404; 3 chunks + completed
        recs = records(read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=11, timeout=120))
        assert Counter(r["message"] for r in recs) == {
            "about_to_fail": 1, "request_failed": 2, "outer_saw_exception": 2, "request_completed": 3, "chunk": 3}
        failed = {r["correlation_id"]: r for r in by_message(recs, "request_failed")}
        boom = failed["fail-1"]
        assert boom["level"] == "ERROR" and boom["code"] == "REQUEST_FAILED" and boom["http.status_code"] == 500
        assert boom["http.path"] == "/fail" and isinstance(boom["duration_ms"], float)
        assert boom["error"]["type"] == "RuntimeError" and boom["error"]["message"] == "boom in the endpoint"
        assert "Traceback" in boom["error"]["stack_trace"] and "in fail" in boom["error"]["stack_trace"]
        late = failed["sfail-1"]
        assert late["error"]["type"] == "ValueError" and "broken while streaming" in late["error"]["stack_trace"]
        assert late["http.status_code"] == 200  # the status the client had already received
        outer = by_message(recs, "outer_saw_exception")
        assert sorted(r["exception_type"] for r in outer) == ["RuntimeError", "ValueError"]  # re-raised
        assert all("correlation_id" not in r for r in outer)  # outside the middleware: context restored
        [before] = by_message(recs, "about_to_fail")
        assert before["correlation_id"] == "fail-1"
        completed = {r["correlation_id"]: r for r in by_message(recs, "request_completed")}
        assert_completed(completed["s503"], "s503", "/status", 503)
        assert_completed(completed["s404"], "s404", "/status", 404)
        assert_completed(completed["stream-1"], "stream-1", "/stream")
        assert sorted(r["chunk"] for r in by_message(recs, "chunk")) == [0, 1, 2]
        assert all(r["correlation_id"] == "stream-1" for r in by_message(recs, "chunk"))

    def test_exclude_paths_and_options(self, make_handler: Any, kafka_broker: Any, kafka_topic: str) -> None:
        """Excluded paths log no request record but keep their context; logger and response header are configurable."""
        attach(make_handler(), "edge.requests", asgi_app.LOGGER)
        app = asgi_app.make_app(exclude_paths=["/health"], response_header="X-Trace-Ref", logger="edge.requests")
        with serve_asgi(app) as port:
            status, headers, _ = http_get(port, "/health", {"X-Request-ID": "health-1"})
            assert status == 200 and headers["x-trace-ref"] == "health-1" and "x-correlation-id" not in headers
            status, headers, _ = http_get(port, "/work?n=1", {"X-Request-ID": "work-1"})
            assert status == 200 and headers["x-trace-ref"] == "work-1"
        recs = records(read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=4, timeout=120))
        assert sorted(r["message"] for r in recs) == ["health_checked", "request_completed", "work_done",
                                                      "work_started"]
        [health] = by_message(recs, "health_checked")
        assert health["correlation_id"] == "health-1" and health["http.path"] == "/health"
        [completed] = by_message(recs, "request_completed")
        assert_completed(completed, "work-1", "/work", logger="edge.requests")


    def test_cancelled_by_server_shutdown(self, make_handler: Any, kafka_broker: Any, kafka_topic: str) -> None:
        """Requests uvicorn cancels when its graceful shutdown times out: request_cancelled at WARNING, re-raised."""
        attach(make_handler(), "http.requests", asgi_app.LOGGER)
        inside, server_log = Captured(), Captured()
        attach(inside, asgi_app.LOGGER)
        attach(server_log, "uvicorn.error")
        conns = [http.client.HTTPConnection("127.0.0.1", 0, timeout=120) for _ in range(2)]
        try:
            with serve_asgi(asgi_app.make_app(), timeout_graceful_shutdown=1) as port:
                for conn in conns:
                    conn.port = port
                conns[0].request("GET", "/hang?stream=1", headers={"User-Agent": UA, "X-Correlation-ID": "hang-s"})
                resp = conns[0].getresponse()
                assert resp.status == 200 and resp.getheader("X-Correlation-ID") == "hang-s"
                assert resp.read(8) == b"started\n"
                conns[1].request("GET", "/hang", headers={"User-Agent": UA, "X-Correlation-ID": "hang-w"})
                deadline = time.monotonic() + 60
                while len(inside.records) < 2:
                    assert time.monotonic() < deadline, "the requests did not reach the endpoint in 60 s"
                    time.sleep(0.05)
        finally:
            for conn in conns:
                conn.close()
        recs = records(read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=4, timeout=120))
        assert Counter(r["message"] for r in recs) == {"hang_started": 2, "request_cancelled": 2}
        cancelled = {r["correlation_id"]: r for r in by_message(recs, "request_cancelled")}
        for rec in cancelled.values():
            assert rec["level"] == "WARNING" and rec["code"] == "REQUEST_CANCELLED"
            assert rec["cancelled_by"] == "CancelledError" and "error" not in rec
            assert rec["http.path"] == "/hang" and isinstance(rec["duration_ms"], float)
        assert cancelled["hang-s"]["http.status_code"] == 200  # the status the client had received
        assert "http.status_code" not in cancelled["hang-w"]  # no response had started
        raised = [r for r in server_log.records if r.exc_info and r.exc_info[0] is asyncio.CancelledError]
        assert len(raised) == 2  # the middleware raised the cancellation again, to uvicorn

    @pytest.mark.parametrize("outermost", [True, False])
    def test_fastapi_500_and_middleware_placement(self, outermost: bool) -> None:
        """FastAPI's 500 has X-Correlation-ID only if the middleware wraps the app; uvicorn's record has no context."""
        requests, server_log = Captured(), Captured()
        attach(requests, "http.requests", asgi_app.LOGGER)
        attach(server_log, "uvicorn.error")
        with serve_asgi(asgi_app.make_fastapi_app(outermost)) as port:
            status, headers, body = http_get(port, "/boom", {"X-Correlation-ID": "boom-1"})
        assert status == 500 and body == b"Internal Server Error"  # Starlette's ServerErrorMiddleware page
        if outermost:  # ASGIMiddleware(FastAPI()): the page is sent through the middleware
            assert headers["x-correlation-id"] == "boom-1"
        else:  # app.add_middleware(ASGIMiddleware): the page is sent from outside it
            assert "x-correlation-id" not in headers
        assert [r.getMessage() for r in requests.records] == ["about_to_fail", "request_failed"]
        failed = requests.records[1]
        assert failed.__dict__["http.status_code"] == 500 and failed.exc_info is not None
        assert failed.exc_info[0] is RuntimeError and requests.contexts[1]["correlation_id"] == "boom-1"
        [server] = [r for r in server_log.records if r.getMessage().startswith("Exception in ASGI application")]
        assert server.exc_info is not None and server.exc_info[0] is RuntimeError  # raised again, to uvicorn
        assert "correlation_id" not in server_log.contexts[server_log.records.index(server)]


# -- WSGI over HTTP: Flask under gunicorn -------------------------------------------------
class TestWSGIOverHTTP:
    """A Flask app in WSGIMiddleware, served by gunicorn (gthread), its records read from the topic."""

    def test_concurrent_requests_with_streaming(self, kafka_broker: Any, kafka_topic: str) -> None:
        """50 interleaved requests, half streamed: every record, also those logged while streaming, has its own id."""
        run = uuid.uuid4().hex[:8]
        sent = {i: f"wsgi-{run}-{i}" for i in range(0, N, 2)}

        def one(i: int) -> tuple[int, Any]:
            path = f"/work?n={i}&gate={N}&group=all" if i % 4 < 2 else f"/stream?n={i}&gate={N}&group=all"
            return i, http_get(port, path, {"X-Correlation-ID": sent[i]} if i in sent else {})

        with serve_gunicorn(kafka_broker.bootstrap_servers, kafka_topic) as port:
            first = concurrently(one, N)
            # a second wave on the same (reused) threads: what the first bound must not be there
            second = concurrently(lambda i: (i, http_get(port, f"/work?n={N + i}&group=second")), N // 2)
            n_work = sum(1 for i in range(N) if i % 4 < 2)
            n_stream = N - n_work
            expected = 3 * n_work + 4 * n_stream + 3 * len(second)
            msgs = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=expected, timeout=120)
        recs = records(msgs)
        assert len(recs) == expected

        cids: dict[int, str] = {}
        for i, (status, headers, body) in first:
            assert status == 200, (i, status, body)
            cids[i] = headers["x-correlation-id"]
            assert cids[i] == sent[i] if i in sent else is_uuid4(cids[i])
            if i % 4 < 2:
                data = json.loads(body)
                assert data["together"] is True  # all N requests were in the app at once
                assert data["context"] == {"correlation_id": cids[i], "http.method": "GET", "http.path": "/work",
                                           "http.user_agent": UA, "client.ip": "127.0.0.1"}
            else:
                assert body == b"".join(f"chunk {k} of request {i}\n".encode() for k in range(3))
        threads_first = {json.loads(b)["thread"] for i, (_, _, b) in first if i % 4 < 2}
        for i, (status, headers, body) in second:
            assert status == 200
            data = json.loads(body)
            cids[N + i] = headers["x-correlation-id"]
            assert data["context"] == {"correlation_id": cids[N + i], "http.method": "GET", "http.path": "/work",
                                       "http.user_agent": UA, "client.ip": "127.0.0.1"}  # no "stray"
        threads_second = {json.loads(b)["thread"] for _, (_, _, b) in second}
        assert threads_first & threads_second  # the check above ran on threads that served the first wave
        assert len(set(cids.values())) == len(cids)

        completed = by_message(recs, "request_completed")
        assert sorted(r["correlation_id"] for r in completed) == sorted(cids.values())
        for rec in completed:
            n = next(k for k, c in cids.items() if c == rec["correlation_id"])
            assert_completed(rec, cids[n], "/work" if n >= N or n % 4 < 2 else "/stream")
        for message in ("work_started", "work_done", "chunk"):
            for rec in by_message(recs, message):
                assert rec["correlation_id"] == cids[rec["n"]]
        assert_no_stray(recs, cids)
        chunks = Counter(r["n"] for r in by_message(recs, "chunk"))
        assert chunks == {i: 3 for i in range(N) if i % 4 >= 2}  # logged while gunicorn sent the body

    def test_failures_exclusions_and_precedence(self, kafka_broker: Any, kafka_topic: str) -> None:
        """request_failed with the stack trace and re-raised (500); excluded paths unlogged; header precedence."""
        with serve_gunicorn(kafka_broker.bootstrap_servers, kafka_topic) as port:
            status, headers, _ = http_get(port, "/fail", {"X-Correlation-ID": "wfail-1"})
            assert status == 500 and "x-correlation-id" not in headers  # the server's own 500 page
            status, _, body = http_get(port, "/stream-fail", {"X-Correlation-ID": "wsfail-1"})
            assert status == 200 and body.startswith(b"first chunk")
            status, headers, _ = http_get(port, "/health", {"X-Request-ID": "whealth-1"})
            assert status == 200 and headers["x-correlation-id"] == "whealth-1"
            h = http_get(port, "/work?n=1", {"X-Request-ID": "wrid-1", "traceparent": TRACEPARENT})[1]
            assert h["x-correlation-id"] == "wrid-1"
            h = http_get(port, "/work?n=2", {"traceparent": TRACEPARENT})[1]
            assert h["x-correlation-id"] == TRACE_ID
            h = http_get(port, "/work?n=3", {"X-Correlation-ID": "bad id!", "X-Request-ID": "rid"})[1]
            bad = h["x-correlation-id"]
            assert is_uuid4(bad)
            # fail: about_to_fail, request_failed, outer (3); stream-fail: request_failed (1); health_checked (1);
            # three /work requests: work_started, work_done, request_completed (9)
            msgs = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=14, timeout=120)
        recs = records(msgs)
        assert len(recs) == 14
        assert Counter(r["message"] for r in recs) == {
            "about_to_fail": 1, "request_failed": 2, "outer_saw_exception": 1, "health_checked": 1,
            "work_started": 3, "work_done": 3, "request_completed": 3}
        failed = {r["correlation_id"]: r for r in by_message(recs, "request_failed")}
        boom = failed["wfail-1"]
        assert boom["level"] == "ERROR" and boom["code"] == "REQUEST_FAILED" and boom["http.status_code"] == 500
        assert boom["error"]["type"] == "RuntimeError" and "boom in the view" in boom["error"]["stack_trace"]
        assert "in fail" in boom["error"]["stack_trace"]
        late = failed["wsfail-1"]
        assert late["error"]["type"] == "ValueError" and late["http.path"] == "/stream-fail"
        [outer] = by_message(recs, "outer_saw_exception")  # re-raised by the call; the body fails later
        assert outer["exception_type"] == "RuntimeError" and "correlation_id" not in outer
        [health] = by_message(recs, "health_checked")
        assert health["correlation_id"] == "whealth-1"
        assert sorted(r["correlation_id"] for r in by_message(recs, "request_completed")) == sorted(
            ["wrid-1", TRACE_ID, bad])
        assert all(b"bad id!" not in m.value for m in msgs)

    def test_client_disconnect_while_streaming(self, kafka_broker: Any, kafka_topic: str) -> None:
        """A client gone mid-stream: gunicorn's write fails, it closes the body early: request_cancelled, status 200."""
        with serve_gunicorn(kafka_broker.bootstrap_servers, kafka_topic) as port:
            sock = socket.create_connection(("127.0.0.1", port), timeout=120)
            try:
                sock.sendall(b"GET /slow-stream HTTP/1.1\r\nHost: test\r\nX-Correlation-ID: gone-1\r\n"
                             b"User-Agent: " + UA.encode() + b"\r\n\r\n")
                got = b""
                while b"chunk 0" not in got:
                    data = sock.recv(4096)
                    assert data, "gunicorn closed the connection before the first chunk"
                    got += data
                assert got.startswith(b"HTTP/1.1 200") and b"x-correlation-id: gone-1" in got.lower()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, at once
            finally:
                sock.close()
            recs = records(read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=2, timeout=120))
        assert sorted(r["message"] for r in recs) == ["request_cancelled", "slow_stream_closed"]
        [closed] = by_message(recs, "slow_stream_closed")
        assert closed["correlation_id"] == "gone-1" and closed["chunks_sent"] < 600  # closed early, in context
        [rec] = by_message(recs, "request_cancelled")
        assert rec["level"] == "WARNING" and rec["code"] == "REQUEST_CANCELLED" and rec["cancelled_by"] == "early_close"
        assert rec["http.status_code"] == 200 and rec["http.path"] == "/slow-stream" and "error" not in rec
        assert rec["correlation_id"] == "gone-1" and isinstance(rec["duration_ms"], float)
