"""Prometheus metrics of KafkaLogHandlers (the optional ``prometheus`` extra)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from logkafka._handler import KafkaLogHandler


class PrometheusCollector:
    """A ``prometheus_client`` collector for one or more handlers.

    ``prometheus_client.REGISTRY.register(PrometheusCollector(handler))`` exports:
    ``logging_events_published_total{event_type,status}`` (status: delivered,
    failed, dropped, spooled, replayed), ``logging_publish_latency_seconds``
    (quantiles of the delivery latency, log call to acknowledgement),
    ``logging_kafka_errors_total{error_type}`` and ``logging_publisher_started``
    (1 while the handler's thread runs). Values are read from ``stats()`` at
    each scrape; the handlers are not slowed down.
    """

    def __init__(self, *handlers: KafkaLogHandler, event_type: str = "application") -> None:
        try:
            import prometheus_client  # noqa: F401 - fail here, clearly, not at the first scrape
        except ImportError:
            raise ImportError(
                "PrometheusCollector needs prometheus_client: pip install 'logkafka[prometheus]'") from None
        self._handlers = handlers
        self._event_type = event_type

    def collect(self) -> Iterator[Any]:
        """The metrics, for ``prometheus_client``."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        published = CounterMetricFamily("logging_events_published", "Log records by outcome",
                                        labels=["event_type", "status", "topic"])
        latency = GaugeMetricFamily("logging_publish_latency_seconds",
                                    "Delivery latency, log call to broker acknowledgement (recent samples)",
                                    labels=["event_type", "topic", "quantile"])
        errors = CounterMetricFamily("logging_kafka_errors", "Kafka client errors by type",
                                     labels=["error_type", "topic"])
        started = GaugeMetricFamily("logging_publisher_started", "1 while the handler's thread runs",
                                    labels=["event_type", "topic"])
        for handler in self._handlers:
            st = handler.stats()
            topic, et = st["topic"], self._event_type
            for status, key in (("delivered", "delivered"), ("failed", "failed"), ("dropped", "dropped_total"),
                                ("spooled", "spooled"), ("replayed", "replayed")):
                published.add_metric([et, status, topic], float(st[key]))
            for name, value in st["latency_s"].items():
                if value is not None:
                    latency.add_metric([et, topic, str(int(name[1:]) / 100)], value)
            for error_type, n in _error_counts(handler).items():
                errors.add_metric([error_type, topic], float(n))
            started.add_metric([et, topic], 1.0 if handler._worker.running else 0.0)
        yield from (published, latency, errors, started)

    def describe(self) -> Iterable[Any]:
        """No fixed description: metrics are collected at each scrape."""
        return []


def _error_counts(handler: KafkaLogHandler) -> dict[str, int]:
    return dict(handler._worker.error_counts)
