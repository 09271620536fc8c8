"""The process's handlers as a whole: the registry, one exit budget shared by every flush and close at
exit, ``shutdown()``, ``health()``, SIGTERM as an orderly exit, and multiprocessing children."""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
import weakref
from typing import Any, NamedTuple, Protocol

from logkafka._health import asgi_app, combine, wsgi_app
from logkafka._report import report

_SPILL_WAIT = 5.0  # seconds close() waits for the thread to spool what the broker did not take
_SPILL_SHARE = 0.4  # of an exit budget kept for writing what is unsettled to the spool (2 s at most)


class Handler(Protocol):
    """What the process asks of a handler (``KafkaLogHandler``)."""

    settings: Any

    def flush(self, timeout: float | None = None) -> bool: ...
    def close(self) -> None: ...
    def health(self) -> dict[str, Any]: ...


#: Every live handler (for exit, health, the fork hooks).
_HANDLERS: weakref.WeakSet[Any] = weakref.WeakSet()
_EXITING = False  # set at interpreter exit, before logging.shutdown() flushes the handlers
#: The monotonic time by which the process's exit is done with logging: every flush() and close()
#: at exit (exit hooks, then logging.shutdown()) shares this one budget.
_EXIT_DEADLINE: float | None = None
_FINALIZER_PID = 0  # the process whose multiprocessing finalizer is registered (or that needs none)


def register(handler: Handler) -> None:
    """Count ``handler`` among the process's handlers (held weakly)."""
    _HANDLERS.add(handler)


def handlers() -> list[Any]:
    """The live handlers."""
    return list(_HANDLERS)


def is_handler(obj: object) -> bool:
    """Whether ``obj`` is one of the process's handlers."""
    try:
        return obj in _HANDLERS
    except TypeError:  # not hashable, not weakly referenceable: not ours
        return False


def exiting() -> bool:
    """Whether the interpreter (or ``shutdown()``) is ending the process's logging."""
    return _EXITING


def _at_exit() -> None:
    _start_exit(None)


def _start_exit(timeout: float | None) -> float:
    """Mark the process as exiting and fix its budget (once: a later start only shortens it)."""
    global _EXITING, _EXIT_DEADLINE
    _EXITING = True
    if timeout is None:
        timeout = max((h.settings.flush_timeout for h in handlers() if h.settings.enabled), default=0.0)
    deadline = time.monotonic() + max(0.0, timeout)
    if _EXIT_DEADLINE is None or deadline < _EXIT_DEADLINE:
        _EXIT_DEADLINE = deadline
    return _EXIT_DEADLINE


class ExitTime(NamedTuple):
    """How a flush or a close at exit shares what is left of the exit's budget."""

    wait: float  #: seconds to wait for acknowledgements
    spill: float  #: seconds kept for writing what is unsettled to the spool


def exit_left(limit: float) -> ExitTime:
    """How long to wait for acknowledgements (at most ``limit``) and for the spool write; within the exit's
    budget at exit."""
    if not _EXITING or _EXIT_DEADLINE is None:
        return ExitTime(limit, _SPILL_WAIT)
    left = max(0.0, _EXIT_DEADLINE - time.monotonic())
    spill = min(2.0, left * _SPILL_SHARE)
    return ExitTime(min(limit, left - spill), spill)


def spill_deadline(spill: float) -> float:
    """The time by which what is unsettled must be in the spool: what is left of the exit budget (at least
    ``spill``), up to ``_SPILL_WAIT`` seconds; ``_SPILL_WAIT`` when not exiting."""
    if _EXIT_DEADLINE is None or not _EXITING:
        return time.monotonic() + _SPILL_WAIT
    return time.monotonic() + max(spill, min(_SPILL_WAIT, _EXIT_DEADLINE - time.monotonic()))


def shutdown(timeout: float | None = None) -> bool:
    """Deliver what every ``KafkaLogHandler`` holds and close them, all within ``timeout`` seconds.

    For exit hooks (gunicorn's ``worker_exit``, Celery's ``worker_process_shutdown``):
    ``timeout`` defaults to the largest ``flush_timeout``; what is not acknowledged
    by then is written to the spool. ``logging.shutdown()`` at exit then spends only
    what is left of the same budget. Returns whether everything was delivered.
    """
    _start_exit(timeout)
    done = True
    for handler in handlers():
        try:
            done = handler.flush() and done
            handler.close()
        except Exception as exc:
            done = False
            report("exit", f"could not deliver a handler's records at exit: {type(exc).__name__}: {exc}")
    prometheus = sys.modules.get("logkafka._prometheus")  # never imported: nothing is exported
    if prometheus is not None:
        prometheus.sync_multiprocess()  # the final counts, for prometheus_client's multiprocess mode
    return done


atexit.register(_at_exit)  # registered after logging's own hook, so it runs before logging.shutdown()


def note_process() -> None:
    """In a multiprocessing child, register a finalizer that delivers what the handlers hold.

    multiprocessing ends its children with ``os._exit``: ``atexit`` and so
    ``logging.shutdown()`` never run there, but its own finalizers do, when the
    child's target returns (``Pool`` workers: at ``close()`` and ``join()``).
    """
    global _FINALIZER_PID
    pid = os.getpid()
    if pid == _FINALIZER_PID:
        return
    _FINALIZER_PID = pid
    process = sys.modules.get("multiprocessing.process")
    if process is None or process.parent_process() is None:
        return  # not a multiprocessing child: atexit runs logging.shutdown()
    from multiprocessing import util

    util.Finalize(None, shutdown, exitpriority=100)


def health() -> dict[str, Any]:
    """The process's logging health: the worst status of its handlers, with every reason.

    ``{"status": "ok" | "degraded" | "failing", "reasons": [...], "handlers": [...]}``:
    failing when records were lost in the last minute or no broker answers and there is
    no usable spool; degraded when no broker answers (records go to the spool), records
    wait in the spool, or the spool is off or refuses writes.
    """
    return combine(h.health() for h in handlers() if h.settings.enabled)


#: A WSGI app for a health route: ``health()`` as JSON, status 200, or 503 when failing.
health_wsgi = wsgi_app(health)
#: The same as an ASGI app.
health_asgi = asgi_app(health)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    # A second SIGTERM (supervisors repeat it) must not cut short the shutdown it started; a SIGKILL still ends it.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)  # unwinds: finally blocks, atexit, logging.shutdown() deliver the records


def install_sigterm() -> bool:
    """Turn SIGTERM into ``SystemExit(143)``, only when the app has no handler of its own (and on the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return False
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    except (ValueError, OSError):
        return False
    return True
