"""Context bound to the current thread or asyncio task, carried into every record.

The context is an immutable snapshot stored in a ``ContextVar``: ``bind`` never
mutates the current mapping, it replaces it, so a record that captured the
context keeps exactly what was bound at the moment of the call.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from logkafka._snapshot import jsonable

_EMPTY: Mapping[str, Any] = {}
_context: ContextVar[Mapping[str, Any]] = ContextVar("logkafka_context", default=_EMPTY)


#: The live context mapping (never mutated in place, so safe to keep); no copy.
current = _context.get


def bind(**values: Any) -> None:
    """Add ``values`` to the context of the current thread or task."""
    if values:
        _context.set({**_context.get(), **{k: jsonable(v) for k, v in values.items()}})


def unbind(*keys: str) -> None:
    """Remove ``keys`` from the current context; missing keys are ignored."""
    ctx = _context.get()
    if any(k in ctx for k in keys):
        _context.set({k: v for k, v in ctx.items() if k not in keys})


def clear_context() -> None:
    """Remove every key from the current context."""
    _context.set(_EMPTY)


def get_context() -> dict[str, Any]:
    """Return a copy of the current context."""
    return dict(_context.get())


#: The blocks open in this context, innermost last: (owner, token of the context before, owner's data).
_open: ContextVar[tuple[tuple[object, Token[Mapping[str, Any]], Any], ...]] = ContextVar("logkafka_open", default=())


def enter(owner: object, values: Mapping[str, Any], data: Any = None) -> None:
    """Bind ``values`` (already JSON-safe) for a block of ``owner``, remembering ``data`` with it.

    The entry is kept per context, so one ``owner`` may be open in several tasks or
    threads at once and each exit finds its own entry.
    """
    token = _context.set({**_context.get(), **values})
    _open.set((*_open.get(), (owner, token, data)))


def entered(owner: object) -> tuple[bool, Any]:
    """Whether ``owner`` has a block open in this context, and the data of the innermost one."""
    for entry_owner, _, data in reversed(_open.get()):
        if entry_owner is owner:
            return True, data
    return False, None


def leave(owner: object) -> None:
    """End the innermost block of ``owner`` in this context: the context is what it was on entry.

    A block entered in a context this one does not descend from left nothing here
    to undo. One entered before this context was copied from its own (entered in a
    task, exited in another) is undone by setting the context it replaced.
    """
    entries = _open.get()
    for i in range(len(entries) - 1, -1, -1):
        entry_owner, token, _ = entries[i]
        if entry_owner is owner:
            _open.set(entries[:i] + entries[i + 1:])
            try:
                _context.reset(token)
            except ValueError:  # entered in the context this one was copied from
                _context.set(token.old_value if token.old_value is not Token.MISSING else _EMPTY)
            return


_B = TypeVar("_B", bound="Block")


class Block(AbstractContextManager[Any], AbstractAsyncContextManager[Any]):
    """A block for ``with`` and ``async with`` alike: entering and leaving it do the same either way.

    Subclasses say what in ``_open`` and ``_close``; each is called from ``__enter__`` /
    ``__aenter__`` and ``__exit__`` / ``__aexit__`` directly (one frame below the caller's).
    """

    __slots__ = ()

    def _open(self) -> None:
        raise NotImplementedError

    def _close(self, exc_type: type[BaseException] | None, exc: BaseException | None,
               tb: TracebackType | None) -> None:
        raise NotImplementedError

    def __enter__(self: _B) -> _B:
        self._open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close(exc_type, exc, tb)

    async def __aenter__(self: _B) -> _B:
        self._open()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.__exit__(*exc_info)


class bound(Block):
    """Bind ``values`` for the duration of a ``with`` or ``async with`` block.

    On exit the context is restored to what it was on entry, whatever the
    block bound or unbound meanwhile. One instance may be used by several tasks
    or threads at once, and nested.
    """

    __slots__ = ("_values",)

    def __init__(self, **values: Any) -> None:
        self._values = {k: jsonable(v) for k, v in values.items()}

    def _open(self) -> None:
        enter(self, self._values)

    def _close(self, exc_type: type[BaseException] | None, exc: BaseException | None,
               tb: TracebackType | None) -> None:
        leave(self)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def with_context(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Wrap ``fn`` to run in a copy of the context of this moment, wherever it is called.

    For worker threads and executors, which do not inherit the caller's context::

        executor.submit(logkafka.with_context(work), item)
        threading.Thread(target=logkafka.with_context(work)).start()
        loop.run_in_executor(None, logkafka.with_context(work), item)

    The copy holds every context variable: the bound logkafka context and the active
    OpenTelemetry span. Each call runs in its own copy, so what the callable binds stays
    in that call and never reaches the caller or another call.
    """
    captured = contextvars.copy_context()

    @functools.wraps(fn)
    def run_in_copy(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return captured.copy().run(fn, *args, **kwargs)

    return run_in_copy
