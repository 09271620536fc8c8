"""encoding="otlp_proto" / "otlp_json": each Kafka message an ExportLogsServiceRequest, as the OpenTelemetry
Collector's Kafka receiver reads it; decoded here with opentelemetry-proto's own classes and protobuf's JSON
parser."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support import SPAN_ID, TRACE_ID, delivered_after_outage, in_span
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

import logkafka
from logkafka import KafkaLogHandler
from logkafka._otlp import severity_number
from logkafka.testing import free_port, read_topic

IDENTITY = {"service_name": "checkout", "environment": "prod", "version": "2.4.1", "instance_id": "pod-7"}


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger(f"otlp.{uuid.uuid4().hex[:8]}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    log.handlers.clear()


def log_three(log: logging.Logger) -> float:
    """An INFO record with a code, bound context and extras in a span, an ERROR with an exception, a DEBUG
    record outside the span; the time before the first."""
    before = time.time()
    with logkafka.bound(correlation_id="c0ffee", tenant_id="acme"), in_span():
        log.info("order %s placed", 7, extra={"code": "ORDER_PLACED", "order_id": 7, "amount": 42.5,
                                               "paid": True, "items": [1, "two"], "card": {"brand": "visa"}})
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            log.exception("payment failed")
    log.debug("outside", extra={"password": "hunter2"})
    return before


def attrs(kvs: Any) -> dict[str, Any]:
    """OTLP key-values as a dict of Python values."""
    out = {}
    for kv in kvs:
        out[kv.key] = any_value(kv.value)
    return out


def any_value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return attrs(v.kvlist_value.values)
    return getattr(v, kind)


def check_requests(requests: list[ExportLogsServiceRequest], before: float) -> None:
    """What both encodings must hold, read through the protobuf classes."""
    by_level = {}
    for req in requests:
        (rl,) = req.resource_logs
        (sl,) = rl.scope_logs
        (lr,) = sl.log_records
        by_level[lr.severity_text] = (attrs(rl.resource.attributes), sl.scope, lr)
    assert set(by_level) == {"INFO", "ERROR", "DEBUG"}
    resource, scope, info = by_level["INFO"]
    assert resource["service.name"] == "checkout" and resource["service.version"] == "2.4.1"
    assert resource["deployment.environment.name"] == "prod" and resource["service.instance.id"] == "pod-7"
    assert isinstance(resource["process.pid"], int) and resource["host.name"]
    assert scope.name.startswith("otlp.")
    assert info.body.string_value == "order 7 placed" and info.severity_number == 9
    assert info.event_name == "ORDER_PLACED"
    assert before * 1e9 <= info.time_unix_nano <= time.time() * 1e9
    assert info.observed_time_unix_nano >= info.time_unix_nano
    assert info.trace_id == TRACE_ID.to_bytes(16, "big") and info.span_id == SPAN_ID.to_bytes(8, "big")
    assert info.flags & 0xFF == 1
    a = attrs(info.attributes)
    assert (a["order_id"], a["amount"], a["paid"], a["items"], a["card"]) == (7, 42.5, True, [1, "two"],
                                                                              {"brand": "visa"})
    assert (a["correlation_id"], a["tenant_id"]) == ("c0ffee", "acme")
    assert a["code.function.name"] == "log_three" and isinstance(a["code.line.number"], int)
    assert a["thread.name"] == "MainThread" and len(a["log.record.uid"]) == 36
    assert "message" not in a and "service" not in a and "trace_id" not in a
    _, _, error = by_level["ERROR"]
    e = attrs(error.attributes)
    assert error.severity_number == 17 and error.body.string_value == "payment failed"
    assert e["exception.type"] == "ZeroDivisionError" and "Traceback" in e["exception.stacktrace"]
    _, _, debug = by_level["DEBUG"]
    assert debug.severity_number == 5 and debug.trace_id == b"" and debug.flags == 0
    assert attrs(debug.attributes)["password"] == "[REDACTED]"  # the formatter's fields: redacted


class TestEncodings:
    def test_otlp_proto(self, kafka_broker: Any, kafka_topic: str, logger: logging.Logger) -> None:
        handler = KafkaLogHandler(kafka_broker.bootstrap_servers, kafka_topic, encoding="otlp_proto", **IDENTITY)
        logger.addHandler(handler)
        before = log_three(logger)
        assert handler.flush(30)
        handler.close()
        got = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=3, timeout=60)
        assert {m.headers["content-type"] for m in got} == {b"application/x-protobuf"}
        check_requests([ExportLogsServiceRequest.FromString(m.value) for m in got], before)

    def test_otlp_json(self, kafka_broker: Any, kafka_topic: str, logger: logging.Logger) -> None:
        """OTLP/JSON as its spec writes it: camelCase names, ids in hex, 64-bit integers as strings; with the ids
        turned to base64 (what protobuf's JSON mapping expects), protobuf's parser reads every message."""
        handler = KafkaLogHandler(kafka_broker.bootstrap_servers, kafka_topic, encoding="otlp_json", **IDENTITY)
        logger.addHandler(handler)
        before = log_three(logger)
        assert handler.flush(30)
        handler.close()
        got = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=3, timeout=60)
        assert {m.headers["content-type"] for m in got} == {b"application/json"}
        requests = []
        for m in got:
            data = json.loads(m.value)
            record = data["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
            assert isinstance(record["timeUnixNano"], str)
            if "traceId" in record:
                assert record["traceId"] == f"{TRACE_ID:032x}" and record["spanId"] == f"{SPAN_ID:016x}"
                for k in ("traceId", "spanId"):
                    record[k] = base64.b64encode(bytes.fromhex(record[k])).decode()
            requests.append(json_format.Parse(json.dumps(data), ExportLogsServiceRequest()))
        check_requests(requests, before)

    def test_binary_records_wait_out_an_outage_in_the_spool(self, tmp_path: Path, logger: logging.Logger) -> None:
        """otlp_proto values are bytes, not text: the spool keeps them whole, and the replay sends them."""
        port = free_port()
        topic = f"otlp.{uuid.uuid4().hex[:8]}"
        handler = KafkaLogHandler(f"127.0.0.1:{port}", topic, encoding="otlp_proto", spool_dir=str(tmp_path),
                                  flush_timeout=60, producer_config={"message.timeout.ms": 1000}, **IDENTITY)
        logger.addHandler(handler)
        try:
            for n in range(30):
                logger.warning("waited %d", n, extra={"n": n, "blob": "é\u00ff\x00"})
            got = delivered_after_outage(handler, port, topic, 30)
        finally:
            handler.close()
        seen = []
        for m in got:
            (lr,) = ExportLogsServiceRequest.FromString(m.value).resource_logs[0].scope_logs[0].log_records
            a = attrs(lr.attributes)
            assert a["blob"] == "é\u00ff\x00"
            seen.append(a["n"])
        assert seen == list(range(30))


class TestSettings:
    def test_unknown_encoding(self) -> None:
        with pytest.raises(ValueError, match=r"^encoding: "):
            KafkaLogHandler("127.0.0.1:1", "t", encoding="otlp")

    def test_otlp_with_the_envelope(self) -> None:
        """The envelope wraps JSON records: it does not go with an OTLP encoding."""
        with pytest.raises(ValueError, match=r"^encoding: 'otlp_proto' cannot be combined with format='envelope'"):
            KafkaLogHandler("127.0.0.1:1", "t", encoding="otlp_proto", format="envelope")

    def test_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("LOGKAFKA_ENCODING", "otlp_json")
        handler = KafkaLogHandler("127.0.0.1:1", "t")
        try:
            assert handler.settings.encoding == "otlp_json"
        finally:
            handler.close()


@pytest.mark.parametrize(("levelno", "number"), [
    (logging.DEBUG, 5), (logging.INFO, 9), (logging.WARNING, 13), (logging.ERROR, 17), (logging.CRITICAL, 21),
    (25, 11), (5, 3), (1, 1), (0, 0), (60, 24), (15, 7)])
def test_severity_numbers(levelno: int, number: int) -> None:
    """Levels map to OpenTelemetry's severity numbers; levels between take the steps between."""
    assert severity_number(levelno) == number
