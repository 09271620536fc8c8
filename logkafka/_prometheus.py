"""Prometheus metrics of KafkaLogHandlers (the optional ``prometheus`` extra), for the three streams.

Two ways out, the same metrics: :class:`PrometheusCollector`, read from ``stats()`` at each scrape
of the process that registered it; and, in ``prometheus_client``'s multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR`` set: gunicorn, uWSGI, Celery prefork), every process with a handler
writes its values to that directory every few seconds and at exit, where ``MultiProcessCollector``
adds them up across processes.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from logkafka._report import report


class _Counted(Protocol):
    """A handler, as the metrics see it."""

    def stats(self) -> dict[str, Any]: ...

#: (name, help, labels, kind) of each metric; kind: "counter", or the gauge's multiprocess mode.
_METRICS = {
    "published": ("logging_events_published", "Log records by outcome", ("event_type", "status", "topic"),
                  "counter"),
    "latency": ("logging_publish_latency_seconds",
                "Delivery latency, log call to broker acknowledgement (recent samples)",
                ("event_type", "topic", "quantile"), "livemax"),
    "errors": ("logging_kafka_errors", "Kafka client errors by type", ("error_type", "topic"), "counter"),
    "started": ("logging_publisher_started", "1 while the handler's thread for the stream runs",
                ("event_type", "topic"), "livesum"),
}
Sample = tuple[str, tuple[str, ...], float]  # (metric, label values, value)


def samples(handler: _Counted, event_type: str = "application") -> Iterator[Sample]:
    """The metric values of one handler, from its ``stats()``; ``event_type`` names the application stream."""
    st = handler.stats()
    for stream, s in st["by_stream"].items():
        et = event_type if stream == "application" else stream
        topic = s["topic"]
        counts = {"delivered": s["delivered"], "failed": s["failed"]}
        if stream == "application":
            counts.update(dropped=st["dropped_total"], spooled=s["spooled"], replayed=s["replayed"])
        elif stream == "audit":  # audit and security share one spool
            counts.update(spooled=s["spooled"], replayed=s["replayed"])
        for status, n in counts.items():
            yield "published", (et, status, topic), float(n)
        for error_type, n in s["error_counts"].items():
            yield "errors", (error_type, topic), float(n)
        yield "started", (et, topic), 1.0 if s["started"] else 0.0
    for name, value in st["latency_s"].items():
        if value is not None:
            yield "latency", (event_type, st["topic"], str(int(name[1:]) / 100)), value


def _need_client() -> None:
    try:
        import prometheus_client  # noqa: F401 - fail here, clearly, not at the first scrape
    except ImportError:
        raise ImportError("logkafka's Prometheus metrics need prometheus_client: "
                          "pip install 'logkafka[prometheus]'") from None


class PrometheusCollector:
    """A ``prometheus_client`` collector for one or more handlers, covering the three streams.

    ``prometheus_client.REGISTRY.register(PrometheusCollector(handler))`` exports:
    ``logging_events_published_total{event_type,status,topic}`` (``event_type``:
    application, audit, security; status: delivered, failed, dropped, spooled,
    replayed), ``logging_publish_latency_seconds`` (quantiles of the delivery
    latency, log call to acknowledgement), ``logging_kafka_errors_total{error_type,topic}``
    and ``logging_publisher_started`` (1 while the stream's thread runs). Values are
    read from ``stats()`` at each scrape; the handlers are not slowed down. For
    servers with several processes, see ``PROMETHEUS_MULTIPROC_DIR`` in the README.
    """

    def __init__(self, *handlers: _Counted, event_type: str = "application") -> None:
        _need_client()
        self._handlers = handlers
        self._event_type = event_type

    def collect(self) -> Iterator[Any]:
        """The metrics, for ``prometheus_client``."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        families = {key: (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(
            name, text, labels=list(labels)) for key, (name, text, labels, kind) in _METRICS.items()}
        for handler in self._handlers:
            for metric, labels, value in samples(handler, self._event_type):
                families[metric].add_metric(list(labels), value)
        yield from families.values()

    def describe(self) -> Iterable[Any]:
        """No fixed description: metrics are collected at each scrape."""
        return []


class _Export:
    """This process's values, written to ``prometheus_client``'s multiprocess files."""

    def __init__(self, handlers: Callable[[], list[_Counted]], interval: float) -> None:
        from prometheus_client import Counter, Gauge

        self._handlers = handlers
        self._interval = interval
        self._metrics: dict[str, Any] = {
            key: Counter(name, text, labels, registry=None) if kind == "counter"
            else Gauge(name, text, labels, registry=None, multiprocess_mode=kind)  # type: ignore[arg-type]
            for key, (name, text, labels, kind) in _METRICS.items()}
        self._last: dict[tuple[str, tuple[str, ...]], float] = {}  # counters as last written
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._start()

    def _start(self) -> None:
        threading.Thread(target=self._run, name="logkafka-metrics", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.sync()

    def sync(self) -> None:
        """Write what changed since the last sync."""
        try:
            with self._lock:
                totals: dict[tuple[str, tuple[str, ...]], float] = {}
                for handler in self._handlers():
                    for metric, labels, value in samples(handler):
                        key = (metric, labels)
                        totals[key] = totals.get(key, 0.0) + value if _METRICS[metric][3] == "counter" \
                            else max(totals.get(key, value), value)
                for (metric, labels), value in totals.items():
                    child = self._metrics[metric].labels(*labels)
                    if _METRICS[metric][3] != "counter":
                        child.set(value)
                        continue
                    delta = value - self._last.get((metric, labels), 0.0)
                    if delta > 0:
                        child.inc(delta)
                    self._last[(metric, labels)] = value
        except Exception as exc:  # metrics never break logging
            report("metrics", f"could not write Prometheus multiprocess metrics: {exc}", interval=300.0)

    def before_fork(self) -> None:
        """Hold the lock across a fork: the child never inherits prometheus_client mid-write (its own
        module lock held by a thread the child does not have)."""
        self._lock.acquire()

    def after_fork_in_parent(self) -> None:
        self._lock.release()

    def after_fork_in_child(self) -> None:
        """A forked child's handlers count from zero, in a file of its own: start again."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last = {}
        self._start()


_EXPORT: _Export | None = None


def export_multiprocess(handlers: Callable[[], list[_Counted]], interval: float = 5.0) -> bool:
    """In ``prometheus_client``'s multiprocess mode, write this process's handler metrics every ``interval``
    seconds and at exit. Said once when ``prometheus_client`` is missing; True when exporting."""
    global _EXPORT
    if _EXPORT is not None:
        return True
    try:
        _need_client()
    except ImportError as exc:
        report("metrics", f"PROMETHEUS_MULTIPROC_DIR is set, but {exc}", interval=3600.0)
        return False
    _EXPORT = _Export(handlers, interval)
    atexit.register(sync_multiprocess)
    return True


def sync_multiprocess() -> None:
    """Write this process's metrics now, when exporting to multiprocess files (at exit, after a shutdown)."""
    if _EXPORT is not None:
        _EXPORT.sync()


def _fork_step(name: str) -> Callable[[], None]:
    """A fork hook calling the export's method ``name``, when there is an export."""
    def step() -> None:
        if _EXPORT is not None:
            getattr(_EXPORT, name)()
    return step


os.register_at_fork(before=_fork_step("before_fork"), after_in_parent=_fork_step("after_fork_in_parent"),
                    after_in_child=_fork_step("after_fork_in_child"))
