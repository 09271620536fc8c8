"""Gunicorn configuration with logkafka, serving the Flask example.

Run it::

    KAFKA_BOOTSTRAP_SERVERS=localhost:9092 gunicorn -c examples/gunicorn.conf.py examples.flask_app:app

Gunicorn applies ``logconfig_dict`` in the master process, before it forks the
workers. A ``KafkaLogHandler`` made before a fork is safe to inherit: in each
forked worker it starts a queue, thread and producer of its own on the worker's
first record (an ``os.register_at_fork`` hook), and the master's queued records
stay the master's. Nothing else is needed; ``preload_app = True`` works too.

Every record has the worker's ``process`` id. The application's records, the
middleware's ``request_completed`` records and gunicorn's own ``gunicorn.error``
lines (worker boot, exit) go to stdout and to Kafka. gunicorn's access log goes
nowhere (a ``NullHandler``: with ``logconfig_dict`` set, gunicorn logs access
lines whatever ``accesslog`` says), since ``request_completed`` says the same
with the correlation id.

A stop (``SIGTERM``, as Kubernetes sends) fits ``graceful_timeout``: each
worker's ``worker_exit`` delivers what it holds within one budget, a few seconds
less than ``graceful_timeout``, and writes what Kafka did not take by then (at
once when no broker answers) to the spool; the interpreter's exit spends no more
time on it. The next start on the same ``spool_dir`` sends it. Mount the spool on
a volume that outlives the pod (see ``examples/kubernetes``).

Each worker and the master hold their own records in memory during an outage, at
most ``LOGKAFKA_MEMORY_BUDGET`` each (16 MiB by default): 4 workers and the master
80 MiB in all. ``LOGKAFKA_LEVELS_FILE`` changes loggers' levels in every worker
while they run. With ``PROMETHEUS_MULTIPROC_DIR`` set, every worker writes its
logging metrics there (serve them with ``MultiProcessCollector``); ``child_exit``
below marks a stopped worker's live gauges dead, as ``prometheus_client`` asks.

Settings from the environment: ``GUNICORN_BIND`` (default ``127.0.0.1:8000``),
``GUNICORN_WORKERS`` (default 2), ``KAFKA_BOOTSTRAP_SERVERS``, and the topics
``LOGKAFKA_TOPIC`` / ``LOGKAFKA_AUDIT_TOPIC``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_class = "sync"
timeout = 30
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))

logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "logkafka.JsonFormatter", "service_name": "inventory"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"},
        # bootstrap servers and topics from KAFKA_BOOTSTRAP_SERVERS, LOGKAFKA_TOPIC, LOGKAFKA_AUDIT_TOPIC
        "kafka": {"class": "logkafka.KafkaLogHandler", "formatter": "json"},
        "null": {"class": "logging.NullHandler"},
    },
    "loggers": {
        # gunicorn's own loggers, which gunicorn sets not to propagate
        "gunicorn.error": {"level": "INFO", "handlers": ["console", "kafka"], "propagate": False},
        # the middleware's request_completed records replace the access log
        "gunicorn.access": {"level": "INFO", "handlers": ["null"], "propagate": False},
    },
    "root": {"level": "INFO", "handlers": ["console", "kafka"]},
}


def post_fork(server: Any, worker: Any) -> None:
    """In each new worker: a record of its own, so a worker that never gets a request still shows up."""
    logging.getLogger("inventory.lifecycle").info(
        "Worker %s ready", worker.pid, extra={"code": "WORKER_READY", "worker_pid": worker.pid})


def worker_exit(server: Any, worker: Any) -> None:
    """A worker that stops delivers what it holds, within the stop's budget (what Kafka does not take
    in time goes to the spool): the master waits ``graceful_timeout`` before it kills a worker."""
    import logkafka

    logkafka.shutdown(timeout=max(1.0, server.cfg.graceful_timeout - 5))


def child_exit(server: Any, worker: Any) -> None:
    """In the master, after a worker ended: its live gauges leave prometheus_client's multiprocess files."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
