"""The Prometheus collector reads a live handler's counters at each scrape."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import logkafka


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_follow_the_handler(make_handler: Any, app_logger: logging.Logger, kafka_topic: str) -> None:
    """Delivered counts, latency quantiles and the started gauge come from the handler's own counters."""
    handler = make_handler()
    registry = CollectorRegistry()
    registry.register(logkafka.PrometheusCollector(handler))
    before = scrape(registry)
    started = ("logging_publisher_started", (("event_type", "application"), ("topic", kafka_topic)))
    assert before[started] == 0.0
    app_logger.addHandler(handler)
    for seq in range(500):
        app_logger.info("scraped", extra={"seq": seq})
    assert handler.flush() is True
    after = scrape(registry)
    delivered = ("logging_events_published_total",
                 (("event_type", "application"), ("status", "delivered"), ("topic", kafka_topic)))
    failed = ("logging_events_published_total",
              (("event_type", "application"), ("status", "failed"), ("topic", kafka_topic)))
    assert after[delivered] == 500 and after[failed] == 0
    assert after[started] == 1.0
    quantiles = {dict(labels)["quantile"]: v for (name, labels), v in after.items()
                 if name == "logging_publish_latency_seconds"}
    assert set(quantiles) == {"0.5", "0.95", "0.99"}
    assert 0 < quantiles["0.5"] <= quantiles["0.99"]


def test_errors_by_type(make_handler: Any) -> None:
    """Kafka client errors are counted by their librdkafka name."""
    from confluent_kafka import KafkaError

    handler = make_handler()
    handler._worker._on_error(KafkaError(KafkaError._TRANSPORT, "injected"))
    handler._worker._on_error(KafkaError(KafkaError._TRANSPORT, "injected"))
    registry = CollectorRegistry()
    registry.register(logkafka.PrometheusCollector(handler))
    got = scrape(registry)
    assert got[("logging_kafka_errors_total", (("error_type", "_TRANSPORT"), ("topic", handler.settings.topic)))] == 2
