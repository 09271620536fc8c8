"""A FastAPI service with logkafka: request context for every record, one record per request.

Run it::

    KAFKA_BOOTSTRAP_SERVERS=localhost:9092 uvicorn examples.fastapi_app:app --port 8000
    # or
    KAFKA_BOOTSTRAP_SERVERS=localhost:9092 python -m examples.fastapi_app --port 8000

    curl -s -XPOST localhost:8000/orders -H 'X-Correlation-ID: demo-1' \\
         -H 'Content-Type: application/json' -d '{"sku": "sku-1", "quantity": 2}'

Logging is configured when the module is imported (so plain ``uvicorn`` picks it
up): JSON lines on stdout and the same records in Kafka (``KAFKA_BOOTSTRAP_SERVERS``;
topics ``LOGKAFKA_TOPIC`` and ``LOGKAFKA_AUDIT_TOPIC`` or their defaults).

``logkafka.ASGIMiddleware`` binds, per request, ``correlation_id`` (from
``X-Correlation-ID`` / ``X-Request-ID`` / ``traceparent``, else a new UUID), the
method, path, user agent and client address; answers with ``X-Correlation-ID``;
and logs one ``request_completed`` record (``http.status_code``, ``duration_ms``),
or ``request_failed`` with the stack trace when the app raises. Uvicorn's own
access log is turned down to warnings: those records replace it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.config
import uuid
from typing import Any

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel

import logkafka

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "logkafka.JsonFormatter", "service_name": "orders"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"},
        # bootstrap_servers and topics from KAFKA_BOOTSTRAP_SERVERS, LOGKAFKA_TOPIC, LOGKAFKA_AUDIT_TOPIC
        "kafka": {"class": "logkafka.KafkaLogHandler", "formatter": "json"},
    },
    "loggers": {
        "uvicorn": {"level": "INFO", "handlers": ["console", "kafka"], "propagate": False},
        "uvicorn.access": {"level": "WARNING"},
    },
    "root": {"level": "INFO", "handlers": ["console", "kafka"]},
}
logging.config.dictConfig(LOGGING)

log = logging.getLogger("orders.api")
api = FastAPI(title="orders")
# The middleware wraps the whole app (rather than api.add_middleware): so even the 500 page
# Starlette makes for an unhandled exception carries the X-Correlation-ID header.
app = logkafka.ASGIMiddleware(api)
ORDERS: dict[str, dict[str, Any]] = {}


class NewOrder(BaseModel):
    sku: str
    quantity: int = 1


@api.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@api.post("/orders", status_code=201)
async def place_order(order: NewOrder, x_user: str = Header("anonymous")) -> dict[str, Any]:
    order_id = f"ord-{uuid.uuid4().hex[:8]}"
    # order_id is bound for the block: on the started/completed records and on everything logged inside
    with logkafka.timed("order_placement", logger=log, order_id=order_id, sku=order.sku):
        log.info("Reserving %d of %s", order.quantity, order.sku,
                 extra={"code": "STOCK_RESERVING", "quantity": order.quantity})
        await asyncio.sleep(0.01)  # the stock service
        ORDERS[order_id] = {"id": order_id, "sku": order.sku, "quantity": order.quantity, "status": "placed"}
    logkafka.audit("order.create", actor=x_user, resource=f"order/{order_id}", outcome="success",
                   diff={"old": None, "new": ORDERS[order_id]})
    return ORDERS[order_id]


@api.get("/orders/{order_id}")
async def get_order(order_id: str) -> dict[str, Any]:
    if order_id not in ORDERS:
        log.warning("Order %s not found", order_id, extra={"code": "ORDER_NOT_FOUND", "order_id": order_id})
        raise HTTPException(status_code=404, detail="no such order")
    return ORDERS[order_id]


@api.get("/boom")
async def boom() -> None:
    raise RuntimeError("payment gateway unreachable")  # logged by the middleware as request_failed


if __name__ == "__main__":
    import uvicorn

    parser = argparse.ArgumentParser(description="the orders service")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_config=None)  # log_config=None: keep ours
