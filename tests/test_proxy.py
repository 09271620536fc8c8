"""The loopback TCP proxy of logkafka.testing, against the real local broker process."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, Producer

from logkafka.testing import ProxiedBroker, TcpProxy


class Deliveries:
    """Delivery reports of one producer: value -> error (None: delivered)."""

    def __init__(self) -> None:
        self.reports: dict[bytes, KafkaError | None] = {}

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        self.reports[msg.value() or b""] = err

    def delivered(self) -> set[bytes]:
        return {v for v, e in self.reports.items() if e is None}

    def failed(self) -> set[bytes]:
        return {v for v, e in self.reports.items() if e is not None}


@pytest.fixture
def producer(proxied_broker: ProxiedBroker) -> Iterator[Producer]:
    """A producer that reaches the broker only through the proxy; closed afterwards."""
    p = Producer({
        "bootstrap.servers": proxied_broker.bootstrap_servers,
        "linger.ms": 5,
        "message.timeout.ms": 2000,
        # reconnect within the 2 s after restore(): the default backoff (doubling up to 10 s) grows past
        # that during a cut of a few seconds, and the first message after it then timed out
        "reconnect.backoff.max.ms": 500,
        "log_level": 0,
    })
    yield p
    p.purge()
    p.flush(0)
    p.close()


def _proxy_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("logkafka-proxy-")]


def _poll_until(p: Producer, done: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        p.poll(0.05)


def test_forwards_a_thousand_messages_and_reads_them_back(proxied_broker: ProxiedBroker, producer: Producer) -> None:
    """1000 messages go out and come back through the proxy, every one exactly once."""
    topic = "proxy.forward"
    proxied_broker.create_topic(topic, 3)
    metadata = producer.list_topics(topic, timeout=5)
    assert {b.port for b in metadata.brokers.values()} == {proxied_broker.proxy.port}, \
        "the broker must advertise the proxy, so that no client bypasses it"
    reports = Deliveries()
    sent = {f"message {i}".encode() for i in range(1000)}
    for value in sorted(sent):
        producer.produce(topic, value, on_delivery=reports)
        producer.poll(0)
    assert producer.flush(10) == 0
    assert reports.delivered() == sent and not reports.failed()
    assert proxied_broker.proxy.accepted >= 1

    before = proxied_broker.proxy.accepted
    read = proxied_broker.read(topic, expected=1000, timeout=10, idle=0.5)
    assert len(read) == 1000
    assert {m.value for m in read} == sent
    assert proxied_broker.proxy.accepted > before, "the consumer connected through the proxy too"


def test_cut_fails_deliveries_and_restore_delivers_again(proxied_broker: ProxiedBroker, producer: Producer) -> None:
    """While cut, nothing gets through (delivery reports fail); once restored, a new message is delivered."""
    proxy = proxied_broker.proxy
    topic = "proxy.cut"
    proxied_broker.create_topic(topic, 3)
    reports = Deliveries()
    producer.produce(topic, b"before", on_delivery=reports)
    assert producer.flush(10) == 0
    assert reports.delivered() == {b"before"}
    assert proxy.connections >= 1

    proxy.cut()
    assert proxy.connections == 0
    assert proxy.is_cut
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), 1).close()
    during = {f"during {i}".encode() for i in range(20)}
    started = time.monotonic()
    for value in sorted(during):
        producer.produce(topic, value, on_delivery=reports)
    _poll_until(producer, lambda: during <= reports.reports.keys(), 4.0)
    assert reports.failed() == during, f"undelivered after {time.monotonic() - started:.1f}s: {reports.reports}"
    assert {e.code() for e in reports.reports.values() if e is not None} == {KafkaError._MSG_TIMED_OUT}
    assert proxy.connections == 0

    proxy.restore()
    assert not proxy.is_cut
    producer.produce(topic, b"after", on_delivery=reports)
    assert producer.flush(10) == 0
    assert reports.reports[b"after"] is None
    assert proxy.connections >= 1
    read = proxied_broker.read(topic, expected=2, timeout=10, idle=0.5)
    assert sorted(m.value for m in read) == [b"after", b"before"], "nothing sent while cut reached the broker"


def test_stop_is_quick_with_open_and_stalled_connections(proxied_broker: ProxiedBroker, producer: Producer) -> None:
    """stop() returns within 2 s with a producer's connections and a stalled, full connection open; threads end."""
    proxy = proxied_broker.proxy
    assert producer.list_topics(timeout=5).brokers
    broker = proxied_broker.broker
    assert broker.process is not None
    broker.pause()  # the broker reads nothing more: the proxy's buffers fill up
    _wait(lambda: _process_state(broker.process.pid) == "T")  # type: ignore[union-attr]
    raw = socket.create_connection(("127.0.0.1", proxy.port), 2)
    try:
        raw.settimeout(0.2)
        chunk = b"\0" * 65536
        stalled = False
        for _ in range(400):
            try:
                raw.sendall(chunk)
            except TimeoutError:
                stalled = True
                break
        assert stalled, "the paused broker should have stopped the flow"
        assert proxy.connections >= 1  # the stalled one (the producer's may have been closed by then)
        assert _proxy_threads()

        started = time.monotonic()
        proxy.stop()
        assert time.monotonic() - started < 5.0  # a hang would be forever: the bound only catches that
        assert proxy.connections == 0
        assert not _proxy_threads()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port), 1).close()
        raw.settimeout(2)
        with pytest.raises(ConnectionResetError):
            while raw.recv(65536):
                pass
        proxy.stop()  # a second stop is a no-op
    finally:
        raw.close()
        broker.resume()


def test_context_manager_and_restart_on_the_same_port(proxied_broker: ProxiedBroker) -> None:
    """A proxy of one's own in front of the broker: a with block starts and stops it; it starts again on its port."""
    proxy = TcpProxy(proxied_broker.broker.port)
    with pytest.raises(RuntimeError):
        proxy.cut()  # not started
    with proxy:
        port = proxy.port
        with socket.create_connection(("127.0.0.1", port), 2):
            _wait(lambda: proxy.connections == 1)
    assert f"logkafka-proxy-{port}" not in {t.name for t in _proxy_threads()}
    with proxy:
        assert proxy.port == port
        with socket.create_connection(("127.0.0.1", port), 2):
            _wait(lambda: proxy.accepted == 1)


def _process_state(pid: int) -> str:
    """The state letter of a process (Linux): T when stopped."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def _wait(condition: Any, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
