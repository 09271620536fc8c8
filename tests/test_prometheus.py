"""The Prometheus collector reads a live handler's counters at each scrape."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import logkafka

REPO = str(Path(__file__).resolve().parent.parent)


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


def test_errors_by_type(make_handler: Any, app_logger: logging.Logger) -> None:
    """Kafka client errors are counted by their librdkafka name: here a real unreachable address."""
    from logkafka.testing import free_port

    handler = make_handler(bootstrap_servers=f"127.0.0.1:{free_port()}", spool_dir=False, flush_timeout=1)
    app_logger.addHandler(handler)
    app_logger.info("nobody listens")
    registry = CollectorRegistry()
    registry.register(logkafka.PrometheusCollector(handler))
    key = ("logging_kafka_errors_total", (("error_type", "_ALL_BROKERS_DOWN"), ("topic", handler.settings.topic)))
    deadline = time.monotonic() + 30
    while scrape(registry).get(key, 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert scrape(registry).get(key, 0) >= 1


def test_all_three_streams(make_handler: Any, app_logger: logging.Logger, kafka_topic: str) -> None:
    """Application, audit and security records are counted under their own event_type and topic."""
    handler = make_handler(audit_topic=f"{kafka_topic}.audit", security_topic=f"{kafka_topic}.security")
    streams = [logging.getLogger("logkafka.audit"), logging.getLogger("logkafka.security")]
    for logger in (app_logger, *streams):
        logger.addHandler(handler)
    try:
        for n in range(7):
            app_logger.info("app %d", n)
        for n in range(3):
            logkafka.audit("order.place", actor="u1", resource=f"order:{n}", outcome="success")
        logkafka.security("login", "u1", "/admin", "deny")
        assert handler.flush() is True
    finally:
        for logger in streams:
            logger.removeHandler(handler)
    registry = CollectorRegistry()
    registry.register(logkafka.PrometheusCollector(handler))
    got = scrape(registry)
    for event_type, topic, n in (("application", kafka_topic, 7), ("audit", f"{kafka_topic}.audit", 3),
                                 ("security", f"{kafka_topic}.security", 1)):
        key = ("logging_events_published_total", (("event_type", event_type), ("status", "delivered"),
                                                  ("topic", topic)))
        assert got[key] == n, (event_type, {k: v for k, v in got.items() if "published" in k[0]})
        assert got[("logging_publisher_started", (("event_type", event_type), ("topic", topic)))] == 1.0


MULTIPROCESS_APP = """
    import logging, os, sys
    import logkafka
    servers, topic = sys.argv[1:3]
    handler = logkafka.KafkaLogHandler(servers, topic, audit_topic=topic + ".audit", spool_dir=False)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    log = logging.getLogger("app")
    log.info("the parent's own record")
    children = []
    for n in range(3):  # forked workers, as gunicorn makes them
        pid = os.fork()
        if pid == 0:
            for i in range(50 * (n + 1)):
                log.info("child %d record %d", n, i)
            logkafka.audit("job.run", actor=f"worker-{n}", resource="job:1", outcome="success")
            logkafka.shutdown(30)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    logkafka.shutdown(30)
"""


def test_multiprocess_mode_adds_up_every_process(kafka_broker: Any, kafka_topic: str, tmp_path: Path) -> None:
    """PROMETHEUS_MULTIPROC_DIR set: each process (a parent and 3 forked children) writes its own values, and
    prometheus_client's MultiProcessCollector adds them up: 301 application records, 3 audit records."""
    from prometheus_client import multiprocess

    metrics = tmp_path / "metrics"
    metrics.mkdir()
    kafka_broker.create_topic(f"{kafka_topic}.audit")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics),
           "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(MULTIPROCESS_APP), kafka_broker.bootstrap_servers,
                          kafka_topic], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert len(list(metrics.glob("counter_*.db"))) == 4, sorted(p.name for p in metrics.iterdir())  # a file a pid
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(metrics))
    got = scrape(registry)
    app = ("logging_events_published_total", (("event_type", "application"), ("status", "delivered"),
                                              ("topic", kafka_topic)))
    audit = ("logging_events_published_total", (("event_type", "audit"), ("status", "delivered"),
                                                ("topic", f"{kafka_topic}.audit")))
    assert (got[app], got[audit]) == (1 + 50 + 100 + 150, 3), (got, run.stderr)
