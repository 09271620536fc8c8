"""Shared fixtures: logging state restored after every test, handlers that are always closed."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import logkafka


def _attached_handlers() -> set[logging.Handler]:
    """Every handler attached to the root logger or to any named logger right now."""
    found = set(logging.getLogger().handlers)
    for lg in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(lg, logging.Logger):
            found.update(lg.handlers)
    return found


@pytest.fixture(autouse=True)
def _own_spool_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test spools into its own directory (handlers made by dictConfig and subprocesses too)."""
    monkeypatch.setenv("LOGKAFKA_SPOOL_DIR", str(tmp_path / "spool"))


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Restore root handlers and level, every logger's settings and the bound context."""
    root = logging.getLogger()
    saved_root = (root.level, root.handlers[:])
    saved = {
        name: (lg.level, lg.propagate, lg.disabled, lg.handlers[:])
        for name, lg in list(logging.Logger.manager.loggerDict.items())
        if isinstance(lg, logging.Logger)
    }
    before = _attached_handlers()
    raise_exceptions = logging.raiseExceptions
    logkafka.clear_context()
    yield
    added = _attached_handlers() - before
    root.setLevel(saved_root[0])
    root.handlers[:] = saved_root[1]
    for name, lg in list(logging.Logger.manager.loggerDict.items()):
        if not isinstance(lg, logging.Logger):
            continue
        if name in saved:
            lg.level, lg.propagate, lg.disabled, handlers = saved[name]
            lg.handlers[:] = handlers
        else:
            lg.handlers[:] = []
            lg.setLevel(logging.NOTSET)
            lg.propagate, lg.disabled = True, False
    logging.Logger.manager._clear_cache()  # type: ignore[attr-defined]
    for handler in added:  # e.g. made by dictConfig in the test
        handler.close()
    logging.raiseExceptions = raise_exceptions
    logkafka.clear_context()


@pytest.fixture
def make_handler(kafka_broker: Any, kafka_topic: str) -> Iterator[Callable[..., logkafka.KafkaLogHandler]]:
    """A factory of KafkaLogHandlers on the test's topic; each is detached and closed afterwards."""
    made: list[logkafka.KafkaLogHandler] = []

    def make(**kwargs: Any) -> logkafka.KafkaLogHandler:
        kwargs.setdefault("bootstrap_servers", kafka_broker.bootstrap_servers)
        kwargs.setdefault("topic", kafka_topic)
        handler = logkafka.KafkaLogHandler(**kwargs)
        made.append(handler)
        return handler

    yield make
    for handler in made:
        for lg in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
            if isinstance(lg, logging.Logger) and handler in lg.handlers:
                lg.removeHandler(handler)
        handler.close()


@pytest.fixture
def app_logger() -> logging.Logger:
    """A logger of its own for the test, at DEBUG, not propagating to the root logger."""
    lg = logging.getLogger(f"app.{uuid.uuid4().hex[:8]}")
    lg.setLevel(logging.DEBUG)
    lg.propagate = False
    return lg
