"""KafkaLogHandler against a real broker: what arrives, flush, close, failures, stats."""

from __future__ import annotations

import inspect
import json
import logging
import logging.config
import os
import re
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _support import ListHandler, assert_valid

import logkafka
from logkafka.testing import ConsumedMessage, free_port, read_topic

Make = Callable[..., logkafka.KafkaLogHandler]
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")



class PaymentError(Exception):
    """An application exception defined outside builtins."""


def rfc3339(created: float) -> str:
    ms = int(created * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def dict_config(servers: str, topic: str, logger_name: str, **handler: Any) -> dict[str, Any]:
    """A dictConfig with a JSON formatter and one Kafka handler on ``logger_name``."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "logkafka.JsonFormatter"}},
        "handlers": {
            "kafka": {
                "class": "logkafka.KafkaLogHandler",
                "formatter": "json",
                "bootstrap_servers": servers,
                "topic": topic,
                "service_name": "checkout",
                "environment": "staging",
                "version": "1.2.3",
                "instance_id": "pod-7",
                **handler,
            },
        },
        "loggers": {logger_name: {"level": "DEBUG", "handlers": ["kafka"], "propagate": False}},
    }


def by_partition(msgs: list[ConsumedMessage]) -> dict[int, list[ConsumedMessage]]:
    out: dict[int, list[ConsumedMessage]] = defaultdict(list)
    for m in sorted(msgs, key=lambda m: (m.partition, m.offset)):
        out[m.partition].append(m)
    return out


def kafka_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("logkafka-")}


@pytest.fixture
def configured(kafka_broker: Any, kafka_topic: str) -> Callable[..., tuple[logging.Logger, logkafka.KafkaLogHandler]]:
    """dictConfig a Kafka handler on a fresh logger; the autouse fixture closes it."""

    def configure(**handler: Any) -> tuple[logging.Logger, logkafka.KafkaLogHandler]:
        name = f"app.dc.{uuid.uuid4().hex[:8]}"
        logging.config.dictConfig(dict_config(kafka_broker.bootstrap_servers, kafka_topic, name, **handler))
        log = logging.getLogger(name)
        (h,) = log.handlers
        assert isinstance(h, logkafka.KafkaLogHandler)
        return log, h

    return configure


class TestDictConfig:
    def test_one_record_carries_every_field(self, configured: Any, kafka_broker: Any, kafka_topic: str) -> None:
        """A record logged through dictConfig arrives as one JSON object with every documented field."""
        log, handler = configured()
        seen = ListHandler()
        log.addHandler(seen)
        logkafka.bind(request_id="req-81", tenant="acme")
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        log.warning("order %s paid %d cents", "o-1", 4200,
                    extra={"code": "ORDER_PAID", "amount": 12.5, "tags": ["a", "b"], "customer": {"id": 9}})
        assert handler.flush() is True

        msgs = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=1)
        assert len(msgs) == 1
        (record,) = seen.records
        data = msgs[0].data
        assert_valid(data, "application", "flat")
        assert TS_RE.match(data["timestamp"])
        assert data["timestamp"] == rfc3339(record.created)
        assert data["level"] == "WARNING"
        assert data["logger"] == log.name
        assert data["message"] == "order o-1 paid 4200 cents"
        assert data["code"] == "ORDER_PAID"
        assert (data["service"], data["environment"], data["version"], data["instance_id"]) == (
            "checkout", "staging", "1.2.3", "pod-7")
        assert data["host"] == socket.gethostname()
        assert data["process"] == os.getpid()
        assert data["thread"] == threading.current_thread().name
        assert data["module"] == "test_handler"
        assert data["function"] == "test_one_record_carries_every_field"
        assert data["line"] == line
        assert uuid.UUID(data["event_id"]).version == 8
        assert data["request_id"] == "req-81"
        assert data["tenant"] == "acme"
        assert data["amount"] == 12.5
        assert data["tags"] == ["a", "b"]
        assert data["customer"] == {"id": 9}
        assert "trace_id" not in data and "error" not in data
        assert msgs[0].key == b"checkout"

    def test_thousand_records_arrive_exactly_once_in_order(
        self, configured: Any, kafka_broker: Any, kafka_topic: str,
    ) -> None:
        """1000 records logged give exactly 1000 messages, distinct event ids, service key, logging order."""
        log, handler = configured()
        seen = ListHandler()
        log.addHandler(seen)
        for seq in range(1000):
            log.info("step %d", seq, extra={"seq": seq})
        assert handler.flush() is True

        msgs = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=1000)
        assert len(msgs) == 1000
        datas = [m.data for m in msgs]
        for d in datas:
            assert_valid(d, "application", "flat")
        assert len({d["event_id"] for d in datas}) == 1000
        assert sorted(d["seq"] for d in datas) == list(range(1000))
        assert all(d["message"] == f"step {d['seq']}" for d in datas)
        assert {m.key for m in msgs} == {b"checkout"}
        assert len(by_partition(msgs)) == 1  # one key, one partition
        for part in by_partition(msgs).values():
            seqs = [m.data["seq"] for m in part]
            assert seqs == sorted(seqs)
        created = {r.seq: int(r.created * 1000) for r in seen.records}  # type: ignore[attr-defined]
        assert all(m.timestamp_ms == created[m.data["seq"]] for m in msgs)

    def test_key_extra_attribute_partitions_by_it(self, configured: Any, kafka_broker: Any, kafka_topic: str) -> None:
        """key="extra.order_id": each order's records share one partition and keep their order."""
        log, handler = configured(key="extra.order_id")
        orders = [f"order-{i}" for i in range(12)]
        for seq in range(600):
            log.info("order step", extra={"order_id": orders[seq % 12], "seq": seq})
        assert handler.flush() is True

        msgs = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=600)
        assert len(msgs) == 600
        per_order: dict[str, list[ConsumedMessage]] = defaultdict(list)
        for m in sorted(msgs, key=lambda m: (m.partition, m.offset)):
            per_order[m.data["order_id"]].append(m)
        assert sorted(per_order) == sorted(orders)
        for oid, ms in per_order.items():
            assert len(ms) == 50
            assert {m.partition for m in ms} == {ms[0].partition}, oid
            assert {m.key for m in ms} == {oid.encode()}
            seqs = [m.data["seq"] for m in ms]
            assert seqs == sorted(seqs) and len(set(seqs)) == 50
        assert len({m.partition for m in msgs}) > 1  # 12 keys spread over the 3 partitions

    def test_key_none_gives_null_keys(self, configured: Any, kafka_broker: Any, kafka_topic: str) -> None:
        """key=None ships every message without a key."""
        log, handler = configured(key=None)
        for seq in range(300):
            log.info("keyless", extra={"seq": seq})
        assert handler.flush() is True

        msgs = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=300)
        assert len(msgs) == 300
        assert {m.key for m in msgs} == {None}
        assert sorted(m.data["seq"] for m in msgs) == list(range(300))


class TestTimestamp:
    def test_message_timestamp_is_record_created(self, make_handler: Make, app_logger: logging.Logger,
                                                 kafka_broker: Any, kafka_topic: str) -> None:
        """The Kafka message timestamp is the record's created time in ms, also for an old record."""
        handler = make_handler()
        app_logger.addHandler(handler)
        record = app_logger.makeRecord(app_logger.name, logging.INFO, __file__, 1, "replayed", None, None,
                                       extra={"seq": 0})
        record.created = 1_600_000_000.5
        app_logger.handle(record)
        app_logger.info("now", extra={"seq": 1})
        assert handler.flush() is True

        msgs = sorted(read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=2), key=lambda m: m.data["seq"])
        assert len(msgs) == 2
        assert msgs[0].timestamp_ms == 1_600_000_000_500
        assert msgs[0].data["timestamp"] == "2020-09-13T12:26:40.500Z"
        assert abs(msgs[1].timestamp_ms - time.time() * 1000) < 60_000  # type: ignore[operator]
        assert msgs[1].data["timestamp"] == rfc3339(msgs[1].timestamp_ms / 1000)  # type: ignore[operator]


class TestFlush:
    def test_flush_settles_everything(self, make_handler: Make, app_logger: logging.Logger,
                                      kafka_broker: Any, kafka_topic: str) -> None:
        """flush() returns True; then delivered equals what was logged and nothing waits."""
        handler = make_handler()
        app_logger.addHandler(handler)
        for seq in range(500):
            app_logger.info("r", extra={"seq": seq})
        assert handler.flush() is True
        stats = handler.stats()
        assert stats["delivered"] == 500
        assert stats["produced"] == 500
        assert stats["in_flight"] == 0
        assert stats["queue_depth"] == 0
        assert stats["failed"] == 0
        assert stats["dropped_total"] == 0
        assert handler.flush() is True  # nothing left: returns at once
        assert len(read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=500)) == 500

    def test_flush_waits_only_for_earlier_records(self, make_handler: Make, app_logger: logging.Logger,
                                                  kafka_broker: Any, kafka_topic: str) -> None:
        """flush() returns while another thread keeps logging; every record queued before it is delivered."""
        handler = make_handler(queue_size=2_000_000, key=None)
        app_logger.addHandler(handler)
        for seq in range(500):
            app_logger.info("before", extra={"seq": seq, "phase": "before"})
        stop = threading.Event()
        started = threading.Event()
        later: list[int] = []

        def keep_logging() -> None:
            n = 0
            while not stop.is_set() and n < 400_000:
                app_logger.info("during", extra={"seq": n, "phase": "during"})
                n += 1
                if n == 1000:
                    started.set()
                if n % 200 == 0:
                    time.sleep(0.001)
            later.append(n)

        t = threading.Thread(target=keep_logging)
        t.start()
        try:
            assert started.wait(10)
            t0 = time.monotonic()
            done = handler.flush(timeout=20)
            took = time.monotonic() - t0
            logging_went_on = t.is_alive()
            delivered = handler.stats()["delivered"]
        finally:
            stop.set()
            t.join(30)
        assert not t.is_alive()
        assert done is True
        assert took < 15
        assert logging_went_on  # flush did not wait for the other thread's stream to end
        assert delivered >= 500
        assert handler.flush(timeout=30) is True
        total = 500 + later[0]
        msgs = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=total, timeout=60)
        before = sorted(m.data["seq"] for m in msgs if m.data["phase"] == "before")
        assert before == list(range(500))
        assert len(msgs) == total
        assert handler.stats()["dropped_total"] == 0


class TestSharedFormatter:
    @pytest.mark.parametrize("kafka_first", [True, False], ids=["kafka-first", "file-first"])
    def test_file_line_equals_kafka_message(self, make_handler: Make, app_logger: logging.Logger, tmp_path: Path,
                                            kafka_broker: Any, kafka_topic: str, kafka_first: bool) -> None:
        """One JsonFormatter on a FileHandler and a KafkaLogHandler writes the same bytes for each record."""
        fmt = logkafka.JsonFormatter()
        path = tmp_path / "app.log"
        fh = logging.FileHandler(path, encoding="utf-8")
        fh.setFormatter(fmt)
        kh = make_handler()
        kh.setFormatter(fmt)
        for h in ([kh, fh] if kafka_first else [fh, kh]):
            app_logger.addHandler(h)
        try:
            with logkafka.bound(request_id="r-1"):
                app_logger.info("plain %s", "text")
                app_logger.warning("with extra", extra={"code": "X1", "items": [1, {"a": None}], "ratio": 0.25})
                app_logger.info("unicode žluťoučký 日本 \u2603")
                app_logger.info({"message": "dict message", "k": "v"})
                try:
                    raise PaymentError("card declined")
                except PaymentError:
                    app_logger.exception("payment failed")
                app_logger.debug("stack", stack_info=True)
            assert kh.flush() is True
        finally:
            app_logger.removeHandler(fh)
            fh.close()

        lines = path.read_bytes().splitlines()
        assert len(lines) == 6
        msgs = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=6)
        assert len(msgs) == 6
        for m in msgs:
            assert_valid(m.data, "application", "flat")
        values = {m.data["event_id"]: m.value for m in msgs}
        assert len(values) == 6
        for line in lines:
            assert values[json.loads(line)["event_id"]] == line


class TestCaptureKinds:
    """A JsonFormatter needs only part of a record; other formatters and some keys need all of it."""

    def test_formatter_subclass_reading_the_record(self, make_handler: Make, app_logger: logging.Logger,
                                                   kafka_broker: Any, kafka_topic: str) -> None:
        """A JsonFormatter subclass whose to_dict reads any record attribute gets every attribute."""

        class WithPath(logkafka.JsonFormatter):
            def to_dict(self, record: logging.LogRecord) -> dict[str, Any]:
                d = super().to_dict(record)
                d["path"] = f"{record.pathname}:{record.levelno}:{record.msecs:.0f}"
                return d

        handler = make_handler()
        handler.setFormatter(WithPath())
        app_logger.addHandler(handler)
        app_logger.warning("hello", extra={"code": "C"})
        assert handler.flush() is True
        (msg,) = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=1)
        assert msg.data["path"].startswith(f"{__file__}:30:")
        assert msg.data["code"] == "C" and msg.data["message"] == "hello"

    def test_formatter_of_another_kind(self, make_handler: Make, app_logger: logging.Logger,
                                       kafka_broker: Any, kafka_topic: str) -> None:
        """A logging.Formatter on the handler sees every attribute, as on any handler."""
        handler = make_handler()
        handler.setFormatter(logging.Formatter("%(filename)s %(levelno)s %(thread)d %(processName)s %(message)s"))
        app_logger.addHandler(handler)
        app_logger.error("boom %s", 1)
        assert handler.flush() is True
        (msg,) = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=1)
        expected = f"test_handler.py 40 {threading.get_ident()} MainProcess boom 1"
        assert msg.value.decode() == expected

    def test_formatter_replaced_while_records_wait(self, make_handler: Make, app_logger: logging.Logger,
                                                  kafka_broker: Any, kafka_topic: str) -> None:
        """Each record is formatted by the formatter the handler had when it was logged, as a
        synchronous handler would: records waiting while setFormatter() runs keep theirs."""
        inside, release = threading.Event(), threading.Event()

        class Blocking(logging.Formatter):
            def format(self, record: logging.LogRecord) -> str:
                inside.set()
                release.wait(10)
                return "blocked " + super().format(record)

        handler = make_handler()
        app_logger.addHandler(handler)
        handler.setFormatter(Blocking("%(message)s"))
        app_logger.info("r0")
        assert inside.wait(10)  # the worker now waits inside Blocking.format
        handler.setFormatter(logkafka.JsonFormatter())
        app_logger.info("r1", extra={"code": "C1"})
        app_logger.info("r2")
        handler.setFormatter(logging.Formatter("%(levelname)s %(levelno)d %(thread)d %(processName)s %(message)s"))
        app_logger.info("r3")
        release.set()
        assert handler.flush() is True

        values = sorted(m.value for m in read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=4))
        texts = [v for v in values if not v.startswith(b"{")]
        assert texts == [f"INFO 20 {threading.get_ident()} MainProcess r3".encode(), b"blocked r0"]
        jsons = sorted(json.loads(v)["message"] for v in values if v.startswith(b"{"))
        assert jsons == ["r1", "r2"]

    @pytest.mark.parametrize("key", ["pathname", "filename", "processName"])
    def test_key_naming_an_attribute_a_slim_capture_lacks(self, make_handler: Make, app_logger: logging.Logger,
                                                          kafka_broker: Any, kafka_topic: str, key: str) -> None:
        """key="pathname" (and others a JsonFormatter does not ship) still keys by the attribute."""
        handler = make_handler(key=key)
        handler.setFormatter(logkafka.JsonFormatter())
        app_logger.addHandler(handler)
        app_logger.info("keyed")
        assert handler.flush() is True
        (msg,) = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=1)
        expected = {"pathname": __file__, "filename": os.path.basename(__file__), "processName": "MainProcess"}[key]
        assert msg.key == expected.encode()

    @pytest.mark.parametrize("key", ["tenant_id", "code", "trace_id", "span_id", "extra.tenant_id", "extra.code",
                                     "extra.level", "context.tenant_id"])
    def test_key_from_extra_or_context(self, make_handler: Make, app_logger: logging.Logger,
                                       kafka_broker: Any, kafka_topic: str, key: str) -> None:
        """A key naming an extra finds it; an attribute key falls back to the bound value of that name."""
        handler = make_handler(key=key)
        app_logger.addHandler(handler)
        field = key.rpartition(".")[2]
        with logkafka.bound(**{field: "ctx-value"}):
            app_logger.info("from extra", extra={field: "extra-value"})
            app_logger.info("from context")
        assert handler.flush() is True
        msgs = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=2)
        keys = {m.data["message"]: m.key for m in msgs}
        if key.startswith("context."):
            assert keys == {"from extra": b"ctx-value", "from context": b"ctx-value"}
        elif key.startswith("extra."):
            assert keys == {"from extra": b"extra-value", "from context": None}
        else:
            assert keys == {"from extra": b"extra-value", "from context": b"ctx-value"}

    def test_key_event_id(self, make_handler: Make, app_logger: logging.Logger,
                          kafka_broker: Any, kafka_topic: str) -> None:
        """key="event_id" keys each record by its event id: the generated one, or the caller's."""
        handler = make_handler(key="event_id")
        app_logger.addHandler(handler)
        app_logger.info("generated")
        app_logger.info("given", extra={"event_id": "evt-1"})
        assert handler.flush() is True
        msgs = {m.data["message"]: m for m in read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=2)}
        assert msgs["generated"].key == msgs["generated"].data["event_id"].encode()
        assert msgs["given"].key == b"evt-1"

    def test_key_trace_id_is_the_active_span(self, make_handler: Make, app_logger: logging.Logger,
                                             kafka_broker: Any, kafka_topic: str) -> None:
        """key="trace_id" keys each record by the trace of the span active at the call."""
        from opentelemetry.sdk.trace import TracerProvider

        tracer = TracerProvider().get_tracer("t")
        handler = make_handler(key="trace_id")
        app_logger.addHandler(handler)
        with tracer.start_as_current_span("a"):
            app_logger.info("in span")
        app_logger.info("no span")
        assert handler.flush() is True
        msgs = {m.data["message"]: m for m in read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=2)}
        assert msgs["in span"].key == msgs["in span"].data["trace_id"].encode()
        assert msgs["no span"].key is None


class TestExceptions:
    def test_exception_in_except_block(self, make_handler: Make, app_logger: logging.Logger,
                                       kafka_broker: Any, kafka_topic: str) -> None:
        """log.exception inside except ships error.type, error.message and the full stack trace."""
        handler = make_handler()
        app_logger.addHandler(handler)

        def charge() -> None:
            raise ValueError("amount must be positive: -3")

        try:
            charge()
        except ValueError:
            app_logger.exception("charge failed for %s", "o-9", extra={"code": "CHARGE_FAILED", "seq": 0})
        try:
            try:
                charge()
            except ValueError as exc:
                raise PaymentError("gateway refused") from exc
        except PaymentError:
            app_logger.exception("payment failed", extra={"seq": 1})
        app_logger.info("no error", extra={"seq": 2})
        assert handler.flush() is True

        msgs = sorted(read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=3), key=lambda m: m.data["seq"])
        assert len(msgs) == 3
        for m in msgs:
            assert_valid(m.data, "application", "flat")
        first, second, third = (m.data for m in msgs)
        assert first["level"] == "ERROR"
        assert first["message"] == "charge failed for o-9"
        assert first["code"] == "CHARGE_FAILED"
        assert first["error"]["type"] == "ValueError"
        assert first["error"]["message"] == "amount must be positive: -3"
        stack = first["error"]["stack_trace"]
        assert stack.startswith("Traceback (most recent call last):")
        assert "in charge" in stack
        assert stack.endswith("ValueError: amount must be positive: -3")
        assert second["error"]["type"] == f"{PaymentError.__module__}.PaymentError"
        assert second["error"]["message"] == "gateway refused"
        assert "The above exception was the direct cause of the following exception" in second["error"]["stack_trace"]
        assert "ValueError: amount must be positive: -3" in second["error"]["stack_trace"]
        assert "error" not in third


SPOOL = pytest.mark.parametrize("spool", [True, False], ids=["spool", "no-spool"])


def lost_or_spooled(stats: dict[str, Any], spool: bool) -> int:
    """Records that could not be delivered: spooled for later, or (no spool) failed."""
    if spool:
        assert stats["failed"] == 0
        return int(stats["spooled"])
    assert stats["spooled"] == 0
    return int(stats["failed"])


class TestBrokerDown:
    @SPOOL
    def test_never_blocks_never_raises(self, make_handler: Make, app_logger: logging.Logger, spool: bool) -> None:
        """With no broker: construction and logging are quick, flush gives up, nothing counts as delivered."""
        t0 = time.monotonic()
        handler = make_handler(bootstrap_servers=f"127.0.0.1:{free_port()}", flush_timeout=2,
                               **({} if spool else {"spool_dir": False}))
        # bounds that catch a wait on Kafka (flush_timeout, 2 s, or more), not a slow machine
        assert time.monotonic() - t0 < 2
        app_logger.addHandler(handler)
        slowest = 0.0
        t0 = time.monotonic()
        for seq in range(200):
            t = time.monotonic()
            app_logger.error("broker gone %d", seq)
            slowest = max(slowest, time.monotonic() - t)
        assert time.monotonic() - t0 < 10
        assert slowest < 1.0

        t0 = time.monotonic()
        assert handler.flush(timeout=1) is False
        assert 0.9 <= time.monotonic() - t0 < 5  # it waited its timeout, and no longer than a hang would
        stats = handler.stats()
        assert stats["delivered"] == 0
        assert stats["broker_reachable"] is not True
        assert stats["produced"] + stats["queue_depth"] == 200
        assert stats["failed"] + stats["spooled"] + stats["in_flight"] + stats["queue_depth"] >= 200

        t0 = time.monotonic()
        handler.close()
        assert time.monotonic() - t0 < 2 + 3
        stats = handler.stats()
        assert stats["delivered"] == 0
        assert lost_or_spooled(stats, spool) == 200
        assert stats["in_flight"] == 0 and stats["queue_depth"] == 0

    @SPOOL
    def test_close_returns_within_flush_timeout(self, make_handler: Make, app_logger: logging.Logger,
                                                spool: bool) -> None:
        """close() with undeliverable records returns within flush_timeout plus a little; they are
        spooled for the next start, or (no spool) counted failed."""
        handler = make_handler(bootstrap_servers=f"127.0.0.1:{free_port()}", flush_timeout=2,
                               **({} if spool else {"spool_dir": False}))
        app_logger.addHandler(handler)
        for seq in range(50):
            app_logger.info("lost %d", seq)
        t0 = time.monotonic()
        handler.close()
        took = time.monotonic() - t0
        assert took < 2 + 3
        stats = handler.stats()
        assert stats["delivered"] == 0
        assert lost_or_spooled(stats, spool) == 50
        assert stats["broker_reachable"] is not True

    @SPOOL
    def test_queue_full_drops_are_counted(self, make_handler: Make, app_logger: logging.Logger, spool: bool) -> None:
        """queue_size=10 and no broker: 1000 calls never block long and the queue stays bounded. Without a
        spool the losses are counted; with one, a caller finding the queue full waits for the handler's
        thread to move the backlog to disk (it never waits on Kafka), and nothing is lost."""
        handler = make_handler(bootstrap_servers=f"127.0.0.1:{free_port()}", queue_size=10, flush_timeout=2,
                               block_timeout=2, **({} if spool else {"spool_dir": False}))
        app_logger.addHandler(handler)
        deepest = 0
        slowest = 0.0
        for seq in range(1000):
            t = time.monotonic()
            app_logger.warning("record %d", seq)
            slowest = max(slowest, time.monotonic() - t)
            deepest = max(deepest, handler.stats()["queue_depth"])
        assert slowest < (2 + 1 if spool else 0.2)  # a wait for room is bounded by block_timeout
        assert deepest <= 10
        stats = handler.stats()
        dropped = stats["dropped"].get("queue_full", 0)
        if spool:
            assert stats["dropped_total"] == 0, stats["dropped"]
        else:
            assert dropped > 0
            assert stats["dropped_total"] == dropped
        assert stats["delivered"] == 0
        handler.close()
        stats = handler.stats()
        assert stats["dropped"].get("queue_full", 0) == dropped
        assert lost_or_spooled(stats, spool) + dropped == 1000
        assert stats["delivered"] == 0


class TestDisabled:
    @pytest.mark.parametrize("how", ["argument", "environment"])
    def test_disabled_produces_nothing_and_starts_no_thread(
        self, make_handler: Make, app_logger: logging.Logger, kafka_broker: Any, kafka_topic: str,
        monkeypatch: pytest.MonkeyPatch, how: str,
    ) -> None:
        """enabled=False (or LOGKAFKA_ENABLED=false): no message, no logkafka thread."""
        threads_before = kafka_threads()
        if how == "argument":
            handler = make_handler(enabled=False)
        else:
            monkeypatch.setenv("LOGKAFKA_ENABLED", "false")
            handler = make_handler()
        app_logger.addHandler(handler)
        for seq in range(50):
            app_logger.info("silent", extra={"seq": seq})
        assert handler.flush() is True
        time.sleep(0.2)
        started = kafka_threads() - threads_before
        assert started == set()
        assert not any(t.name == f"logkafka-{kafka_topic}" for t in threading.enumerate())
        stats = handler.stats()
        assert stats["enabled"] is False
        assert (stats["produced"], stats["delivered"], stats["queue_depth"]) == (0, 0, 0)
        handler.close()
        assert read_topic(kafka_broker.bootstrap_servers, kafka_topic, timeout=3) == []


class TestAfterClose:
    def test_record_after_close_is_delivered(self, make_handler: Make, app_logger: logging.Logger,
                                             kafka_broker: Any, kafka_topic: str) -> None:
        """A record logged to a closed handler (a reconfiguration race) still arrives."""
        handler = make_handler()
        app_logger.addHandler(handler)
        for seq in range(10):
            app_logger.info("before close", extra={"seq": seq})
        handler.close()
        # close() does not wait for the thread; with nothing more to do it ends by itself
        deadline = time.monotonic() + 5
        while any(t.name == f"logkafka-{kafka_topic}" for t in threading.enumerate()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(t.name == f"logkafka-{kafka_topic}" for t in threading.enumerate())
        app_logger.info("after close", extra={"seq": 10})

        msgs = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=11)
        assert sorted(m.data["seq"] for m in msgs) == list(range(11))
        assert [m.data["message"] for m in msgs if m.data["seq"] == 10] == ["after close"]
        deadline = time.monotonic() + 10
        while handler.stats()["delivered"] != 11 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert handler.stats()["delivered"] == 11


class TestStats:
    def test_stats_keys_and_values(self, make_handler: Make, app_logger: logging.Logger,
                                   kafka_broker: Any, kafka_topic: str) -> None:
        """stats() has every counter; after a delivery broker_reachable is True."""
        handler = make_handler()
        stats = handler.stats()
        assert {"produced", "delivered", "failed", "in_flight", "queue_depth", "dropped", "dropped_total",
                "errors", "broker_reachable"} <= set(stats)
        assert (stats["produced"], stats["delivered"], stats["failed"], stats["in_flight"]) == (0, 0, 0, 0)
        assert stats["queue_depth"] == 0 and stats["dropped"] == {} and stats["dropped_total"] == 0
        assert stats["broker_reachable"] is not True
        app_logger.addHandler(handler)
        for seq in range(20):
            app_logger.info("counted", extra={"seq": seq})
        assert handler.flush() is True
        stats = handler.stats()
        assert (stats["produced"], stats["delivered"], stats["failed"], stats["in_flight"]) == (20, 20, 0, 0)
        assert stats["queue_depth"] == 0 and stats["dropped"] == {} and stats["dropped_total"] == 0
        assert stats["errors"] == 0
        assert stats["broker_reachable"] is True
        assert len(read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=20)) == 20

    def test_delivery_latency_percentiles(self, make_handler: Make, app_logger: logging.Logger) -> None:
        """latency_s gives p50 <= p95 <= p99 of the time from the log call to the acknowledgement."""
        handler = make_handler()
        assert handler.stats()["latency_s"] == {"p50": None, "p95": None, "p99": None}
        app_logger.addHandler(handler)
        t0 = time.time()
        for seq in range(2000):
            app_logger.info("timed", extra={"seq": seq})
        assert handler.flush() is True
        took = time.time() - t0
        lat = handler.stats()["latency_s"]
        assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= took

    def test_delivery_latency_is_measured_at_a_slow_pace_too(self, make_handler: Make,
                                                               app_logger: logging.Logger) -> None:
        """A service logging a record at a time (each produced on its own) has its latency measured too:
        one record in 64 of all it sent, not of what one turn of the handler's thread produced."""
        handler = make_handler()
        app_logger.addHandler(handler)
        for seq in range(130):
            app_logger.info("one at a time", extra={"seq": seq})
            assert handler.flush() is True
        lat = handler.stats()["latency_s"]
        assert lat["p50"] is not None and 0 < lat["p50"] <= lat["p99"], lat
