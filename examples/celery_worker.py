"""Celery with logkafka: the sender's context travels with each task to the worker.

Run a worker, then send a few tasks::

    celery -A examples.celery_worker worker --loglevel INFO   # prefork; --pool solo works too
    python -m examples.celery_worker

The broker is ``CELERY_BROKER_URL`` (default ``redis://localhost:6379/0``). For
a machine without one, set ``CELERY_FILESYSTEM_DIR`` to a directory: both sides
then pass messages through files there (kombu's filesystem transport).
Kafka is ``KAFKA_BOOTSTRAP_SERVERS``; topics are ``LOGKAFKA_TOPIC`` and
``LOGKAFKA_AUDIT_TOPIC`` or their defaults.

``logkafka.connect_celery()`` connects Celery's signals:

* ``before_task_publish`` (in the sender) puts ``logkafka.get_context()`` into the
  task message's headers;
* ``task_prerun`` (in the worker) binds it, with the task's name and id, before the
  task runs; ``task_postrun`` clears it, so nothing leaks into the next task. A task
  sent with no correlation id bound (by celery beat, or from a shell) gets its
  task id as its ``correlation_id``;
* ``worker_process_shutdown``: a prefork child ends with ``os._exit`` (when
  ``--max-tasks-per-child`` recycles it, or at the worker's stop), so Python's
  exit handlers never run there; this delivers what it holds first.

Every record the task logs therefore carries the ``correlation_id`` (and any
other key) that was bound where the task was sent. Celery beat needs nothing
more: run it as ``celery -A examples.celery_worker beat``; the tasks it sends are
logged under their own task ids.
"""

from __future__ import annotations

import logging
import logging.config
import os
import uuid
from typing import Any

from celery import Celery, signals

import logkafka

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "logkafka.JsonFormatter", "service_name": "billing-worker"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"},
        # bootstrap_servers and topics come from KAFKA_BOOTSTRAP_SERVERS and LOGKAFKA_TOPIC
        "kafka": {"class": "logkafka.KafkaLogHandler", "formatter": "json"},
    },
    "loggers": {
        # Celery's own chatter: warnings and above only
        "celery": {"level": "WARNING"},
        "kombu": {"level": "WARNING"},
    },
    "root": {"level": "INFO", "handlers": ["console", "kafka"]},
}


def _broker_settings() -> dict[str, Any]:
    folder = os.environ.get("CELERY_FILESYSTEM_DIR")
    if not folder:
        return {"broker_url": os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0")}
    os.makedirs(folder, exist_ok=True)
    return {
        "broker_url": "filesystem://localhost/",
        "broker_transport_options": {"data_folder_in": folder, "data_folder_out": folder,
                                     "control_folder": os.path.join(folder, "control")},
    }


app = Celery("billing")
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    **_broker_settings(),
)
log = logging.getLogger("billing.tasks")


# -- logging: ours, not Celery's --------------------------------------------------------
@signals.setup_logging.connect
def configure_logging(**_: Any) -> None:
    """Connected to ``setup_logging``, so the worker uses this configuration instead of its own."""
    logging.config.dictConfig(LOGGING)


# -- the context in the task's headers, and delivery before a prefork child exits ----------
logkafka.connect_celery()


# -- tasks ------------------------------------------------------------------------------
@app.task(name="billing.charge_invoice")
def charge_invoice(invoice_id: str, amount: float) -> str:
    log.info("Charging invoice %s", invoice_id, extra={"code": "INVOICE_CHARGING", "invoice_id": invoice_id,
                                                         "amount": amount})
    log.debug("Invoice %s amount checked", invoice_id, extra={"code": "INVOICE_CHECKED"})  # at DEBUG only
    with logkafka.timed("payment_capture", invoice_id=invoice_id):
        receipt = f"rcpt-{uuid.uuid4().hex[:10]}"
    logkafka.audit("invoice.charge", actor="billing-worker", resource=f"invoice/{invoice_id}", outcome="success")
    log.info("Invoice %s charged", invoice_id, extra={"code": "INVOICE_CHARGED", "receipt": receipt})
    return receipt


def send_invoices(count: int = 3) -> list[str]:
    """What a web request or a cron job does: send tasks, each under its own correlation id."""
    sent = []
    for n in range(count):
        correlation_id = str(uuid.uuid4())
        with logkafka.bound(correlation_id=correlation_id, tenant_id="acme"):
            invoice_id = f"inv-{1000 + n}"
            charge_invoice.delay(invoice_id, 10.0 * (n + 1))
            log.info("Invoice %s sent for charging", invoice_id,
                     extra={"code": "INVOICE_SENT", "invoice_id": invoice_id})
        sent.append(correlation_id)
    return sent


if __name__ == "__main__":
    configure_logging()
    for cid in send_invoices(int(os.environ.get("INVOICE_COUNT", "3"))):
        print(cid)
    logging.shutdown()
