"""logkafka: Apache Kafka as a destination of Python's standard ``logging``.

Public names are listed in ``__all__``; modules whose names start with an
underscore are private.

Each public name is imported on first use (PEP 562), so ``import logkafka``
costs almost nothing, and an application pays only for what it uses: the
handler does not bring the web middleware, Prometheus or ``timed``, and the
Kafka client is loaded when the first handler is made.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time, __getattr__ below
    from logkafka._audit import audit, security
    from logkafka._celery import connect_celery
    from logkafka._context import bind, bound, clear_context, get_context, unbind, with_context
    from logkafka._formatter import JsonFormatter
    from logkafka._handler import KafkaLogHandler
    from logkafka._levels import LevelWatcher, watch_levels
    from logkafka._loguru import loguru_sink
    from logkafka._process import health, health_asgi, health_wsgi, shutdown
    from logkafka._prometheus import PrometheusCollector
    from logkafka._sampling import SamplingFilter
    from logkafka._timed import timed
    from logkafka._web import ASGIMiddleware, WSGIMiddleware
    from logkafka._web.django_middleware import DjangoMiddleware

    __version__: str

#: Where each public name lives.
_HOMES = {
    "ASGIMiddleware": "_web", "WSGIMiddleware": "_web", "DjangoMiddleware": "_web.django_middleware",
    "JsonFormatter": "_formatter",
    "KafkaLogHandler": "_handler",
    "LevelWatcher": "_levels", "watch_levels": "_levels",
    "loguru_sink": "_loguru",
    "PrometheusCollector": "_prometheus",
    "SamplingFilter": "_sampling",
    "audit": "_audit", "security": "_audit",
    "bind": "_context", "bound": "_context", "clear_context": "_context", "get_context": "_context",
    "unbind": "_context", "with_context": "_context",
    "connect_celery": "_celery",
    "health": "_process", "health_asgi": "_process", "health_wsgi": "_process", "shutdown": "_process",
    "timed": "_timed",
}

__all__ = [
    "ASGIMiddleware",
    "DjangoMiddleware",
    "JsonFormatter",
    "KafkaLogHandler",
    "LevelWatcher",
    "PrometheusCollector",
    "SamplingFilter",
    "WSGIMiddleware",
    "__version__",
    "audit",
    "bind",
    "bound",
    "clear_context",
    "connect_celery",
    "get_context",
    "health",
    "health_asgi",
    "health_wsgi",
    "loguru_sink",
    "security",
    "shutdown",
    "timed",
    "unbind",
    "watch_levels",
    "with_context",
]


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # 20-30 ms: only when asked

    try:
        return version("logkafka")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def __getattr__(name: str) -> Any:
    """A public name, imported on first use and kept."""
    home = _HOMES.get(name)
    if home is not None:
        value = getattr(importlib.import_module(f"logkafka.{home}"), name)
    elif name == "__version__":
        value = _installed_version()
    else:
        raise AttributeError(f"module 'logkafka' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
