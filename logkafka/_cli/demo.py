"""``logkafka demo``: log a few application, audit and security records through ``dictConfig`` (a file and
Kafka, one formatter) and show them back from Kafka."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import logging.config
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import logkafka
from logkafka._cli.broker import create_log_topics, start_broker
from logkafka._cli.common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    CliError,
    Interrupts,
    add_namespace,
    cause_chain,
    stream_topic_names,
    warner,
)
from logkafka._cli.connection import connection_option, given_servers, producer_config
from logkafka._cli.reader import consumer_settings, read, wait_for_cluster
from logkafka._cli.records import Filters, LogLine, parse, text_of
from logkafka._cli.render import add_colour, render, use_colour
from logkafka._cli.ui import DEFAULT_PORT, is_loopback, serve

#: What :func:`_demo_service` logs: five application records, one audit, one security.
_DEMO_RECORDS = 7


def _demo_logging(servers: str, producer: Mapping[str, Any], topics: Sequence[str], log_file: str) -> None:
    """The whole integration: one formatter, two destinations, in the application's dictConfig."""
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "logkafka.JsonFormatter", "service_name": "checkout",
                                "environment": "demo", "version": "1.4.2"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": log_file, "formatter": "json"},
            "kafka": {
                "class": "logkafka.KafkaLogHandler",
                "formatter": "json",
                "bootstrap_servers": servers,
                "producer_config": dict(producer),
                "topic": topics[0],
                "audit_topic": topics[1],
                "security_topic": topics[2],
            },
        },
        "root": {"level": "INFO", "handlers": ["file", "kafka"]},
    })


def _demo_service(run_id: str) -> bool:
    """What an application does: ordinary logging calls, an audit and a security record. Whether it traced."""
    tracer = _tracer()
    log = logging.getLogger("checkout.orders")
    logkafka.bind(run_id=run_id, tenant_id="acme")
    try:
        log.info("Service started", extra={"code": "SERVICE_STARTED"})
        with logkafka.bound(correlation_id=str(uuid.uuid4()), user_id="u-42"):
            with tracer.start_as_current_span("place_order") if tracer is not None else contextlib.nullcontext():
                log.info("Order %s placed", "o-1001", extra={"code": "ORDER_PLACED", "amount": 99.5, "items": 3})
                coupons: dict[str, float] = {}
                try:
                    coupons["SPRING"]
                except KeyError:
                    log.exception("Coupon lookup failed", extra={"code": "COUPON_LOOKUP_FAILED"})
                logkafka.audit("order.refund", "u-42", "order:o-1001", "success",
                               diff={"old": {"status": "placed"}, "new": {"status": "refunded"}})
            logkafka.security("authorization", "u-42", "admin:/reports", "deny")
            log.warning("Payment slow", extra={"code": "PAYMENT_SLOW", "duration_ms": 1234})
        log.info("Service stopping", extra={"code": "SERVICE_STOPPING"})
    finally:
        logkafka.clear_context()
    return tracer is not None


def _tracer() -> Any:
    """An OpenTelemetry tracer of the SDK, or None when ``opentelemetry-sdk`` is not installed."""
    try:
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:  # pragma: no cover - the sdk is an optional extra
        return None
    return TracerProvider().get_tracer("checkout")


def run_demo(args: argparse.Namespace) -> int:
    """``logkafka demo``."""
    if args.ui and not is_loopback(args.host):
        raise CliError(f"--host {args.host}: the demo's viewer serves this machine only (127.0.0.1); for another "
                       "address run logkafka ui with --token", EXIT_USAGE)
    servers = given_servers(args)
    broker = None
    if not servers:
        broker = start_broker(None)
        servers = broker.bootstrap_servers
        print(f"started the embedded local broker at {servers}")
    try:
        return _demo(args, servers, own_broker=broker is not None)
    finally:
        if broker is not None:
            broker.stop()


def _demo(args: argparse.Namespace, servers: str, *, own_broker: bool) -> int:
    """Log the demo's records, read them back and show them; 0 when both the file and Kafka hold them all."""
    consumer = consumer_settings(args, servers)
    wait_for_cluster(consumer)
    topics = stream_topic_names(args)
    create_log_topics(args, servers, list(dict.fromkeys(topics)))
    # the handler's producer: --producer-config, else --consumer-config's connection (TLS, SASL) settings
    producer = {k: v for k, v in producer_config(args, servers).items() if k != "bootstrap.servers"}
    log_file = os.path.join(tempfile.mkdtemp(prefix="logkafka-demo-"), "app.log")
    run_id = uuid.uuid4().hex[:8]
    print(f"logging as service 'checkout' (run {run_id}) to {log_file} "
          f"and to Kafka topics {', '.join(dict.fromkeys(topics))}")

    try:
        _demo_logging(servers, producer, topics, log_file)
    except ValueError as exc:  # a setting the handler refuses (a producer setting librdkafka does not take)
        source = connection_option(args)
        raise CliError(f"the demo's KafkaLogHandler refused the settings{f' of {source}' if source else ''}: "
                       f"{cause_chain(exc)}", EXIT_USAGE) from None
    traced = _demo_service(run_id)
    logging.shutdown()  # what interpreter exit does anyway: deliver everything queued

    with open(log_file, encoding="utf-8") as f:
        lines = [ln for ln in f.read().splitlines() if _run_of(ln) == run_id]
    found = _read_back(consumer, topics, run_id, expected=len(lines))
    same = {ln.encode("utf-8") for ln in lines} == set(found)
    _show(args, list(found.values()), topics)
    print(f"\n{log_file} holds {len(lines)} lines of this run; the Kafka messages are "
          f"{'byte for byte the same' if same else 'NOT the same'} ({len(found)} of {len(lines)} arrived)")
    if not traced:
        print("(opentelemetry-sdk is not installed: no trace ids)")
    if own_broker and not args.ui:
        print("the embedded broker stops now; `logkafka broker` runs one that stays "
              "(then `logkafka demo` and `logkafka tail --from-beginning` against it)")
    elif not args.ui:
        print(f"read them again: logkafka tail -b {servers} --from-beginning")
    ok = same and len(lines) == _DEMO_RECORDS and len(found) == len(lines)
    if not ok:
        print(f"logkafka demo: expected {_DEMO_RECORDS} records in both the file and Kafka", file=sys.stderr)
        return EXIT_FAILURE
    if args.ui:
        _view(args, servers, consumer, topics, producer, log_file)
    return 0


def _view(args: argparse.Namespace, servers: str, consumer: dict[str, Any], topics: Sequence[str],
          producer: Mapping[str, Any], log_file: str) -> None:
    """``--ui``: the viewer on the demo's topics, while the service goes on logging an order now and then."""
    _demo_logging(servers, producer, topics, log_file)
    stop = threading.Event()
    traffic = threading.Thread(target=_traffic, args=(stop,), name="logkafka-demo-traffic", daemon=True)
    streams = {topics[0]: "application", topics[1]: "audit", topics[2]: "security"}
    print("\nthe viewer shows the demo's records, and an order the service logs every few seconds; Ctrl-C stops")
    traffic.start()
    try:
        serve(consumer, streams, host=args.host, port=args.port, token=None, backfill=500, buffer=10_000,
              export=True, announce=lambda url: print(f"logkafka demo: open {url}", flush=True))
    finally:
        stop.set()
        traffic.join(5)
        logging.shutdown()


def _traffic(stop: threading.Event) -> None:
    """What the demo's service keeps doing while the viewer is open: orders, now and then a slow or failed one."""
    log = logging.getLogger("checkout.orders")
    n = 1001
    while not stop.wait(3.0):
        n += 1
        with logkafka.bound(correlation_id=str(uuid.uuid4()), user_id=f"u-{40 + n % 7}", tenant_id="acme"):
            log.info("Order o-%d placed", n, extra={"code": "ORDER_PLACED", "amount": 10.0 + n % 90})
            if n % 5 == 0:
                log.warning("Payment provider slow for o-%d", n, extra={"code": "PAYMENT_SLOW", "duration_ms": 2400})
            if n % 7 == 0:
                log.error("Payment declined for o-%d", n, extra={"code": "PAYMENT_DECLINED"})
                logkafka.audit("order.cancel", f"u-{40 + n % 7}", f"order:o-{n}", "failure")


def _read_back(consumer_config: Mapping[str, Any], topics: Sequence[str], run_id: str,
               expected: int) -> dict[bytes, LogLine]:
    """The records of this run in Kafka, by value: until ``expected`` came, 30 s passed or Ctrl-C."""
    found: dict[bytes, LogLine] = {}
    deadline = time.monotonic() + 30
    wanted = Filters(members={"run_id": run_id})
    with Interrupts() as stop:
        for m in read(consumer_config, list(dict.fromkeys(topics)), from_beginning=True, follow=True,
                      stopping=lambda: stop.is_set() or len(found) >= expected or time.monotonic() > deadline,
                      warn=warner("demo")):
            line = parse(m.topic, m.partition, m.offset, m.value)
            if wanted(line):
                found.setdefault(line.value, line)
    return found


def _show(args: argparse.Namespace, found: list[LogLine], topics: Sequence[str]) -> None:
    """The records read back, in time order, and one of them in full."""
    shown = sorted(found, key=lambda ln: (ln.time or "", text_of(ln.member("event_id")) or ""))
    per_topic = {t: sum(1 for ln in shown if ln.topic == t) for t in dict.fromkeys(topics)}
    colour = use_colour(args.color, sys.stdout)
    print(f"\n{len(shown)} records of this run read back from Kafka "
          f"({', '.join(f'{t}: {n}' for t, n in per_topic.items())}):\n")
    for ln in shown:
        print("  " + render(ln, colour))
    placed = next((ln for ln in shown if ln.code == "ORDER_PLACED"), None)
    if placed is not None:
        print(f"\none of them in full ({placed.topic}, partition {placed.partition}, offset {placed.offset}):\n")
        print("  " + placed.value.decode("utf-8", "replace"))


def _run_of(line: str) -> str | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data.get("run_id") if isinstance(data, dict) else None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add ``demo`` to ``sub``."""
    demo = sub.add_parser(
        "demo", parents=[common], help="log a few records to Kafka and show them back",
        description="""Configure logging with dictConfig (one JsonFormatter on a file handler and a
            KafkaLogHandler), run a small service that logs application records with context, an OpenTelemetry span
            and an exception, an audit and a security record; then read this run's records back from Kafka. Starts
            the embedded local broker when no cluster is given (-b or $KAFKA_BOOTSTRAP_SERVERS). Reading uses
            --consumer-config; creating the topics and the handler's producer use --producer-config, else the
            connection settings of --consumer-config.""",
    )
    add_namespace(demo)
    add_colour(demo)
    demo.add_argument("--ui", action="store_true",
                      help="then leave the web viewer (logkafka ui) open on the demo's records, with the service "
                           "logging an order every few seconds, until Ctrl-C")
    demo.add_argument("--host", default="127.0.0.1", help="with --ui: the viewer's address (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=DEFAULT_PORT,
                      help=f"with --ui: the viewer's port (default {DEFAULT_PORT}; 0: a free one)")
    demo.set_defaults(run=run_demo)
