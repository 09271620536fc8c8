"""KafkaLogHandler against what a user would otherwise run, in one run, on the same records.

    python benchmarks/bench_handler.py [--records N] [--rounds R] [--json]

Uses KAFKA_BOOTSTRAP_SERVERS when set, else starts the embedded local broker.

Contenders, each configured as its users configure it (library defaults):

* ``null``: ``logging.NullHandler``, the floor (the cost of the ``logger.info`` call itself).
* ``file``: ``FileHandler`` with python-json-logger's ``JsonFormatter`` (asctime, level, logger, message,
  and the extras it adds by itself).
* ``naive``: a handler that formats with the same python-json-logger formatter and calls confluent-kafka's
  ``produce()`` and ``poll(0)`` in ``emit()``, retrying on ``BufferError`` (librdkafka's defaults).
* ``queue``: the standard library's ``QueueHandler`` + ``QueueListener`` in front of that naive handler.
* ``logkafka``: ``KafkaLogHandler`` with its ``JsonFormatter``, default settings; and
  ``logkafka_disk``, the same with ``durability="disk"`` (each record written to the spool before
  ``emit()`` returns).

Two record shapes, the same call for every contender:

* ``plain``: ``logger.info("Agent execution completed", extra={"code": ..., "context": {...}})``.
* ``request``: five extras, inside a request: a correlation id and a tenant bound, and an
  OpenTelemetry span active. logkafka takes them from its bound context and the span; the other
  contenders get them as their users add them, with a filter copying the context variables and the
  span's ids onto the record (as opentelemetry-instrumentation-logging does).

Each round runs every contender once per shape, in an order rotated from round to round. One
measurement logs N records in a tight loop, then waits until the last is settled: written and
flushed (file), acknowledged by the broker (Kafka contenders). It gives the caller's cost per call,
as CPU time of the calling thread (``time.thread_time``: what the call itself costs) and as wall
time of the loop (which also holds the time the caller waited while the handler's thread held the
GIL), and the end-to-end rate (records from the first call to the last settled, per second). Every
Kafka contender's topic is read back: the records the broker holds must equal the records sent.
Ratios are medians of the per-round ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import json
import logging
import logging.handlers
import os
import queue
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import pythonjsonlogger.json
from confluent_kafka import Producer
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

import logkafka
from logkafka.testing import LocalBroker, create_topic, read_topic

IDENTITY = {"service_name": "bench", "environment": "bench", "version": "1.0.0"}
CORRELATION_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)
TENANT_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("tenant_id", default=None)
KAFKA = ("naive", "queue", "logkafka", "logkafka_disk")
CONTENDERS = ("null", "file", *KAFKA)
PEERS = ("file", "naive", "queue")


# -- the two record shapes ------------------------------------------------------------------
def plain_loop(logger: logging.Logger, n: int) -> None:
    info = logger.info
    for i in range(n):
        info("Agent execution completed", extra={
            "code": "AGENT_EXECUTION_COMPLETED",
            "context": {"agent": "planner", "steps": 7, "tokens": 1532, "run": i}})


def request_loop(logger: logging.Logger, n: int) -> None:
    info = logger.info
    for i in range(n):
        info("Order placed", extra={"code": "ORDER_PLACED", "order_id": i, "amount": 42.5, "currency": "EUR",
                                    "items": 3})


class Request:
    """A request's context for the ``request`` shape: bound ids and an active span, for every contender."""

    def __enter__(self) -> None:
        self._bound = logkafka.bound(correlation_id="c0ffee00-1234-4abc-9def-000000000001", tenant_id="acme")
        self._bound.__enter__()
        self._tokens = (CORRELATION_ID.set("c0ffee00-1234-4abc-9def-000000000001"), TENANT_ID.set("acme"))
        span = NonRecordingSpan(SpanContext(trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736, span_id=0x00F067AA0BA902B7,
                                            is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED)))
        self._span = trace.use_span(span)
        self._span.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._span.__exit__(None, None, None)
        CORRELATION_ID.reset(self._tokens[0])
        TENANT_ID.reset(self._tokens[1])
        self._bound.__exit__(None, None, None)


def request_fields(record: logging.LogRecord) -> bool:
    """What a python-json-logger user adds for the request fields: the context variables and the span's ids."""
    record.correlation_id = CORRELATION_ID.get()
    record.tenant_id = TENANT_ID.get()
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        record.trace_id = format(ctx.trace_id, "032x")
        record.span_id = format(ctx.span_id, "016x")
    return True


SHAPES: dict[str, tuple[Callable[[logging.Logger, int], None], Any]] = {
    "plain": (plain_loop, None),
    "request": (request_loop, request_fields),
}


# -- the contenders ---------------------------------------------------------------------------
def pjl_formatter() -> logging.Formatter:
    return pythonjsonlogger.json.JsonFormatter("{asctime}{levelname}{name}{message}", style="{")


class NaiveKafkaHandler(logging.Handler):
    """The handler users write first: format, ``produce()`` and ``poll(0)`` in ``emit()``."""

    def __init__(self, servers: str, topic: str) -> None:
        super().__init__()
        self.topic = topic
        self.delivered = self.failed = 0
        self.producer = Producer({"bootstrap.servers": servers, "on_delivery": self._report})

    def _report(self, err: Any, msg: Any) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.failed += 1

    def emit(self, record: logging.LogRecord) -> None:
        try:
            value = self.format(record).encode()
            while True:
                try:
                    self.producer.produce(self.topic, value)
                    break
                except BufferError:  # librdkafka's queue is full: wait for deliveries
                    self.producer.poll(0.05)
            self.producer.poll(0)
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        self.producer.flush(120)


class Contender:
    """One contender's handler for one measurement: made, warmed up, settled, counted, closed."""

    def __init__(self, name: str, servers: str, tmp: str, fields: Any) -> None:
        self.name, self.servers, self.topic = name, servers, ""
        self.listener: logging.handlers.QueueListener | None = None
        self.naive: NaiveKafkaHandler | None = None
        handler: logging.Handler
        if name in KAFKA:
            self.topic = f"bench.{uuid.uuid4().hex[:12]}"
            create_topic(servers, self.topic, 1)
        if name == "null":
            handler = logging.NullHandler()
        elif name == "file":
            handler = logging.FileHandler(os.path.join(tmp, f"{uuid.uuid4().hex}.log"))
            handler.setFormatter(pjl_formatter())
        elif name in ("naive", "queue"):
            self.naive = NaiveKafkaHandler(servers, self.topic)
            self.naive.setFormatter(pjl_formatter())
            handler = self.naive
            if name == "queue":
                q: queue.SimpleQueue[Any] = queue.SimpleQueue()
                handler = logging.handlers.QueueHandler(q)
                self.listener = logging.handlers.QueueListener(q, self.naive)
                self.listener.start()
        else:
            handler = logkafka.KafkaLogHandler(
                servers, self.topic, spool_dir=os.path.join(tmp, "spool"), **IDENTITY,
                **({"durability": "disk"} if name == "logkafka_disk" else {}))
            handler.setFormatter(logkafka.JsonFormatter(**IDENTITY))
        if fields is not None and name in ("file", "naive", "queue"):  # on the caller's thread: the context is there
            handler.addFilter(fields)
        self.handler = handler
        self.logger = logging.getLogger(f"bench.{name}.{uuid.uuid4().hex[:8]}")
        self.logger.handlers[:] = [handler]
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.logger.info("warm up")  # the file open, the producer connected
        self.settle()

    def settle(self) -> None:
        """Wait until every record logged so far is written (file) or acknowledged (Kafka)."""
        h = self.handler
        if isinstance(h, logkafka.KafkaLogHandler):
            if not h.flush(120):
                raise SystemExit(f"{self.name}: flush timed out")
        elif self.listener is not None:
            self.listener.stop()  # drains the queue, then joins its thread
            self.listener.start()
            assert self.naive is not None
            self.naive.flush()
        else:
            h.flush()

    def acknowledged(self) -> int:
        h = self.handler
        if isinstance(h, logkafka.KafkaLogHandler):
            stats = h.stats()
            if stats["dropped_total"] or stats["failed"]:
                raise SystemExit(f"{self.name}: records lost: {stats}")
            return int(stats["delivered"])
        assert self.naive is not None
        if self.naive.failed:
            raise SystemExit(f"{self.name}: {self.naive.failed} records failed")
        return self.naive.delivered

    def close(self) -> None:
        if self.listener is not None:
            self.listener.stop()
        self.handler.close()


def held(servers: str, topic: str, sent: int) -> int:
    """Records the broker holds in ``topic``: read back from its start."""
    return len(read_topic(servers, topic, expected=sent, timeout=60, idle=0.5))


def measure(c: Contender, loop: Callable[[logging.Logger, int], None], n: int) -> dict[str, float]:
    """Log ``n`` records through ``c`` and wait until the last is settled."""
    t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
    loop(c.logger, n)
    c1, t1 = time.thread_time_ns(), time.perf_counter_ns()
    c.settle()
    t2 = time.perf_counter_ns()
    out = {"cpu_us": (c1 - c0) / n / 1000, "wall_us": (t1 - t0) / n / 1000, "rate": n / ((t2 - t0) / 1e9)}
    if c.name in KAFKA:
        out["sent"], out["acked"], out["held"] = n + 1, c.acknowledged(), held(c.servers, c.topic, n + 1)
    return out


# -- the run ------------------------------------------------------------------------------------
def run(servers: str, n: int, rounds: int, tmp: str) -> dict[str, Any]:
    figures: dict[str, dict[str, list[dict[str, float]]]] = {s: {c: [] for c in CONTENDERS} for s in SHAPES}
    for r in range(rounds):
        order = CONTENDERS[r % len(CONTENDERS):] + CONTENDERS[:r % len(CONTENDERS)]
        for shape, (loop, fields) in SHAPES.items():
            for name in order:
                c = Contender(name, servers, tmp, fields)
                try:
                    with Request() if shape == "request" else contextlib.nullcontext():
                        figures[shape][name].append(measure(c, loop, n))
                finally:
                    c.close()
            print(f"round {r + 1}/{rounds}, {shape}: " + ", ".join(
                f"{k} {v[-1]['rate']:,.0f}/s" for k, v in figures[shape].items()), file=sys.stderr)
    return figures


def summarize(figures: dict[str, Any], n: int, rounds: int) -> dict[str, Any]:
    med = statistics.median
    out: dict[str, Any] = {"python": sys.version.split()[0], "records": n, "rounds": rounds, "shapes": {}}
    for shape, per in figures.items():
        rows: dict[str, Any] = {}
        null = per["null"]
        # the best peer of each round: the file handler, the naive handler or the QueueHandler in front of it
        best = [max(per[p][i]["rate"] for p in PEERS) for i in range(rounds)]
        for name, ms in per.items():
            rows[name] = {
                "caller_cpu_us": med(m["cpu_us"] for m in ms),
                "caller_wall_us": med(m["wall_us"] for m in ms),
                "caller_cpu_vs_null": med(m["cpu_us"] / z["cpu_us"] for m, z in zip(ms, null, strict=True)),
                "caller_wall_vs_null": med(m["wall_us"] / z["wall_us"] for m, z in zip(ms, null, strict=True)),
                "records_per_s": med(m["rate"] for m in ms),
                "rate_vs_best_peer": med(m["rate"] / b for m, b in zip(ms, best, strict=True)),
                "rounds_records_per_s": [round(m["rate"]) for m in ms],
                "rounds_caller_cpu_us": [round(m["cpu_us"], 2) for m in ms],
            }
            if name in KAFKA:
                rows[name]["sent"] = sum(int(m["sent"]) for m in ms)
                rows[name]["acknowledged"] = sum(int(m["acked"]) for m in ms)
                rows[name]["held_by_broker"] = sum(int(m["held"]) for m in ms)
        out["shapes"][shape] = rows
    return out


LABELS = {
    "null": "logging.NullHandler", "file": "FileHandler + python-json-logger",
    "naive": "naive confluent-kafka handler", "queue": "QueueHandler + QueueListener + naive",
    "logkafka": "KafkaLogHandler", "logkafka_disk": "KafkaLogHandler, durability='disk'",
}


def print_table(results: dict[str, Any]) -> None:
    print(f"Python {results['python']}; {results['records']:,} records per measurement, {results['rounds']} "
          "interleaved rounds; medians (ratios: medians of the per-round ratios)")
    for shape, rows in results["shapes"].items():
        print(f"\n{shape} records")
        print(f"  {'contender':38s} {'caller CPU µs':>13s} {'wall µs':>8s} {'CPU x null':>9s} {'wall x null':>10s} "
              f"{'rec/s':>9s} {'x best peer':>10s} {'held/sent':>15s}")
        for name, row in rows.items():
            held_sent = f"{row['held_by_broker']:,}/{row['sent']:,}" if "sent" in row else ""
            print(f"  {LABELS[name]:38s} {row['caller_cpu_us']:13.2f} {row['caller_wall_us']:8.2f} "
                  f"{row['caller_cpu_vs_null']:9.2f} {row['caller_wall_vs_null']:10.2f} "
                  f"{row['records_per_s']:9,.0f} {row['rate_vs_best_peer']:10.2f} {held_sent:>15s}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=50_000, help="records per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    broker = None
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not servers:
        broker = LocalBroker().start()
        servers = broker.bootstrap_servers
    tmp = tempfile.mkdtemp(prefix="logkafka-bench-")
    try:
        results = summarize(run(servers, args.records, args.rounds, tmp), args.records, args.rounds)
    finally:
        if broker is not None:
            broker.stop()
    lost = [(s, name) for s, rows in results["shapes"].items() for name, row in rows.items()
            if "sent" in row and not row["sent"] == row["acknowledged"] == row["held_by_broker"]]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)
    if lost:
        print(f"records not held by the broker: {lost}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
