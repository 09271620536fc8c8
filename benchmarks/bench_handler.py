"""Caller cost and end-to-end rate of KafkaLogHandler against baselines, in one run.

    python benchmarks/bench_handler.py [--records N] [--rounds R] [--json]

Uses KAFKA_BOOTSTRAP_SERVERS when set, else starts the embedded local broker.
Shared machines are noisy, so every round measures all handlers back to back
and each ratio is the median of the per-round ratios:

* caller cost per ``logger.info`` call for ``logging.NullHandler``,
  ``FileHandler`` + python-json-logger's ``JsonFormatter`` and ``KafkaLogHandler``.
  The file handler is measured twice: "file" ships the same fields as
  logkafka (a filter adds a ``uuid4`` event id and the bound correlation id,
  the usual way with python-json-logger); "file_plain" ships the rest only. Two measures: CPU time
  of the calling thread (``time.thread_time_ns``: what the call itself costs
  the caller) and wall time of the loop (which also holds the time the caller
  waited for the GIL while the handler's thread worked).
* end-to-end rate: records per second from the first call until the last
  record is written and flushed (file) or acknowledged by the broker (Kafka);
  handlers are warmed up (file open, producer connected) before the clock starts.
"""

from __future__ import annotations

import argparse
import contextvars
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from typing import Any

import pythonjsonlogger.json

import logkafka
from logkafka.testing import LocalBroker, create_topic, read_topic

IDENTITY = {"service_name": "bench", "environment": "bench", "version": "1.0.0"}
CORRELATION_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)


def add_ids(record: logging.LogRecord) -> bool:
    """What a python-json-logger setup adds to ship logkafka's fields: an event id and the correlation id."""
    record.event_id = str(uuid.uuid4())
    record.correlation_id = CORRELATION_ID.get()
    return True


def pjl_formatter() -> logging.Formatter:
    """python-json-logger configured to ship the same fields as logkafka's JsonFormatter."""
    return pythonjsonlogger.json.JsonFormatter(
        "{levelname}{name}{message}{module}{funcName}{lineno}{process}{threadName}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger", "funcName": "function",
                       "lineno": "line", "threadName": "thread"},
        static_fields={"service": "bench", "environment": "bench", "version": "1.0.0",
                       "host": "h", "instance_id": "h"},
        timestamp=True,
    )


class FsyncFileHandler(logging.FileHandler):
    """A FileHandler that fsyncs after every record: the file baseline for ``spool_fsync="always"``."""

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        if self.stream is not None:
            os.fsync(self.stream.fileno())


def log_loop(logger: logging.Logger, n: int) -> None:
    info = logger.info
    for i in range(n):
        info("order %s processed", i, extra={"code": "ORDER_PROCESSED", "duration_ms": 12})


def make_logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"bench.{uuid.uuid4().hex[:8]}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def timed_loop(logger: logging.Logger, n: int) -> tuple[float, float]:
    """(wall µs per call, caller-thread CPU µs per call)."""
    t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
    log_loop(logger, n)
    c1, t1 = time.thread_time_ns(), time.perf_counter_ns()
    return (t1 - t0) / n / 1000, (c1 - c0) / n / 1000


def settle(handler: logkafka.KafkaLogHandler, expected: int) -> None:
    if not handler.flush(120):
        raise SystemExit("flush timed out")
    stats = handler.stats()
    if stats["delivered"] != expected or stats["dropped_total"] or stats["failed"]:
        raise SystemExit(f"records lost or not acknowledged: {stats}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000, help="records per measurement")
    parser.add_argument("--rounds", type=int, default=7)
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
    CORRELATION_ID.set("bench-correlation-id")

    def new_topic() -> str:
        topic = f"bench.{uuid.uuid4().hex[:12]}"
        create_topic(servers, topic, 1)
        return topic

    def new_file_handler(same_fields: bool = True, fsync: bool = False) -> logging.Handler:
        cls = FsyncFileHandler if fsync else logging.FileHandler
        handler = cls(os.path.join(tmp, f"{uuid.uuid4().hex}.log"))
        handler.setFormatter(pjl_formatter())
        if same_fields:
            handler.addFilter(add_ids)
        return handler

    def new_kafka_handler(topic: str, queue: int, **kwargs: Any) -> logkafka.KafkaLogHandler:
        kwargs.setdefault("spool_dir", os.path.join(tmp, "spool"))
        handler = logkafka.KafkaLogHandler(servers, topic, queue_size=queue, **IDENTITY, **kwargs)
        handler.setFormatter(logkafka.JsonFormatter(**IDENTITY))
        return handler

    def kafka_e2e(name: str, **kwargs: Any) -> str:
        """One end-to-end round of a KafkaLogHandler into ``e2e[name]``; returns its topic."""
        topic = new_topic()
        h = new_kafka_handler(topic, 2 * e2e_n, **kwargs)
        logger = make_logger(h)
        logger.info("warm up")
        settle(h, 1)
        t0 = time.perf_counter()
        log_loop(logger, e2e_n)
        settle(h, 1 + e2e_n)
        e2e[name].append(e2e_n / (time.perf_counter() - t0))
        h.close()
        return topic

    caller: dict[str, list[tuple[float, float]]] = {"null": [], "file": [], "file_plain": [], "kafka": [],
                                                    "kafka_disk": [], "kafka_frozen": [], "null_frozen": [],
                                                    "file_fsync": [], "kafka_disk_always": []}
    e2e: dict[str, list[float]] = {"file": [], "file_plain": [], "kafka": [], "kafka_disk": []}
    last_topic, e2e_n = "", 2 * n
    try:
        # the same handlers serve every caller-cost round, warmed up once
        null_logger = make_logger(logging.NullHandler())
        fh, fph = new_file_handler(), new_file_handler(same_fields=False)
        file_logger, file_plain_logger = make_logger(fh), make_logger(fph)
        kh = new_kafka_handler(new_topic(), 2 * n)
        kafka_logger = make_logger(kh)
        dh = new_kafka_handler(new_topic(), 2 * n, durability="disk")
        disk_logger = make_logger(dh)
        # fsync per record costs a disk round trip: fewer calls for these two
        n_sync = max(100, n // 20)
        ah = new_kafka_handler(new_topic(), 2 * n, durability="disk", spool_fsync="always")
        always_logger = make_logger(ah)
        sfh = new_file_handler(fsync=True)
        file_fsync_logger = make_logger(sfh)
        for logger in (null_logger, file_logger, file_plain_logger, kafka_logger, disk_logger):
            log_loop(logger, 2000)
        log_loop(always_logger, 200)
        log_loop(file_fsync_logger, 200)
        settle(kh, 2000)
        settle(dh, 2000)
        settle(ah, 200)
        for r in range(rounds):
            caller["null"].append(timed_loop(null_logger, n))
            caller["file"].append(timed_loop(file_logger, n))
            caller["file_plain"].append(timed_loop(file_plain_logger, n))
            caller["kafka"].append(timed_loop(kafka_logger, n))
            caller["kafka_disk"].append(timed_loop(disk_logger, n))
            caller["file_fsync"].append(timed_loop(file_fsync_logger, n_sync))
            caller["kafka_disk_always"].append(timed_loop(always_logger, n_sync))
            settle(kh, 2000 + (r + 1) * n)  # not timed: keeps the queue from filling up
            settle(dh, 2000 + (r + 1) * n)
            settle(ah, 200 + (r + 1) * n_sync)
        ah.close()
        sfh.close()
        fh.close()
        fph.close()
        kh.close()
        dh.close()

        if broker is not None:  # the caller's cost while the broker is frozen (SIGSTOP)
            zh = new_kafka_handler(new_topic(), 2 * n)
            frozen_logger = make_logger(zh)
            log_loop(frozen_logger, 2000)
            settle(zh, 2000)
            broker.pause()
            try:
                for _ in range(rounds):
                    caller["kafka_frozen"].append(timed_loop(frozen_logger, n))
                    caller["null_frozen"].append(timed_loop(null_logger, n))  # paired with the frozen rounds
            finally:
                broker.resume()
            settle(zh, 2000 + rounds * n)
            zh.close()

        for _ in range(rounds):
            for name, same_fields in (("file", True), ("file_plain", False)):
                h: Any = new_file_handler(same_fields)
                logger = make_logger(h)
                logger.info("warm up")
                t0 = time.perf_counter()
                log_loop(logger, e2e_n)
                h.flush()
                e2e[name].append(e2e_n / (time.perf_counter() - t0))
                h.close()

            last_topic = kafka_e2e("kafka")
            kafka_e2e("kafka_disk", durability="disk")
        arrived = len(read_topic(servers, last_topic, expected=e2e_n + 1, timeout=60))
        if arrived != e2e_n + 1:
            raise SystemExit(f"{arrived} of {e2e_n + 1} records read back from the last end-to-end topic")
    finally:
        if broker is not None:
            broker.stop()

    def med(values: list[float]) -> float:
        return statistics.median(values)

    def ratio(a: list[tuple[float, float]], b: list[tuple[float, float]], i: int) -> float:
        return med([x[i] / y[i] for x, y in zip(a, b, strict=True)])

    results: dict[str, Any] = {
        "python": sys.version.split()[0], "records": n, "rounds": rounds,
        "caller_us": {k: {"wall": med([w for w, _ in v]), "cpu": med([c for _, c in v])} for k, v in caller.items()},
        "end_to_end_records_per_s": {k: med(v) for k, v in e2e.items()},
        "rounds_detail": {"caller_cpu_us": {k: [round(c, 2) for _, c in v] for k, v in caller.items()},
                          "end_to_end_records_per_s": {k: [round(x) for x in v] for k, v in e2e.items()}},
        "ratios": {
            "kafka_caller_cpu_vs_null": ratio(caller["kafka"], caller["null"], 1),
            "kafka_caller_wall_vs_null": ratio(caller["kafka"], caller["null"], 0),
            "file_caller_wall_vs_null": ratio(caller["file"], caller["null"], 0),
            "file_plain_caller_wall_vs_null": ratio(caller["file_plain"], caller["null"], 0),
            "kafka_e2e_vs_file": med([k / f for k, f in zip(e2e["kafka"], e2e["file"], strict=True)]),
            "kafka_e2e_vs_file_plain": med([k / f for k, f in zip(e2e["kafka"], e2e["file_plain"], strict=True)]),
            "kafka_disk_caller_wall_vs_null": ratio(caller["kafka_disk"], caller["null"], 0),
            "kafka_disk_e2e_vs_file": med([k / f for k, f in zip(e2e["kafka_disk"], e2e["file"], strict=True)]),
            "kafka_disk_always_caller_wall_vs_file_fsync": ratio(caller["kafka_disk_always"], caller["file_fsync"], 0),
        },
    }
    if caller["kafka_frozen"]:
        results["ratios"]["kafka_frozen_caller_wall_vs_null"] = ratio(caller["kafka_frozen"], caller["null_frozen"], 0)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    c, e, r = results["caller_us"], results["end_to_end_records_per_s"], results["ratios"]
    print(f"Python {results['python']}; {n} calls per measurement, {rounds} interleaved rounds; medians\n")
    print("caller cost per logger.info call        caller CPU µs   wall µs")
    for label, key in (("logging.NullHandler", "null"), ("FileHandler + python-json-logger", "file"),
                       ("  the same without event/correlation id", "file_plain"), ("KafkaLogHandler", "kafka"),
                       ("  durability='disk'", "kafka_disk"), ("  broker frozen (SIGSTOP)", "kafka_frozen"),
                       ("FileHandler, fsync after every record", "file_fsync"),
                       ("  durability='disk', spool_fsync='always'", "kafka_disk_always")):
        if caller[key]:
            print(f"  {label:40s} {c[key]['cpu']:10.2f} {c[key]['wall']:9.2f}")
    print(f"\nend-to-end rate, {e2e_n} records (first call to last record settled)")
    print(f"  FileHandler + python-json-logger         {e['file']:10,.0f} records/s (written and flushed)")
    print(f"    the same without event/correlation id  {e['file_plain']:10,.0f} records/s")
    print(f"  KafkaLogHandler                          {e['kafka']:10,.0f} records/s (acknowledged by the broker)")
    print(f"    durability='disk'                      {e['kafka_disk']:10,.0f} records/s")
    print("\nratios (median of per-round ratios)")
    print(f"  KafkaLogHandler caller CPU / NullHandler          {r['kafka_caller_cpu_vs_null']:.2f}x")
    print(f"  KafkaLogHandler caller wall / NullHandler         {r['kafka_caller_wall_vs_null']:.2f}x")
    print(f"  FileHandler caller wall / NullHandler             {r['file_caller_wall_vs_null']:.2f}x")
    print(f"  KafkaLogHandler e2e rate / FileHandler            {r['kafka_e2e_vs_file']:.2f}x")
    print(f"  KafkaLogHandler e2e rate / FileHandler, fewer fields  {r['kafka_e2e_vs_file_plain']:.2f}x")
    print(f"  durability='disk': caller wall / NullHandler  {r['kafka_disk_caller_wall_vs_null']:.2f}x, "
          f"e2e rate / FileHandler {r['kafka_disk_e2e_vs_file']:.2f}x")
    print(f"  spool_fsync='always': caller wall / FileHandler with fsync  "
          f"{r['kafka_disk_always_caller_wall_vs_file_fsync']:.2f}x")
    if "kafka_frozen_caller_wall_vs_null" in r:
        print(f"  broker frozen: caller wall / NullHandler      {r['kafka_frozen_caller_wall_vs_null']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
