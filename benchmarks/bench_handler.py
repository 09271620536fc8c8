"""Caller cost and end-to-end rate of KafkaLogHandler against baselines, in one run.

    python benchmarks/bench_handler.py [--records N] [--rounds R] [--json]

Uses KAFKA_BOOTSTRAP_SERVERS when set, else starts the embedded local broker.
Every figure is printed as a ratio to a baseline measured in the same run, on
the same machine, so noisy shared machines still give comparable numbers:

* caller cost per ``logger.info`` call, for ``logging.NullHandler``,
  ``FileHandler`` + python-json-logger's ``JsonFormatter`` (configured with
  the same fields logkafka ships), and ``KafkaLogHandler``. Two measures:
  wall time of the loop divided by the calls (it includes time the caller
  waited for the GIL while the handler's thread worked) and CPU time of the
  calling thread alone (``time.thread_time_ns``: what ``emit`` itself costs).
* end-to-end rate: records per second from the first call until the last
  record is written and flushed (file) or acknowledged by the broker (Kafka).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import pythonjsonlogger.json

import logkafka
from logkafka.testing import LocalBroker, create_topic, read_topic

IDENTITY = {"service": "bench", "environment": "bench", "version": "1.0.0"}


def pjl_formatter() -> logging.Formatter:
    """python-json-logger configured to ship the same fields as logkafka's JsonFormatter."""
    return pythonjsonlogger.json.JsonFormatter(
        "{levelname}{name}{message}{module}{funcName}{lineno}{process}{threadName}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger", "funcName": "function",
                       "lineno": "line", "threadName": "thread"},
        static_fields={**IDENTITY, "host": "h", "instance_id": "h"},
        timestamp=True,
    )


def log_loop(logger: logging.Logger, n: int, start: int = 0) -> None:
    info = logger.info
    for i in range(start, start + n):
        info("order %s processed", i, extra={"code": "ORDER_PROCESSED", "duration_ms": 12})


def make_logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"bench.{name}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def caller_cost(handler: logging.Handler, name: str, n: int, rounds: int,
                after_round: Callable[[], None]) -> dict[str, float]:
    """Median over rounds of (wall µs per call, caller-thread CPU µs per call)."""
    logger = make_logger(name, handler)
    log_loop(logger, 2000)  # warm up
    after_round()
    wall, cpu = [], []
    for r in range(rounds):
        t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        log_loop(logger, n, r * n)
        c1, t1 = time.thread_time_ns(), time.perf_counter_ns()
        wall.append((t1 - t0) / n / 1000)
        cpu.append((c1 - c0) / n / 1000)
        after_round()
    return {"wall_us": statistics.median(wall), "cpu_us": statistics.median(cpu)}


def end_to_end(make: Callable[[], tuple[logging.Handler, Callable[[int], None]]], name: str, n: int,
               rounds: int) -> float:
    """Median records/s from the first call until the last record is settled."""
    rates = []
    for r in range(rounds):
        handler, finish = make()
        logger = make_logger(f"{name}{r}", handler)
        logger.info("warm up: open the file, connect the producer")
        finish(1)
        t0 = time.perf_counter()
        log_loop(logger, n)
        finish(n + 1)
        rates.append(n / (time.perf_counter() - t0))
        handler.close()
    return statistics.median(rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000, help="records per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    n, rounds = args.records, args.rounds

    broker = None
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not servers:
        broker = LocalBroker().start()
        servers = broker.bootstrap_servers
    tmp = tempfile.mkdtemp(prefix="logkafka-bench-")
    logkafka.bind(correlation_id="bench-correlation-id")
    try:
        results: dict[str, Any] = {"records": n, "rounds": rounds, "python": sys.version.split()[0]}

        # -- caller cost -------------------------------------------------------------
        null = caller_cost(logging.NullHandler(), "null", n, rounds, lambda: None)
        fh = logging.FileHandler(os.path.join(tmp, "pjl.log"))
        fh.setFormatter(pjl_formatter())
        file = caller_cost(fh, "file", n, rounds, fh.flush)
        fh.close()
        topic = f"bench.caller.{uuid.uuid4().hex[:8]}"
        create_topic(servers, topic, 1)
        kh = logkafka.KafkaLogHandler(servers, topic, queue_size=4 * n, **_identity())
        kh.setFormatter(logkafka.JsonFormatter(**_identity()))
        kafka = caller_cost(kh, "kafka", n, rounds, lambda: _settle(kh))
        stats = kh.stats()
        kh.close()
        if stats["dropped_total"] or stats["failed"]:
            raise SystemExit(f"records lost during the caller benchmark: {stats}")
        results["caller"] = {"null": null, "file_pjl": file, "kafka": kafka}

        # -- end to end -----------------------------------------------------------------
        e2e_n = n * 2

        def make_file() -> tuple[logging.Handler, Callable[[int], None]]:
            h = logging.FileHandler(os.path.join(tmp, f"e2e-{uuid.uuid4().hex}.log"))
            h.setFormatter(pjl_formatter())
            return h, lambda expected: h.flush()

        e2e_topics: list[str] = []

        def make_kafka() -> tuple[logging.Handler, Callable[[int], None]]:
            t = f"bench.e2e.{uuid.uuid4().hex[:8]}"
            create_topic(servers, t, 1)
            e2e_topics.append(t)
            h = logkafka.KafkaLogHandler(servers, t, queue_size=2 * e2e_n, **_identity())
            h.setFormatter(logkafka.JsonFormatter(**_identity()))

            def finish(expected: int) -> None:
                if not h.flush(120):
                    raise SystemExit("flush timed out")
                s = h.stats()
                if s["delivered"] != expected:
                    raise SystemExit(f"not every record was acknowledged: {s}")
            return h, finish

        file_rate = end_to_end(make_file, "e2efile", e2e_n, rounds)
        kafka_rate = end_to_end(make_kafka, "e2ekafka", e2e_n, rounds)
        arrived = len(read_topic(servers, e2e_topics[-1], expected=e2e_n + 1, timeout=60))
        if arrived != e2e_n + 1:
            raise SystemExit(f"{arrived} of {e2e_n} records read back from the last end-to-end topic")
        results["end_to_end_records_per_s"] = {"file_pjl": file_rate, "kafka": kafka_rate}
        results["ratios"] = {
            "kafka_caller_cpu_vs_null": kafka["cpu_us"] / null["cpu_us"],
            "kafka_caller_wall_vs_null": kafka["wall_us"] / null["wall_us"],
            "file_caller_wall_vs_null": file["wall_us"] / null["wall_us"],
            "kafka_e2e_vs_file": kafka_rate / file_rate,
        }
    finally:
        if broker is not None:
            broker.stop()

    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    c = results["caller"]
    print(f"Python {results['python']}, {n} records x {rounds} rounds, medians\n")
    print("caller cost per logger.info call      wall µs   caller-CPU µs")
    for label, key in (("logging.NullHandler", "null"), ("FileHandler + python-json-logger", "file_pjl"),
                       ("KafkaLogHandler", "kafka")):
        print(f"  {label:34s} {c[key]['wall_us']:8.2f}   {c[key]['cpu_us']:8.2f}")
    e = results["end_to_end_records_per_s"]
    print("\nend-to-end rate (first call to last record settled)")
    print(f"  FileHandler + python-json-logger   {e['file_pjl']:10,.0f} records/s (written and flushed)")
    print(f"  KafkaLogHandler                    {e['kafka']:10,.0f} records/s (acknowledged by the broker)")
    r = results["ratios"]
    print("\nratios")
    print(f"  Kafka caller CPU / NullHandler      {r['kafka_caller_cpu_vs_null']:.2f}x")
    print(f"  Kafka caller wall / NullHandler     {r['kafka_caller_wall_vs_null']:.2f}x")
    print(f"  File caller wall / NullHandler      {r['file_caller_wall_vs_null']:.2f}x")
    print(f"  Kafka e2e rate / File e2e rate      {r['kafka_e2e_vs_file']:.2f}x")
    return 0


def _identity() -> dict[str, str]:
    return {"service_name": IDENTITY["service"], "environment": IDENTITY["environment"],
            "version": IDENTITY["version"]}


def _settle(handler: logkafka.KafkaLogHandler) -> None:
    if not handler.flush(120):
        raise SystemExit("flush timed out")


if __name__ == "__main__":
    sys.exit(main())
