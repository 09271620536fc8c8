"""A Flask application wrapped in WSGIMiddleware, for gunicorn (``webapps.wsgi_app:app``).

Logging is configured at import, in the worker: a KafkaLogHandler on
``WEBAPP_KAFKA_SERVERS`` / ``WEBAPP_KAFKA_TOPIC`` for the request records and the
application's own records.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import flask

import logkafka

LOGGER = "webapp.wsgi"
log = logging.getLogger(LOGGER)


def _configure_logging() -> None:
    handler = logkafka.KafkaLogHandler(
        bootstrap_servers=os.environ["WEBAPP_KAFKA_SERVERS"], topic=os.environ["WEBAPP_KAFKA_TOPIC"],
    )
    for name in ("http.requests", LOGGER):
        lg = logging.getLogger(name)
        lg.setLevel(logging.INFO)
        lg.addHandler(handler)
        lg.propagate = False


class Gate:
    """Holds each request until ``size`` requests are inside the endpoint together."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.count = 0
        self.cond = threading.Condition()

    def wait(self, timeout: float) -> bool:
        with self.cond:
            self.count += 1
            self.cond.notify_all()
            return self.cond.wait_for(lambda: self.count >= self.size, timeout)


class Outer:
    """An outer WSGI layer that logs ``outer_saw_exception`` when an exception comes out of the middleware."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        try:
            return self.app(environ, start_response)
        except Exception as exc:
            log.error("outer_saw_exception", extra={"exception_type": type(exc).__name__})
            raise


flask_app = flask.Flask(__name__)
flask_app.config["PROPAGATE_EXCEPTIONS"] = True  # let exceptions reach the middleware and the server
_gates: dict[str, Gate] = {}
_gates_lock = threading.Lock()


def _gate(group: str, size: int) -> Gate:
    with _gates_lock:
        return _gates.setdefault(group, Gate(size))


@flask_app.get("/work")
def work() -> Any:
    n = int(flask.request.args.get("n", "0"))
    gate = _gate(flask.request.args.get("group", "default"), int(flask.request.args.get("gate", "1")))
    on_entry = logkafka.get_context()
    log.info("work_started", extra={"n": n})
    together = gate.wait(60.0)  # every request of the group is between its two records
    log.info("work_done", extra={"n": n, "together": together})
    logkafka.bind(stray=f"bound by request {n}")  # must not reach any other request
    return {"n": n, "together": together, "context": on_entry, "thread": threading.current_thread().name}


@flask_app.get("/stream")
def stream() -> Any:
    n = int(flask.request.args.get("n", "0"))
    gate = _gate(flask.request.args.get("group", "default"), int(flask.request.args.get("gate", "1")))

    def chunks() -> Iterator[bytes]:  # runs after the view returned, while the server sends the body
        for i in range(3):
            log.info("chunk", extra={"n": n, "chunk": i})
            if i == 1:
                gate.wait(60.0)
            yield f"chunk {i} of request {n}\n".encode()

    return flask.Response(chunks(), mimetype="text/plain")


@flask_app.get("/fail")
def fail() -> Any:
    log.info("about_to_fail")
    raise RuntimeError("boom in the view")


@flask_app.get("/stream-fail")
def stream_fail() -> Any:
    def chunks() -> Iterator[bytes]:
        yield b"first chunk\n"
        raise ValueError("broken while streaming")

    return flask.Response(chunks(), mimetype="text/plain")


@flask_app.get("/slow-stream")
def slow_stream() -> Any:
    def chunks() -> Iterator[bytes]:  # about 30 s unless the server closes it early
        sent = 0
        try:
            for i in range(600):
                yield f"chunk {i}\n".encode()
                sent += 1
                time.sleep(0.05)
        finally:
            log.info("slow_stream_closed", extra={"chunks_sent": sent})

    return flask.Response(chunks(), mimetype="text/plain")


@flask_app.get("/health")
def health() -> Any:
    log.info("health_checked")
    return "ok"


@flask_app.get("/ping")
def ping() -> Any:
    return "pong"


_configure_logging()
app = Outer(logkafka.WSGIMiddleware(flask_app, exclude_paths=["/health", "/ping"]))
