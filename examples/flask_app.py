"""A Flask service with logkafka: request context for every record, one record per request.

Run it on its own (Werkzeug's development server)::

    KAFKA_BOOTSTRAP_SERVERS=localhost:9092 python examples/flask_app.py --port 8000

or under gunicorn, whose configuration sets up logging for the workers::

    gunicorn -c examples/gunicorn.conf.py examples.flask_app:app

``logkafka.WSGIMiddleware`` wraps the WSGI app. Per request it binds
``correlation_id`` (from ``X-Correlation-ID`` / ``X-Request-ID`` / ``traceparent``,
else a new UUID), the method, path, user agent and client address, so every
record logged while handling the request carries them; it answers with the
``X-Correlation-ID`` header and logs one ``request_completed`` record (with
``http.status_code`` and ``duration_ms``), or ``request_failed`` with the stack
trace when a view raises.

Kafka is ``KAFKA_BOOTSTRAP_SERVERS``; the topics ``LOGKAFKA_TOPIC`` and
``LOGKAFKA_AUDIT_TOPIC``, or their defaults.
"""

from __future__ import annotations

import argparse
import logging
import logging.config
import uuid
from typing import Any

from flask import Flask, abort, jsonify, request

import logkafka

#: Used when the app runs on its own; under gunicorn, gunicorn.conf.py's logconfig_dict applies.
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "logkafka.JsonFormatter", "service_name": "inventory"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"},
        "kafka": {"class": "logkafka.KafkaLogHandler", "formatter": "json"},
    },
    # the middleware's request_completed records replace Werkzeug's access lines
    "loggers": {"werkzeug": {"level": "WARNING"}},
    "root": {"level": "INFO", "handlers": ["console", "kafka"]},
}

log = logging.getLogger("inventory.api")
flask_app = Flask("inventory")
STOCK: dict[str, int] = {"sku-1": 12, "sku-2": 0}


@flask_app.get("/health")
def health() -> Any:
    return {"status": "ok"}


@flask_app.get("/items/<sku>")
def get_item(sku: str) -> Any:
    if sku not in STOCK:
        log.warning("Unknown item %s", sku, extra={"code": "ITEM_NOT_FOUND", "sku": sku})
        abort(404)
    log.debug("Stock of %s read", sku, extra={"code": "STOCK_READ", "sku": sku})  # shown at DEBUG only
    log.info("Item %s looked up", sku, extra={"code": "ITEM_VIEWED", "sku": sku, "stock": STOCK[sku]})
    return {"sku": sku, "stock": STOCK[sku]}


@flask_app.post("/items/<sku>/reserve")
def reserve(sku: str) -> Any:
    quantity = int((request.get_json(silent=True) or {}).get("quantity", 1))
    with logkafka.timed("stock_reservation", logger=log, sku=sku, quantity=quantity):
        available = STOCK.get(sku, 0)
        if available < quantity:
            log.warning("Not enough stock for %s", sku, extra={"code": "STOCK_SHORT", "available": available})
            return jsonify(error="out of stock"), 409
        STOCK[sku] = available - quantity
        reservation = f"res-{uuid.uuid4().hex[:8]}"
    logkafka.audit("stock.reserve", actor=request.headers.get("X-User", "anonymous"), resource=f"item/{sku}",
                   outcome="success", diff={"old": {"stock": available}, "new": {"stock": STOCK[sku]}})
    return {"reservation": reservation}, 201


@flask_app.get("/boom")
def boom() -> Any:
    # Flask turns this into a 500 answer and logs it (with the stack trace) on the app's
    # logger "inventory": that record too carries the request's correlation id.
    raise RuntimeError("inventory database unavailable")


#: What a WSGI server serves: the Flask app inside the middleware.
app = logkafka.WSGIMiddleware(flask_app)


if __name__ == "__main__":
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    logging.config.dictConfig(LOGGING)
    run_simple(args.host, args.port, app, threaded=True)
