"""A worker process as deployed on Kubernetes: JSON on stdout for the collector, and Kafka.

Run it locally::

    KAFKA_BOOTSTRAP_SERVERS=localhost:9092 python examples/kubernetes/app.py --jobs 5

On Kubernetes, see deployment.yaml and README.md in this directory. Logging comes
from logging.yaml beside this file (``LOGGING_CONFIG`` names another). The pod's
namespace and node (``POD_NAMESPACE``, ``NODE_NAME``, from the downward API) are
bound as context, so every record carries them; the pod name is the service's
``instance_id`` (``SERVICE_INSTANCE_ID``).

``SIGTERM`` (what Kubernetes sends to stop a pod) lets the current job finish, then
the process exits normally, so ``logging.shutdown`` delivers what is queued before
the pod goes. Python's default for ``SIGTERM`` would end it at once, without
running exit handlers.
"""

from __future__ import annotations

import argparse
import logging
import logging.config
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from types import FrameType

import yaml

import logkafka

log = logging.getLogger("payments.worker")


#: The service's name on every record and in the Kafka client's client.id, unless OTEL_SERVICE_NAME
#: (set in deployment.yaml) names it; without either, records would say "unknown_service:python".
SERVICE_NAME = "payments-worker"


def configure_logging() -> None:
    os.environ.setdefault("OTEL_SERVICE_NAME", SERVICE_NAME)
    path = Path(os.environ.get("LOGGING_CONFIG") or Path(__file__).with_name("logging.yaml"))
    logging.config.dictConfig(yaml.safe_load(path.read_text(encoding="utf-8")))


class Shutdown:
    """Set by ``SIGTERM``: the loop stops after the current job, and ``main`` returns."""

    requested = False

    @classmethod
    def request(cls, signum: int, frame: FrameType | None) -> None:
        cls.requested = True


def handle_job(n: int) -> None:
    """One unit of work, under its own correlation id."""
    with logkafka.bound(correlation_id=str(uuid.uuid4()), job=n):
        log.debug("Job %d received", n, extra={"code": "JOB_RECEIVED"})
        with logkafka.timed("settlement", logger=log, amount=12.5 * n):
            time.sleep(0.005)
        if n % 4 == 3:
            log.warning("Job %d settled late", n, extra={"code": "SETTLEMENT_LATE"})


def main() -> int:
    parser = argparse.ArgumentParser(description="payments worker")
    parser.add_argument("--jobs", type=int, default=0, help="stop after this many jobs (default: run until stopped)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between jobs")
    args = parser.parse_args()
    configure_logging()
    signal.signal(signal.SIGTERM, Shutdown.request)
    logkafka.bind(k8s_namespace=os.environ.get("POD_NAMESPACE", "local"), k8s_node=os.environ.get("NODE_NAME", "local"))
    log.info("Worker started", extra={"code": "WORKER_STARTED"})
    n = 0
    while not Shutdown.requested and (not args.jobs or n < args.jobs):
        handle_job(n)
        n += 1
        if not Shutdown.requested and (not args.jobs or n < args.jobs):
            time.sleep(args.interval)  # on SIGTERM the handler runs, the sleep goes on, then the loop ends
    log.info("Worker stopping after %d jobs", n, extra={"code": "WORKER_STOPPING", "jobs_done": n})
    return 0  # sys.exit, then atexit's logging.shutdown: the handlers deliver what is queued


if __name__ == "__main__":
    sys.exit(main())
