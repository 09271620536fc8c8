"""What the lint of ``logkafka check`` reads and says: the live logger tree, the handlers it checks, its findings.

:class:`LoggerTree` is the logging configuration as ``dictConfig`` built it: the
loggers, their handlers, and which ``KafkaLogHandler`` each handler leads to
(through a ``QueueHandler``'s listener or a ``MemoryHandler``'s target).
"""

from __future__ import annotations

import gc
import logging
import logging.handlers
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from logkafka._handler import KafkaLogHandler


@dataclass(frozen=True)
class Finding:
    """One problem: its rule's code, the logger/handler/formatter it is about, what is lost, and the fix."""

    code: str
    name: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"warning [{self.code}]: {self.problem}\n  fix: {self.fix}"

    def matches(self, spec: str) -> bool:
        """Whether ``--ignore spec`` (``CODE`` or ``CODE:NAME``) covers this finding."""
        code, sep, name = spec.partition(":")
        return code == self.code and (not sep or name == self.name)


@dataclass(frozen=True)
class Target:
    """One KafkaLogHandler of the configuration, with where the application would spool its records."""

    name: str
    handler: KafkaLogHandler
    spool_dir: str | None = None  # None: no spool
    spool_setting: str = "spool_dir"  # what chose it: spool_dir, LOGKAFKA_SPOOL_DIR, the default


def named_handlers() -> dict[str, logging.Handler]:
    """Every handler by the name dictConfig gave it (the logging module keeps them in ``logging._handlers``,
    its only registry of names)."""
    return {str(n): h for n, h in list(getattr(logging, "_handlers", {}).items()) if isinstance(h, logging.Handler)}


def quoted(names: Collection[str]) -> str:
    """``'a'``, ``'a' and 'b'``, ``'a', 'b' and 'c'``."""
    shown = [repr(n) for n in names]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


class LoggerTree:
    """The loggers and handlers dictConfig made, and which KafkaLogHandler each handler leads to."""

    def __init__(self, config: Mapping[str, Any], targets: Collection[Target]) -> None:
        self.config = config
        self.root = logging.getLogger()
        self.loggers: dict[str, logging.Logger] = {"root": self.root}
        self.loggers.update((n, lg) for n, lg in sorted(logging.Logger.manager.loggerDict.items())
                            if isinstance(lg, logging.Logger))
        self.kafka: dict[int, str] = {id(t.handler): t.name for t in targets}
        self.targets = list(targets)
        section = config.get("loggers")
        self.configured = [self.loggers[n] for n in (section if isinstance(section, Mapping) else ())
                           if isinstance(n, str) and n and n in self.loggers]
        # a QueueListener made in code (Python < 3.12, or the config file's own) is found by its queue
        self.listeners: dict[int, list[logging.Handler]] = {}
        for obj in gc.get_objects():
            if isinstance(obj, logging.handlers.QueueListener):
                self.listeners.setdefault(id(obj.queue), []).extend(obj.handlers)
        self.handler_names = {id(h): n for n, h in named_handlers().items()}

    def name_of(self, handler: logging.Handler) -> str:
        """The name the configuration gives ``handler``."""
        return self.kafka.get(id(handler)) or self.handler_names.get(id(handler)) or handler.get_name() or "?"

    def behind(self, handler: logging.Handler) -> list[logging.Handler]:
        """The handlers ``handler`` passes its records to (a QueueHandler's listener, a MemoryHandler's target)."""
        if isinstance(handler, logging.handlers.QueueHandler):
            listener = getattr(handler, "listener", None)  # Python 3.12's dictConfig sets it
            out = list(getattr(listener, "handlers", ()) or ())
            return out + [h for h in self.listeners.get(id(handler.queue), []) if h not in out]
        if isinstance(handler, logging.handlers.MemoryHandler) and handler.target is not None:
            return [handler.target]
        return []

    def leads_to(self, handler: logging.Handler, seen: set[int] | None = None) -> list[KafkaLogHandler]:
        """The configuration's KafkaLogHandlers a record given to ``handler`` reaches."""
        seen = set() if seen is None else seen
        if id(handler) in seen:
            return []
        seen.add(id(handler))
        if isinstance(handler, KafkaLogHandler):
            return [handler] if id(handler) in self.kafka else []
        return [k for h in self.behind(handler) for k in self.leads_to(h, seen)]

    def own_kafka(self, logger: logging.Logger) -> list[KafkaLogHandler]:
        """The KafkaLogHandlers the handlers of ``logger`` itself lead to."""
        return [k for h in logger.handlers for k in self.leads_to(h)]

    def path(self, logger: logging.Logger) -> Iterator[logging.Logger]:
        """``logger`` and the ancestors its records propagate to, as ``Logger.callHandlers`` walks them."""
        current: logging.Logger | None = logger
        while current is not None:
            yield current
            if not current.propagate:
                return
            current = current.parent

    def reached(self, logger: logging.Logger) -> list[tuple[logging.Logger, KafkaLogHandler]]:
        """(the logger it hangs on, handler) for each KafkaLogHandler a record of ``logger`` reaches."""
        return [(lg, k) for lg in self.path(logger) for k in self.own_kafka(lg)]
