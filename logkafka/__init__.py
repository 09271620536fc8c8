"""logkafka: Apache Kafka as a destination of Python's standard ``logging``.

Public names are listed in ``__all__``; modules whose names start with an
underscore are private.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from logkafka._audit import audit, security
from logkafka._celery import connect_celery
from logkafka._context import bind, bound, clear_context, get_context, unbind, with_context
from logkafka._formatter import JsonFormatter
from logkafka._handler import KafkaLogHandler
from logkafka._levels import LevelWatcher, watch_levels
from logkafka._process import health, health_asgi, health_wsgi, shutdown
from logkafka._prometheus import PrometheusCollector
from logkafka._sampling import SamplingFilter
from logkafka._timed import timed
from logkafka._web import ASGIMiddleware, WSGIMiddleware

try:
    __version__ = _version("logkafka")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "ASGIMiddleware",
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
    "security",
    "shutdown",
    "timed",
    "unbind",
    "watch_levels",
    "with_context",
]
