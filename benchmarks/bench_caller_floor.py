"""How little a handler that captures a record at the call can cost the caller, in this interpreter.

    python benchmarks/bench_caller_floor.py [--records N] [--rounds R]

The caller target of the performance work is ``KafkaLogHandler`` at most 1.3 times ``NullHandler``'s cost
per ``logger.info`` call. This measures the floor beneath any such handler, in one run, rounds
interleaved, the same plain record (``bench_handler.py``'s) for every contender, the calling thread's CPU
time (``time.thread_time``):

* ``null``: ``logging.NullHandler``.
* ``keep``: a handler appending the ``LogRecord`` itself to a deque: what a queue costs at the least. It
  captures nothing: a dict in ``extra`` changed after the call would ship changed, the bound context would
  be read later, on another thread.
* ``compact``: a ``handle()`` (no filters, no lock) appending one tuple of what must be fixed at the call:
  the message rendered, the record's identity fields, a sequence number, the bound context, the
  ``extra`` dict copied. No OpenTelemetry span, no exception, no overflow policy, no check of any kind.
* ``required``: ``compact`` with what the issue's correctness rule asks of any capture on top ("what ships is
  what was logged at the call"): the ``extra`` values copied deeply and JSON-safe (logkafka's own
  ``jsonable``, not a shallow ``dict.copy()``: a nested dict changed after the call must not ship changed),
  the bound context, the OpenTelemetry context and structlog's context variables read (the deep copy as an
  orjson round trip, the cheapest we know for JSON values: cheaper than logkafka's own). Still no checks, no
  exception, no bound on the queue: the floor beneath a handler that keeps its promises.
* ``compact_thread``: ``compact``, with a thread taking the tuples off the deque and encoding each to JSON
  (orjson, about as much Python work per record as a handler's thread does to render and send one):
  what sharing the GIL with any background thread costs the caller.
* ``logkafka``: ``KafkaLogHandler`` with default settings against the embedded broker.

Numbers are medians over the rounds; ratios against ``null``.
"""

from __future__ import annotations

import argparse
import collections
import contextvars
import itertools
import logging
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from opentelemetry import context as otel_context

import logkafka
from logkafka import get_context
from logkafka.testing import LocalBroker, create_topic

BOUND: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("bound", default=None)
_kept: collections.deque[Any] = collections.deque()
_seq = itertools.count().__next__
_bound_now = get_context
_span_now = otel_context.get_current


def _deep_copy(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


def _structlog_now() -> Any:
    module = sys.modules.get("structlog.contextvars")
    return module.get_contextvars() if module is not None else None



class Keep(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        _kept.append(record)


class Compact(logging.Handler):
    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        d = record.__dict__
        context = d["context"]
        _kept.append((record.getMessage(), d["created"], d["levelname"], d["name"], d["lineno"], d["funcName"],
                      d["module"], d["threadName"], _seq(), BOUND.get(), d["code"],
                      context.copy() if type(context) is dict else context))
        return True


class Required(logging.Handler):
    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        d = record.__dict__
        _kept.append((record.getMessage(), d["created"], d["levelname"], d["name"], d["lineno"], d["funcName"],
                      d["module"], d["threadName"], _seq(), d["code"], _deep_copy(d["context"]), _bound_now(),
                      _span_now(), _structlog_now()))
        return True


class CompactThread(Compact):
    """``Compact`` with a thread that encodes what it queues, until told to stop."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: collections.deque[Any] = collections.deque()
        self.stopping = threading.Event()
        self.idle = threading.Event()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        d = record.__dict__
        context = d["context"]
        self.queue.append((record.getMessage(), d["created"], d["levelname"], d["name"], d["lineno"], d["funcName"],
                           d["module"], d["threadName"], _seq(), BOUND.get(), d["code"],
                           context.copy() if type(context) is dict else context))
        return True

    def _drain(self) -> None:
        queue, dumps, out = self.queue, orjson.dumps, collections.deque(maxlen=1)
        while not self.stopping.is_set():
            try:
                item = queue.popleft()
            except IndexError:
                self.idle.set()
                time.sleep(0.001)
                continue
            self.idle.clear()
            message, created, level, name, line, function, module, thread, seq, bound, code, context = item
            out.append(dumps({"timestamp": created, "level": level, "logger": name, "message": message,
                              "code": code, "module": module, "function": function, "line": line,
                              "thread": thread, "event_id": seq, "context": dict(bound or {}), "extra": context}))

    def settle(self) -> None:
        while self.queue or not self.idle.is_set():
            time.sleep(0.001)


def loop(logger: logging.Logger, n: int) -> float:
    """The calling thread's CPU µs per call for ``n`` of bench_handler's plain records."""
    info = logger.info
    c0 = time.thread_time_ns()
    for i in range(n):
        info("Agent execution completed", extra={
            "code": "AGENT_EXECUTION_COMPLETED",
            "context": {"agent": "planner", "steps": 7, "tokens": 1532, "run": i}})
    return (time.thread_time_ns() - c0) / n / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with LocalBroker() as broker:
        create_topic(broker.bootstrap_servers, "floor")
        kafka = logkafka.KafkaLogHandler(broker.bootstrap_servers, "floor", service_name="floor")
        threaded = CompactThread()
        handlers: dict[str, logging.Handler] = {"null": logging.NullHandler(), "keep": Keep(), "compact": Compact(),
                                                "required": Required(), "compact_thread": threaded, "logkafka": kafka}
        loggers = {}
        for name, handler in handlers.items():
            logger = loggers[name] = logging.getLogger(f"floor.{name}")
            logger.handlers[:] = [handler]
            logger.propagate = False
            logger.setLevel(logging.INFO)
        settle: dict[str, Callable[[], Any]] = {"keep": _kept.clear, "compact": _kept.clear, "required": _kept.clear,
                                                "compact_thread": threaded.settle, "logkafka": lambda: kafka.flush(120)}
        cost: dict[str, list[float]] = {name: [] for name in handlers}
        names = list(handlers)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                cost[name].append(loop(loggers[name], args.records))
                settle.get(name, lambda: None)()
        delivered = kafka.stats()["delivered"]
        threaded.stopping.set()
        kafka.close()
    null = statistics.median(cost["null"])
    print(f"Python {sys.version.split()[0]}; {args.records:,} records, {args.rounds} interleaved rounds; "
          "calling thread's CPU per call, medians")
    for name, values in cost.items():
        mid = statistics.median(values)
        print(f"  {name:10} {mid:6.2f} µs  x{mid / null:.2f} null")
    print(f"  (KafkaLogHandler delivered {delivered:,} of {args.records * args.rounds:,})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
