"""An asyncio service with logkafka: each task keeps its own context, executors too.

Run it::

    KAFKA_BOOTSTRAP_SERVERS=localhost:9092 python examples/asyncio_service.py --jobs 3

A batch of jobs runs concurrently. Each job is an asyncio task that binds its
own ``correlation_id`` and ``job_id``: a task runs in a copy of the context it
was created in, so what one job binds never shows on another job's records.

Blocking work goes to a thread pool with ``loop.run_in_executor``; executor
threads do not inherit the caller's context, so the callable is wrapped in
``logkafka.with_context``, and its records carry the job's context as well.
``logkafka.timed`` logs the fetch step as started / completed with its duration.

Kafka is ``KAFKA_BOOTSTRAP_SERVERS``; the topic ``LOGKAFKA_TOPIC`` or its default.
Prints each job's correlation id, one a line.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import logging.config
import uuid
from typing import Any

import logkafka

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "logkafka.JsonFormatter", "service_name": "report-builder"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "json"},
        "kafka": {"class": "logkafka.KafkaLogHandler", "formatter": "json"},
    },
    "loggers": {"asyncio": {"level": "WARNING"}},
    "root": {"level": "INFO", "handlers": ["console", "kafka"]},
}
log = logging.getLogger("reports.jobs")


def render_pdf(rows: list[str]) -> str:
    """Blocking, CPU-bound work: runs on an executor thread."""
    digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()[:12]
    log.info("Rendered %d rows", len(rows), extra={"code": "REPORT_RENDERED", "digest": digest})
    return digest


async def fetch_rows(source: str, count: int) -> list[str]:
    await asyncio.sleep(0.01)  # the database
    return [f"{source}-{i}" for i in range(count)]


async def run_job(job_id: str, source: str) -> str:
    correlation_id = str(uuid.uuid4())
    # bound inside this task: the task has its own copy of the context
    logkafka.bind(correlation_id=correlation_id, job_id=job_id)
    log.info("Job %s started", job_id, extra={"code": "JOB_STARTED", "source": source})
    async with logkafka.timed("fetch_rows", logger=log, source=source):
        rows = await fetch_rows(source, 50)
    loop = asyncio.get_running_loop()
    digest = await loop.run_in_executor(None, logkafka.with_context(render_pdf), rows)
    log.info("Job %s done", job_id, extra={"code": "JOB_DONE", "digest": digest})
    return correlation_id


async def main(jobs: int) -> list[str]:
    logkafka.bind(batch_id=uuid.uuid4().hex[:8])  # inherited by every task created below
    log.info("Batch of %d jobs starting", jobs, extra={"code": "BATCH_STARTED"})
    ids = await asyncio.gather(*(run_job(f"job-{n}", f"table{n}") for n in range(jobs)))
    log.info("Batch done", extra={"code": "BATCH_DONE"})
    return list(ids)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the report builder")
    parser.add_argument("--jobs", type=int, default=3)
    args = parser.parse_args()
    logging.config.dictConfig(LOGGING)
    for cid in asyncio.run(main(args.jobs)):
        print(cid)
    logging.shutdown()  # what interpreter exit does anyway: deliver what is queued
