"""``timed``: a block or a function logged as started, then completed or failed, with its duration."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import re
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, cast

from logkafka import _context
from logkafka._report import report
from logkafka._snapshot import jsonable
from logkafka._values import level_of

_F = TypeVar("_F", bound=Callable[..., Any])
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*")
#: Exceptions that end a block without it failing: cancellation and shutdown.
_NOT_FAILURES = (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)


class timed(_context.Block):
    """Log a block or a function as ``<name>_started``, then ``<name>_completed`` or ``<name>_failed``.

    A context manager (``with`` / ``async with``) and a decorator (plain and ``async``
    functions)::

        with logkafka.timed("import_batch", batch_id=b.id):
            ...

        @logkafka.timed("charge_card", provider="stripe")
        async def charge(order): ...

    ``context`` is bound for the duration, so it is on these three records and on every
    record logged inside. ``<name>_completed`` carries ``duration_ms``; ``<name>_failed``
    (at ERROR) carries ``duration_ms`` and the stack trace, and the exception goes on.
    A block ended by cancellation, ``KeyboardInterrupt`` or ``SystemExit`` logs
    ``<name>_cancelled`` at WARNING instead, without a stack trace. Each record has the
    ``code`` ``<NAME>_STARTED`` (``_COMPLETED``, ``_FAILED``, ``_CANCELLED``).

    ``logger`` (a name or a :class:`logging.Logger`) defaults to the logger of the
    module that uses ``timed``; ``level`` (default INFO) is that of the started and
    completed records. After the block, :attr:`duration_ms` holds its duration.
    """

    def __init__(self, name: str, *, logger: logging.Logger | str | None = None,
                 level: int | str = logging.INFO, **context: Any) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"name: expected a word such as 'import_batch' (letters, digits, '_', '.', '-'), "
                             f"got {name!r}")
        if logger is None:
            caller = sys._getframe(1).f_globals.get("__name__")
            logger = caller if isinstance(caller, str) and caller != "__main__" else "timed"
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        elif not isinstance(logger, logging.Logger):
            raise ValueError(f"logger: expected a logger name or a logging.Logger, got {logger!r}")
        try:
            self._level = level_of(level)
        except ValueError:
            raise ValueError(f"level: unknown logging level {level!r}") from None
        self.name = name
        self.logger = logger
        self.context = context
        self._upper = name.upper().replace(".", "_").replace("-", "_")
        self._values = {k: jsonable(v) for k, v in context.items()}
        #: The duration of the last block, in milliseconds (``None`` before one ended).
        self.duration_ms: float | None = None

    # -- the context manager (Block's __enter__ / __aenter__ call _open, its __exit__ / __aexit__ _close) ------
    def _open(self) -> None:
        self._start(5)

    def _close(self, exc_type: type[BaseException] | None, exc: BaseException | None,
               tb: TracebackType | None) -> None:
        self._end(exc_type, exc, tb, 4)

    def _start(self, stacklevel: int) -> None:
        """Bind the context, log ``<name>_started``, start the clock (kept with this context's entry)."""
        _context.enter(self, self._values, time.perf_counter())
        self._log(self._level, "started", None, stacklevel)

    def _end(self, exc_type: type[BaseException] | None, exc: BaseException | None,
             tb: TracebackType | None, stacklevel: int) -> None:
        is_open, started = _context.entered(self)
        ms = round((time.perf_counter() - started) * 1000.0, 3) if is_open else None
        self.duration_ms = ms
        try:
            if exc_type is None:
                self._log(self._level, "completed", ms, stacklevel + 1)
            elif issubclass(exc_type, _NOT_FAILURES):
                self._log(logging.WARNING, "cancelled", ms, stacklevel + 1)
            else:
                self._log(logging.ERROR, "failed", ms, stacklevel + 1, (exc_type, exc, tb))
        finally:
            _context.leave(self)

    def _log(self, level: int, outcome: str, ms: float | None, stacklevel: int,
             exc_info: Any = None) -> None:
        """Log one record; a failing filter or handler is reported, never raised into the block."""
        try:
            if not self.logger.isEnabledFor(level):
                return
            extra: dict[str, Any] = {"code": f"{self._upper}_{outcome.upper()}"}
            if ms is not None:
                extra["duration_ms"] = ms
            self.logger.log(level, "%s_%s", self.name, outcome, extra=extra, exc_info=exc_info,
                            stacklevel=stacklevel)
        except RecursionError:
            raise
        except Exception as exc:
            report("timed", f"timed({self.name!r}) could not log {outcome}: {type(exc).__name__}: {exc}")

    # -- the decorator --------------------------------------------------------------
    def __call__(self, fn: _F) -> _F:
        """Decorate ``fn``: every call is timed (each call's entry is kept per context, so calls in
        several threads or tasks at once, and recursive calls, each time themselves); the records
        point at the caller of ``fn``."""
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(f"timed cannot decorate the generator function {fn.__qualname__}: "
                            "use it as a context manager inside")
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with _Call(self):
                    return await fn(*args, **kwargs)

            return cast(_F, run_async)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with _Call(self):
                return fn(*args, **kwargs)

        return cast(_F, run)


class _Call:
    """One call of a function ``timed`` decorates, as a ``with`` block inside its wrapper: the records
    point at the caller of the function."""

    __slots__ = ("_timed",)

    def __init__(self, block: timed) -> None:
        self._timed = block

    def __enter__(self) -> None:
        self._timed._start(5)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._timed._end(exc_type, exc, tb, 4)
