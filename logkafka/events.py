"""The async publisher API of the earlier event-publisher design, on top of ``KafkaLogHandler``.

Services written against that design keep working::

    from logkafka.events import LoggingEventPublisherContext, publish_application_log

    ok = await publish_application_log("checkout", "checkout-1", "INFO", "orders.api",
                                       "order placed", "ORDER_PLACED", context={"order_id": 7})

    async with LoggingEventPublisherContext("broker:9092") as publisher:
        await publisher.publish_audit_log("acme", "invoice.update", "alice", "invoice:7", "success")

Every ``publish_*`` call returns ``True`` when the record was accepted by the
handler (queued: the handler then delivers it, or spools it while Kafka is
unreachable) and ``False`` otherwise. It never raises: a bad argument, a
stopped or disabled publisher, a full queue give ``False``, and the reason is
written to stderr as a rate-limited ``logkafka: ...`` line. No call waits on
Kafka.

How it is built:

- A publisher owns ``KafkaLogHandler`` instances (no formatter set: each uses
  its default ``JsonFormatter``) and hands them records it builds itself
  (``logging.LogRecord``). No logger is involved: nothing is added to the
  application's logging tree, and the application's own handlers never see
  the publisher's records (a ``KafkaLogHandler`` the application has on its
  root logger does not ship them a second time).
- Application records carry the ``service_name`` and ``instance_id`` of the
  call as their ``service`` and ``instance_id`` fields (and the partition key,
  by default the service). A handler's identity is fixed, so the publisher has
  one handler per distinct ``(service_name, instance_id)`` pair, made on first
  use, at most :data:`MAX_IDENTITIES`. Nearly every service uses one pair: one
  handler, plus the publisher's own one when the pair differs from the
  identity in ``handler_options`` (or the environment), which ships the audit
  and security records.
- Audit and security records are the records ``logkafka.audit()`` and
  ``logkafka.security()`` build: the same checks, members, message and level,
  logger name ``logkafka.audit`` / ``logkafka.security``, so they go to the
  audit and security topics, keyed by tenant, with ``durability="disk"``.
- ``context`` is nested under ``"context"`` for every stream: no key in it can
  collide with a ``LogRecord`` attribute.
- A publisher that was never started starts on its first ``publish_*`` call;
  one that was stopped returns ``False`` until ``start()`` is called again.
- ``stop()`` closes the handlers in worker threads (``asyncio.to_thread``):
  each delivers what is queued for up to its ``flush_timeout``, then spools the
  rest; the event loop stays responsive meanwhile.

The module-level ``publish_*`` functions use a process-wide default publisher
(:func:`default_publisher`), made and started on first use with no arguments:
``KAFKA_BOOTSTRAP_SERVERS`` and the handler's other environment variables
configure it. :func:`shutdown` stops it and forgets it (the next call makes a
new one). A default publisher never shut down is still closed at interpreter
exit by ``logging.shutdown()``, like every handler, so queued records are
delivered.

``KAFKA_ENABLE_LOGGING_EVENTS=false`` (also ``0``, ``no``, ``off``, any case),
read when a publisher is made, or ``enable_events=False``, turns a publisher
off: every call returns ``False`` at once, no handler is built, nothing
connects anywhere.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
from collections.abc import Callable, Mapping
from enum import Enum
from types import TracebackType
from typing import Any

from logkafka._audit import AUDIT_LOGGER, SECURITY_LOGGER, audit_parts, security_parts
from logkafka._handler import KafkaLogHandler
from logkafka._publication import Identity, Publication, Site, application, caller_site, plain, stream
from logkafka._report import report
from logkafka._values import FALSE_WORDS, TRUE_WORDS

__all__ = [
    "ENABLE_ENV",
    "MAX_IDENTITIES",
    "Decision",
    "LogLevel",
    "LoggingEventPublisher",
    "LoggingEventPublisherContext",
    "Outcome",
    "default_publisher",
    "events_enabled",
    "publish_application_log",
    "publish_audit_log",
    "publish_security_log",
    "shutdown",
]

#: The environment variable that turns every publisher off (``false``, ``0``, ``no``, ``off``).
ENABLE_ENV = "KAFKA_ENABLE_LOGGING_EVENTS"
#: At most this many distinct ``(service_name, instance_id)`` pairs (so handlers) per publisher.
MAX_IDENTITIES = 8

_SIGNATURE = inspect.signature(KafkaLogHandler)
_NEW, _STARTED, _STOPPED = "new", "started", "stopped"


class LogLevel(str, Enum):
    """Level names of the earlier design; any ``logging`` level name or number works too."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class Outcome(str, Enum):
    """Outcomes of an audit record."""

    SUCCESS = "success"
    FAILURE = "failure"


class Decision(str, Enum):
    """Decisions of a security record."""

    ALLOW = "allow"
    DENY = "deny"


def events_enabled() -> bool:
    """Whether ``KAFKA_ENABLE_LOGGING_EVENTS`` allows publishing (unset: yes).

    ``false``, ``0``, ``no``, ``off`` (any case) turn publishing off; a value
    that is neither true nor false leaves it on, and says so on stderr.
    """
    raw = os.environ.get(ENABLE_ENV)
    if raw is None:
        return True
    text = raw.strip().lower()
    if text in FALSE_WORDS:
        return False
    if text and text not in TRUE_WORDS:
        report("events", f"{ENABLE_ENV}={raw!r} is neither true nor false: logging events stay enabled")
    return True


def _losses(handler: KafkaLogHandler) -> int:
    """Records the handler refused so far (``drop_oldest`` drops another record, not the new one)."""
    return sum(n for reason, n in handler.queue_drops().items() if reason != "drop_oldest")


def _hand(handler: KafkaLogHandler, record: logging.LogRecord) -> bool:
    """Give ``record`` to ``handler``; True when it was queued."""
    if not handler.settings.enabled or record.levelno < handler.level:
        return False
    before = _losses(handler)
    if not handler.handle(record):  # a filter refused it
        return False
    return _losses(handler) == before


def _close(handler: KafkaLogHandler) -> None:
    try:
        handler.close()
    except Exception as exc:  # close() does not raise; stop() must not either
        report("events", f"closing a publisher's handler failed: {type(exc).__name__}: {exc}")


def _refused(function: str, exc: Exception) -> bool:
    """Report why a publish call published nothing; always False."""
    if isinstance(exc, ValueError):
        report("events", f"{function}: not published: {exc}")
    else:
        report("events", f"{function}: not published: {type(exc).__name__}: {exc}")
    return False


class LoggingEventPublisher:
    """Publish application, audit and security records through ``KafkaLogHandler``.

    ``bootstrap_servers`` defaults to ``KAFKA_BOOTSTRAP_SERVERS`` (then
    ``localhost:9092``); ``handler_options`` are any other ``KafkaLogHandler``
    arguments (``namespace``, ``topic``, ``audit_topic``, ``spool_dir``,
    ``flush_timeout``, ``service_name``, ...); an unknown name raises
    ``TypeError`` here, a bad value ``ValueError`` from ``start()``.
    ``enable_events=False``, or ``KAFKA_ENABLE_LOGGING_EVENTS=false`` in the
    environment when the publisher is made, turns it off: every call returns
    ``False`` and nothing is built. (``None``, the later design's default, is
    the same as ``True``: the environment decides; the variable turns off even
    a publisher made with ``True``.)

    ``start()`` builds the handler (it never connects or blocks: the handler
    connects in its own thread); a publisher that was never started starts on
    its first ``publish_*`` call. After ``stop()`` every call returns ``False``
    until ``start()`` is called again. The publisher is bound to no event
    loop and may be shared by threads.
    """

    def __init__(self, bootstrap_servers: str | None = None, enable_events: bool | None = True,
                 **handler_options: Any) -> None:
        _SIGNATURE.bind(bootstrap_servers, **handler_options)  # TypeError for an unknown option
        self.bootstrap_servers = bootstrap_servers
        #: False when ``enable_events`` was False or the environment turned events off.
        self.enable_events = enable_events is not False and events_enabled()
        self._options = dict(handler_options)
        self._lock = threading.Lock()
        self._state = _NEW
        self._main: KafkaLogHandler | None = None  # audit and security records, and its own identity
        self._by_identity: dict[Identity, KafkaLogHandler] = {}

    @property
    def started(self) -> bool:
        """Whether the publisher is started (and enabled)."""
        return self._state == _STARTED

    async def start(self) -> None:
        """Build the handler; a no-op when started already or disabled.

        Raises ``ValueError`` naming a bad handler setting. Also starts a
        stopped publisher again.
        """
        if self.enable_events:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._state == _STARTED:
                return
            handler = KafkaLogHandler(self.bootstrap_servers, **self._options)
            identity = handler.settings.identity
            self._main = handler
            self._by_identity = {Identity(identity["service"], identity["instance_id"]): handler}
            self._state = _STARTED

    async def stop(self) -> None:
        """Close the handlers: each delivers what is queued for up to its ``flush_timeout``, then spools the rest.

        Runs the closing in worker threads, so the event loop is free meanwhile.
        Idempotent, never raises; later ``publish_*`` calls return ``False``.
        """
        try:
            with self._lock:
                handlers = list(self._by_identity.values())
                self._state = _STOPPED
                self._main = None
                self._by_identity = {}
            if handlers:
                await asyncio.gather(*(asyncio.to_thread(_close, h) for h in handlers))
        except Exception as exc:
            report("events", f"stopping the publisher failed: {type(exc).__name__}: {exc}")

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait (in worker threads) until what was published is acknowledged, up to ``timeout`` seconds.

        ``timeout`` defaults to each handler's ``flush_timeout``. True when
        everything was settled in time (also when nothing was published).
        """
        with self._lock:
            handlers = list(self._by_identity.values())
        if not handlers:
            return True
        done = await asyncio.gather(*(asyncio.to_thread(h.flush, timeout) for h in handlers))
        return all(done)

    def stats(self) -> dict[str, Any]:
        """The publisher's state and each handler's ``stats()``, by service and instance id."""
        with self._lock:
            items = list(self._by_identity.items())
            state = self._state
        return {
            "enabled": self.enable_events,
            "state": state,
            "handlers": [{"service": s, "instance_id": i, "stats": h.stats()} for (s, i), h in items],
        }

    def _handler(self, identity: Identity | None = None) -> KafkaLogHandler | None:
        """The handler for ``identity`` (None: the publisher's own), starting lazily; None once stopped."""
        if self._state == _NEW:
            self._start()
        if identity is not None:
            handler = self._by_identity.get(identity)
            if handler is not None and self._state == _STARTED:
                return handler
        with self._lock:
            if self._state != _STARTED:
                return None
            if identity is None:
                return self._main
            handler = self._by_identity.get(identity)
            if handler is None:
                if len(self._by_identity) >= MAX_IDENTITIES:
                    raise ValueError(f"more than {MAX_IDENTITIES} distinct (service_name, instance_id) pairs "
                                     f"in one publisher; {identity!r} is not published")
                handler = KafkaLogHandler(self.bootstrap_servers, **{
                    **self._options, "service_name": identity.service_name, "instance_id": identity.instance_id})
                self._by_identity[identity] = handler
            return handler

    def _publish(self, function: str, build: Callable[[Site], Publication]) -> bool:
        """Build the record at the service's call and give it to its handler; True when queued, never raises."""
        if not self.enable_events:
            return False
        try:
            publication = build(caller_site())
            handler = self._handler(publication.identity)
            if handler is None:
                report("events", f"{function}: not published: the publisher is stopped")
                return False
            return _hand(handler, publication.record)
        except Exception as exc:
            return _refused(function, exc)

    async def publish_application_log(
        self,
        service_name: str,
        instance_id: str,
        level: str | int,
        logger_name: str,
        message: str,
        code: str,
        context: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
    ) -> bool:
        """Publish an application record; True when the handler queued it, never raises.

        ``service_name`` and ``instance_id`` become the record's ``service`` and
        ``instance_id`` (and its key); ``level`` is a level name (any case,
        ``WARN`` too) or number; ``logger_name`` the ``logger`` field (not a
        ``logkafka`` or ``confluent_kafka`` one: such records are never
        shipped); ``message`` is shipped as given (no ``%`` formatting);
        ``code`` the ``code`` field; ``context`` is nested under ``"context"``;
        ``correlation_id`` overrides the bound one.
        """
        return self._publish("publish_application_log", lambda site: application(
            site, service_name, instance_id, level, logger_name, message, code, context, correlation_id))

    async def publish_audit_log(
        self,
        tenant_id: str | None,
        action: str,
        actor: str,
        resource: str,
        outcome: str,
        correlation_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        *,
        diff: Mapping[str, Any] | None = None,
        ip_address: str | None = None,
        user_agent: str | None = None,
    ) -> bool:
        """Publish the record ``logkafka.audit()`` makes; True when the handler queued it, never raises.

        The positional order is the earlier design's (``tenant_id`` first);
        the members are ``logkafka.audit()``'s, with its checks (a bad one
        gives False and a line on stderr). ``tenant_id`` None means the bound
        ``tenant_id``, else ``$TENANT_ID``, else ``default``. ``outcome`` is
        ``success`` or ``failure`` (or an :class:`Outcome`).
        """
        return self._publish("publish_audit_log", lambda site: stream(site, AUDIT_LOGGER, audit_parts(
            action, actor, resource, plain(outcome), tenant_id=tenant_id, diff=diff, ip_address=ip_address,
            user_agent=user_agent, correlation_id=correlation_id, context=context)))

    async def publish_security_log(
        self,
        tenant_id: str | None,
        event_type: str,
        user_id: str,
        resource: str,
        decision: str,
        correlation_id: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> bool:
        """Publish the record ``logkafka.security()`` makes; True when the handler queued it, never raises.

        The positional order is the earlier design's (``tenant_id`` first; None
        as for :meth:`publish_audit_log`); ``decision`` is ``allow`` or
        ``deny`` (or a :class:`Decision`).
        """
        return self._publish("publish_security_log", lambda site: stream(site, SECURITY_LOGGER, security_parts(
            event_type, user_id, resource, plain(decision), tenant_id=tenant_id, correlation_id=correlation_id,
            context=context)))


class LoggingEventPublisherContext:
    """``async with LoggingEventPublisherContext(...) as publisher``: started on enter, stopped on exit.

    Takes the arguments of :class:`LoggingEventPublisher`; ``publisher`` is the
    publisher it manages.
    """

    def __init__(self, bootstrap_servers: str | None = None, enable_events: bool | None = True,
                 **handler_options: Any) -> None:
        self.publisher = LoggingEventPublisher(bootstrap_servers, enable_events, **handler_options)

    async def __aenter__(self) -> LoggingEventPublisher:
        """Start the publisher and return it."""
        await self.publisher.start()
        return self.publisher

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        """Stop the publisher (delivering what is queued, up to ``flush_timeout``)."""
        await self.publisher.stop()


_default: LoggingEventPublisher | None = None
_default_lock = threading.Lock()


def default_publisher() -> LoggingEventPublisher:
    """The process-wide publisher of the module-level functions, made on first use.

    Made with no arguments: ``KAFKA_BOOTSTRAP_SERVERS``, ``KAFKA_ENABLE_LOGGING_EVENTS``
    and the handler's environment variables (``LOGKAFKA_NAMESPACE``,
    ``OTEL_SERVICE_NAME``, ...) configure it. It starts on its first publish.
    """
    global _default
    with _default_lock:
        if _default is None:
            _default = LoggingEventPublisher()
        return _default


async def shutdown() -> None:
    """Stop the default publisher (delivering what is queued, up to ``flush_timeout``) and forget it.

    The next module-level call makes a new one, reading the environment again.
    A no-op when there is none. Never raises.
    """
    global _default
    with _default_lock:
        publisher, _default = _default, None
    if publisher is not None:
        await publisher.stop()


async def publish_application_log(
    service_name: str,
    instance_id: str,
    level: str | int,
    logger_name: str,
    message: str,
    code: str,
    context: Mapping[str, Any] | None = None,
    correlation_id: str | None = None,
) -> bool:
    """:meth:`LoggingEventPublisher.publish_application_log` on the default publisher; never raises."""
    return await default_publisher().publish_application_log(
        service_name, instance_id, level, logger_name, message, code, context, correlation_id)


async def publish_audit_log(
    tenant_id: str | None,
    action: str,
    actor: str,
    resource: str,
    outcome: str,
    correlation_id: str | None = None,
    context: Mapping[str, Any] | None = None,
    *,
    diff: Mapping[str, Any] | None = None,
    ip_address: str | None = None,
    user_agent: str | None = None,
) -> bool:
    """:meth:`LoggingEventPublisher.publish_audit_log` on the default publisher; never raises."""
    return await default_publisher().publish_audit_log(
        tenant_id, action, actor, resource, outcome, correlation_id, context,
        diff=diff, ip_address=ip_address, user_agent=user_agent)


async def publish_security_log(
    tenant_id: str | None,
    event_type: str,
    user_id: str,
    resource: str,
    decision: str,
    correlation_id: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> bool:
    """:meth:`LoggingEventPublisher.publish_security_log` on the default publisher; never raises."""
    return await default_publisher().publish_security_log(
        tenant_id, event_type, user_id, resource, decision, correlation_id, context)
