"""Celery: the sender's context travels with each task, and prefork children deliver before they exit."""

from __future__ import annotations

from typing import Any

from logkafka._context import bind, clear_context, get_context
from logkafka._process import shutdown

#: The task message header that carries the bound context.
CONTEXT_HEADER = "logkafka_context"
_CONNECTED: list[bool] = []


def _put_context_in_headers(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None:
        headers[CONTEXT_HEADER] = get_context()


def _bind_task_context(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    clear_context()
    sent = getattr(getattr(task, "request", None), CONTEXT_HEADER, None)
    if isinstance(sent, dict) and sent:
        bind(**sent)
    if not (isinstance(sent, dict) and sent.get("correlation_id")):
        bind(correlation_id=task_id)  # sent with no id bound (celery beat, a shell): the task's own id
    bind(task_name=getattr(task, "name", None), task_id=task_id)


def _clear_task_context(**_: Any) -> None:
    clear_context()


def _deliver_before_exit(**_: Any) -> None:
    shutdown()  # a prefork child ends with os._exit: no atexit, no logging.shutdown()


def connect_celery() -> None:
    """Connect logkafka to Celery's signals (once; call it where the Celery app is defined).

    - ``before_task_publish``: the sender's bound context (``get_context()``) goes into the
      task message's headers;
    - ``task_prerun`` / ``task_postrun``: the worker binds it, with ``task_name`` and
      ``task_id``, for the task's records, and clears it afterwards. A task sent with no
      ``correlation_id`` bound (by celery beat, say) gets its task id as one;
    - ``worker_process_shutdown``: a prefork child (recycled by ``--max-tasks-per-child``,
      or at the worker's stop) delivers what it holds before it exits, within
      ``flush_timeout`` (what Kafka does not take goes to the spool).
    """
    if _CONNECTED:
        return
    from celery import signals  # type: ignore[import-untyped]

    signals.before_task_publish.connect(_put_context_in_headers, weak=False)
    signals.task_prerun.connect(_bind_task_context, weak=False)
    signals.task_postrun.connect(_clear_task_context, weak=False)
    signals.worker_process_shutdown.connect(_deliver_before_exit, weak=False)
    _CONNECTED.append(True)
