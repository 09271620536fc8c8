"""The public face of logkafka: ``__all__``."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import logkafka

PUBLIC = {"ASGIMiddleware", "JsonFormatter", "KafkaLogHandler", "PrometheusCollector", "SamplingFilter",
          "WSGIMiddleware", "__version__", "audit", "bind", "bound", "clear_context", "connect_celery",
          "get_context", "health", "health_asgi", "health_wsgi", "security", "shutdown", "timed", "unbind",
          "with_context", "LevelWatcher", "watch_levels", "loguru_sink", "DjangoMiddleware"}


class TestExportedMembers:
    def test_all_is_sorted(self) -> None:
        """__all__ is sorted and has no duplicates."""
        assert logkafka.__all__ == sorted(set(logkafka.__all__))

    def test_every_name_exists(self) -> None:
        """Every name in __all__ is an attribute of the package."""
        missing = [name for name in logkafka.__all__ if not hasattr(logkafka, name)]
        assert missing == []

    def test_public_names(self) -> None:
        """The public names are exactly the documented ones."""
        assert set(logkafka.__all__) == PUBLIC

    def test_star_import(self) -> None:
        """from logkafka import * gives exactly the public names."""
        namespace: dict[str, Any] = {}
        exec("from logkafka import *", namespace)
        assert set(namespace) - {"__builtins__"} == PUBLIC

    def test_version(self) -> None:
        """__version__ is the installed distribution's version."""
        assert logkafka.__version__ == importlib.metadata.version("logkafka")

    def test_reexported_from_private_modules(self) -> None:
        """Exported classes and functions are defined in logkafka's private modules, re-exported."""
        for name in PUBLIC - {"__version__"}:
            module = getattr(logkafka, name).__module__
            assert module.startswith("logkafka._"), (name, module)
