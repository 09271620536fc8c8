"""Audit and security streams: topics, keys, order per tenant, checks, envelope and headers."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from _support import assert_valid, schema_for

import logkafka
from logkafka.testing import read_topic

STREAMS = ("application", "audit", "security")


def make_namespace(broker: Any, partitions: int = 3) -> str:
    ns = f"t{uuid.uuid4().hex[:8]}"
    for stream in STREAMS:
        broker.create_topic(f"{ns}.logging.{stream}.v1", partitions)
    return ns


def root_with(handler: logging.Handler) -> logging.Logger:
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    return root


class TestChecks:
    @pytest.mark.parametrize(("kwargs", "field"), [
        ({"action": ""}, "action"),
        ({"actor": "  "}, "actor"),
        ({"resource": None}, "resource"),
        ({"outcome": "ok"}, "outcome"),
        ({"outcome": "SUCCESS"}, "outcome"),
        ({"tenant_id": ""}, "tenant_id"),
        ({"diff": {"before": {}}}, "diff"),
        ({"diff": {"old": [1]}}, "diff"),
        ({"ip_address": 7}, "ip_address"),
        ({"context": ["a"]}, "context"),
        ({"correlation_id": 5}, "correlation_id"),
    ])
    def test_audit_names_the_bad_field(self, kwargs: dict[str, Any], field: str) -> None:
        args = {"action": "update", "actor": "alice", "resource": "doc:1", "outcome": "success", **kwargs}
        with pytest.raises(ValueError, match=rf"^{field}:"):
            logkafka.audit(**args)

    @pytest.mark.parametrize(("kwargs", "field"), [
        ({"event_type": ""}, "event_type"),
        ({"user_id": 3}, "user_id"),
        ({"decision": "maybe"}, "decision"),
        ({"resource": ""}, "resource"),
    ])
    def test_security_names_the_bad_field(self, kwargs: dict[str, Any], field: str) -> None:
        args = {"event_type": "authentication", "user_id": "bob", "resource": "api", "decision": "allow", **kwargs}
        with pytest.raises(ValueError, match=rf"^{field}:"):
            logkafka.security(**args)

    def test_no_context_key_can_make_makerecord_raise(self) -> None:
        """PITFALLS 6: whatever keys the caller passes in ``context``, nothing collides with a LogRecord
        attribute: they arrive nested under "context"."""
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logkafka.JsonFormatter())
        root_with(handler)
        hostile = {k: f"v-{k}" for k in ("message", "msg", "args", "name", "levelname", "exc_info", "asctime",
                                          "module", "created", "stack_info", "taskName", "_lk_stream", "stream")}
        logkafka.audit("update", "alice", "doc:1", "success", context=hostile, diff={"old": hostile, "new": {}})
        logkafka.security("authorization", "bob", "api", "deny", context=hostile)
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        for d in lines:
            assert_valid(d)
        assert [d["stream"] for d in lines] == ["audit", "security"]
        for d in lines:
            assert d["context"] == hostile
        assert lines[0]["diff"]["old"] == hostile
        assert lines[0]["message"] == "audit: alice update doc:1: success"
        assert lines[1]["level"] == "WARNING"  # a denial

    def test_they_reach_the_applications_files(self, tmp_path: Path) -> None:
        """audit() and security() are ordinary logging calls: a FileHandler on the root gets them."""
        path = tmp_path / "app.log"
        handler = logging.FileHandler(path)
        handler.setFormatter(logkafka.JsonFormatter())
        root_with(handler)
        with logkafka.bound(correlation_id="cid-7"):
            logkafka.audit("delete", "alice", "doc:9", "failure", ip_address="10.0.0.1", user_agent="curl/8")
        handler.close()
        (d,) = [json.loads(line) for line in path.read_text().splitlines()]
        assert_valid(d, "audit", "flat")
        assert d["logger"] == "logkafka.audit" and d["level"] == "WARNING"
        assert (d["action"], d["actor"], d["resource"], d["outcome"]) == ("delete", "alice", "doc:9", "failure")
        assert (d["ip_address"], d["user_agent"], d["correlation_id"]) == ("10.0.0.1", "curl/8", "cid-7")
        assert d["tenant_id"] == "default"

    def test_tenant_falls_back_to_context_then_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logkafka.JsonFormatter())
        root_with(handler)
        monkeypatch.setenv("TENANT_ID", "from-env")
        logkafka.security("api_key", "svc", "api", "allow")
        with logkafka.bound(tenant_id="from-context"):
            logkafka.security("api_key", "svc", "api", "allow")
            logkafka.security("api_key", "svc", "api", "allow", tenant_id="given")
        tenants = [json.loads(line)["tenant_id"] for line in stream.getvalue().splitlines()]
        assert tenants == ["from-env", "from-context", "given"]


class TestTopicSettings:
    def test_namespace_names_all_three(self) -> None:
        h = logkafka.KafkaLogHandler("127.0.0.1:9", namespace="omninode", enabled=False)
        st = h.settings
        assert (st.topic, st.audit_topic, st.security_topic) == (
            "omninode.logging.application.v1", "omninode.logging.audit.v1", "omninode.logging.security.v1")

    def test_defaults_and_overrides(self, monkeypatch: pytest.MonkeyPatch) -> None:
        st = logkafka.KafkaLogHandler("127.0.0.1:9", enabled=False).settings
        assert (st.topic, st.audit_topic, st.security_topic) == (
            "logs.application.v1", "logs.audit.v1", "logs.security.v1")
        monkeypatch.setenv("LOGKAFKA_AUDIT_TOPIC", "env.audit")
        st = logkafka.KafkaLogHandler("127.0.0.1:9", namespace="ns", security_topic="my.security",
                                      enabled=False).settings
        assert (st.topic, st.audit_topic, st.security_topic) == ("ns.logging.application.v1", "env.audit",
                                                                 "my.security")

    @pytest.mark.parametrize(("kwargs", "name"), [
        ({"namespace": "a b"}, "namespace"), ({"namespace": ".x"}, "namespace"),
        ({"audit_topic": "a/b"}, "audit_topic"), ({"security_topic": ""}, "security_topic"),
        ({"format": "xml"}, "format"),
    ])
    def test_bad_settings_name_themselves(self, kwargs: dict[str, Any], name: str) -> None:
        with pytest.raises(ValueError, match=rf"^{name}:"):
            logkafka.KafkaLogHandler("127.0.0.1:9", enabled=False, **kwargs)

    def test_formatter_format_is_checked(self) -> None:
        with pytest.raises(ValueError, match=r"^format:"):
            logkafka.JsonFormatter(format="nested")


class TestAgainstTheBroker:
    def test_each_stream_in_its_topic_with_its_key_and_headers(self, kafka_broker: Any) -> None:
        ns = make_namespace(kafka_broker)
        handler = logkafka.KafkaLogHandler(kafka_broker.bootstrap_servers, namespace=ns, service_name="billing")
        root_with(handler)
        try:
            with logkafka.bound(correlation_id="req-1", tenant_id="acme"):
                logging.getLogger("app.orders").info("order placed", extra={"code": "ORD1"})
                logkafka.audit("update", "alice", "invoice:7", "success",
                               diff={"old": {"total": 1}, "new": {"total": 2}})
                logkafka.security("authorization", "alice", "invoice:7", "deny", tenant_id="globex")
            assert handler.flush(30) is True
            got = {s: read_topic(kafka_broker.bootstrap_servers, f"{ns}.logging.{s}.v1", expected=1)
                   for s in STREAMS}
        finally:
            handler.close()
        assert all(len(msgs) == 1 for msgs in got.values()), {s: len(m) for s, m in got.items()}
        app, aud, sec = got["application"][0], got["audit"][0], got["security"][0]
        assert app.key == b"billing" and aud.key == b"acme" and sec.key == b"globex"
        assert app.data["logger"] == "app.orders" and "stream" not in app.data
        assert aud.data["stream"] == "audit" and aud.data["diff"] == {"old": {"total": 1}, "new": {"total": 2}}
        assert sec.data["stream"] == "security" and sec.data["decision"] == "deny"
        for stream, m in (("application", app), ("audit", aud), ("security", sec)):
            assert_valid(m.data, stream, "flat")
            assert m.headers["content-type"] == b"application/json"
            assert m.headers["event_type"] == f"{ns}.logging.{stream}.v1".encode()
            assert m.headers["event_id"] == m.data["event_id"].encode()
            assert m.headers["correlation_id"] == b"req-1"
            assert m.data["correlation_id"] == "req-1"
        stats = handler.stats()
        assert stats["delivered"] == 3 and stats["dropped_total"] == 0
        assert stats["streams"][f"{ns}.logging.audit.v1"]["delivered"] == 2

    def test_in_order_per_tenant(self, kafka_broker: Any) -> None:
        """Audit records are keyed by tenant: each tenant's trail is in one partition, in order."""
        ns = make_namespace(kafka_broker, partitions=4)
        handler = logkafka.KafkaLogHandler(kafka_broker.bootstrap_servers, namespace=ns)
        root_with(handler)
        tenants = [f"tenant-{i}" for i in range(6)]
        try:
            for seq in range(600):
                logkafka.audit("step", "robot", f"item:{seq}", "success", tenant_id=tenants[seq % 6],
                               context={"seq": seq})
            assert handler.flush(60) is True
            msgs = read_topic(kafka_broker.bootstrap_servers, f"{ns}.logging.audit.v1", expected=600)
        finally:
            handler.close()
        assert len(msgs) == 600
        partitions: dict[str, set[int]] = defaultdict(set)
        trail: dict[str, list[int]] = defaultdict(list)
        for m in sorted(msgs, key=lambda m: (m.partition, m.offset)):
            assert_valid(m.data, "audit", "flat")
            tenant = m.data["tenant_id"]
            assert m.key == tenant.encode()
            partitions[tenant].add(m.partition)
            trail[tenant].append(m.data["context"]["seq"])
        assert all(len(p) == 1 for p in partitions.values()), partitions
        for i, tenant in enumerate(tenants):
            assert trail[tenant] == list(range(i, 600, 6))

    def test_drop_policies_never_drop_audit(self, kafka_broker: Any) -> None:
        """overflow="drop_newest" with a one-record queue drops application records (counted), never
        audit or security ones: they have their own queue."""
        ns = make_namespace(kafka_broker)
        handler = logkafka.KafkaLogHandler(kafka_broker.bootstrap_servers, namespace=ns, overflow="drop_newest",
                                           queue_size=1)
        root_with(handler)
        try:
            for seq in range(300):
                logging.getLogger("app").info("burst %d", seq)
                logkafka.security("api_key", "svc", "api", "allow", context={"seq": seq})
            assert handler.flush(60) is True
            msgs = read_topic(kafka_broker.bootstrap_servers, f"{ns}.logging.security.v1", expected=300)
            stats = handler.stats()
        finally:
            handler.close()
        assert sorted(m.data["context"]["seq"] for m in msgs) == list(range(300))
        for m in msgs:
            assert_valid(m.data, "security", "flat")
        assert stats["dropped"].get("drop_newest", 0) > 0  # the application's records did drop

    def test_audit_is_lost_only_to_a_full_queue_and_that_is_counted_and_said(
            self, capsys: pytest.CaptureFixture[str]) -> None:
        """No broker and no spool (its disk refuses, here: spool_dir=False): audit records wait in their own
        queue and the client's buffer; the ones beyond are dropped, counted as queue_full and said once,
        and the ledger balances (the README's "lost only if their queue is full")."""
        from _support import assert_ledger

        from logkafka.testing import free_port

        handler = logkafka.KafkaLogHandler(f"127.0.0.1:{free_port()}", "t.app", audit_topic="t.audit",
                                           spool_dir=False, flush_timeout=0.5)
        root_with(handler)
        try:
            for i in range(6000):
                logkafka.audit("order.placed", "u", f"order/{i}", "success")
        finally:
            logging.getLogger().handlers[:] = []
            handler.close()
        stats = handler.stats()  # settled: the ledger balances exactly (while records move, a batch may be missing)
        lost = stats["dropped"].get("queue_full", 0)
        assert 0 < lost < 6000, stats["dropped"]
        ledger = assert_ledger(stats)
        # what the queue held and no broker took by close() is lost too, as failed (no spool to keep it)
        assert ledger["accepted"] == 6000 and ledger["lost"]["queue_full"] == lost, ledger
        assert set(ledger["lost"]) <= {"queue_full", "failed"} and ledger["delivered"] == 0, ledger
        said = [line for line in capsys.readouterr().err.splitlines() if "their queue is full" in line]
        assert len(said) == 1, said

    def test_envelope_wraps_the_flat_record(self, kafka_broker: Any) -> None:
        ns = make_namespace(kafka_broker)
        handler = logkafka.KafkaLogHandler(kafka_broker.bootstrap_servers, namespace=ns, format="envelope",
                                           service_name="billing")
        flat = io.StringIO()
        side = logging.StreamHandler(flat)
        side.setFormatter(logkafka.JsonFormatter(service_name="billing"))
        root = root_with(handler)
        root.addHandler(side)
        try:
            with logkafka.bound(correlation_id="req-2", causation_id="evt-1", tenant_id="acme"):
                logging.getLogger("app").warning("disk low", extra={"code": "DISK"})
                logkafka.audit("login", "alice", "session", "success")
            assert handler.flush(30) is True
            app = read_topic(kafka_broker.bootstrap_servers, f"{ns}.logging.application.v1", expected=1)[0]
            aud = read_topic(kafka_broker.bootstrap_servers, f"{ns}.logging.audit.v1", expected=1)[0]
        finally:
            handler.close()
        lines = [json.loads(line) for line in flat.getvalue().splitlines()]
        for m, line, stream in ((app, lines[0], "application"), (aud, lines[1], "audit")):
            env = m.data
            assert_valid(env, stream, "envelope")
            assert_valid(line, stream, "flat")
            assert set(env) == {"event_type", "event_id", "timestamp", "tenant_id", "namespace", "source",
                                "correlation_id", "causation_id", "schema_ref", "payload"}
            assert env["payload"] == line  # the flat record, unchanged
            assert env["event_type"] == f"{ns}.logging.{stream}.v1"
            assert env["schema_ref"] == f"urn:logkafka:schema:{stream}.envelope.v1"
            assert (env["event_id"], env["timestamp"]) == (line["event_id"], line["timestamp"])
            assert (env["tenant_id"], env["namespace"], env["source"]) == ("acme", ns, "billing")
            assert (env["correlation_id"], env["causation_id"]) == ("req-2", "evt-1")


def test_formatter_envelope_on_a_file() -> None:
    """JsonFormatter(format="envelope") writes the same envelope to any handler."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logkafka.JsonFormatter(format="envelope", namespace="omninode", service_name="svc"))
    root_with(handler)
    logkafka.security("authentication", "bob", "login", "deny", tenant_id="t1", correlation_id="c9")
    env = json.loads(out.getvalue())
    assert_valid(env, "security", "envelope")
    assert env["event_type"] == "omninode.logging.security.v1"
    assert env["payload"]["stream"] == "security" and env["payload"]["user_id"] == "bob"
    assert (env["tenant_id"], env["correlation_id"], env["source"]) == ("t1", "c9", "svc")


class TestFieldPresets:
    @pytest.mark.parametrize(("preset", "names"), [
        ("ecs", {"@timestamp", "log.level", "log.logger", "service.name", "event.id", "trace.id", "span.id",
                 "error.type", "error.message", "error.stack_trace", "user.id", "http.request.method",
                 "event.duration"}),
        ("datadog", {"timestamp", "status", "logger.name", "service", "usr.id", "http.method", "trace_id",
                     "dd.trace_id", "error.kind", "error.stack", "duration"}),
        ("otel", {"timestamp", "severity_text", "severity_number", "body", "trace_id", "span_id", "attributes",
                  "resource"}),
    ])
    def test_preset_through_the_handler(self, kafka_broker: Any, kafka_topic: str, preset: str,
                                        names: set[str]) -> None:
        from opentelemetry.sdk.trace import TracerProvider

        handler = logkafka.KafkaLogHandler(kafka_broker.bootstrap_servers, kafka_topic, fields=preset,
                                           service_name="shop")
        lg = logging.getLogger(f"preset.{preset}")
        lg.handlers[:] = [handler]
        lg.propagate = False
        lg.setLevel(logging.INFO)
        tracer = TracerProvider().get_tracer("t")
        try:
            with tracer.start_as_current_span("s"), logkafka.bound(user_id="u-1"):
                try:
                    raise KeyError("sku")
                except KeyError:
                    lg.exception("lookup failed", extra={"http.method": "GET", "duration": 0.25})
            assert handler.flush(30) is True
            (m,) = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=1)
        finally:
            handler.close()
        d = m.data
        assert names <= set(d), names - set(d)
        if preset == "ecs":
            assert d["event.duration"] == 250_000_000 and d["service.name"] == "shop"
        elif preset == "datadog":
            assert d["duration"] == 250_000_000 and d["status"] == "error" and d["usr.id"] == "u-1"
        else:
            assert d["severity_number"] == 17 and d["body"] == "lookup failed"
            assert d["resource"]["service.name"] == "shop" and d["attributes"]["user.id"] == "u-1"
            assert d["attributes"]["exception.type"] == "KeyError"

    def test_rename_and_static_fields_apply_after_the_preset(self) -> None:
        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(logkafka.JsonFormatter(fields="ecs", rename_fields={"log.level": "severity"},
                                                    static_fields={"team": "payments"}))
        lg = logging.getLogger("preset.rename")
        lg.handlers[:] = [handler]
        lg.propagate = False
        lg.warning("careful")
        d = json.loads(out.getvalue())
        assert d["severity"] == "WARNING" and "log.level" not in d and d["team"] == "payments"
        assert d["message"] == "careful" and "@timestamp" in d

    def test_unknown_preset_names_the_setting(self) -> None:
        with pytest.raises(ValueError, match=r"^fields:"):
            logkafka.JsonFormatter(fields="elk")
        with pytest.raises(ValueError, match=r"^fields:"):
            logkafka.KafkaLogHandler("127.0.0.1:9", fields="splunk", enabled=False)


class TestSchemas:
    @pytest.mark.parametrize("stream", STREAMS)
    @pytest.mark.parametrize("fmt", ["flat", "envelope"])
    def test_shipped_and_valid(self, stream: str, fmt: str) -> None:
        schema = schema_for(stream, fmt)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$id"] == f"urn:logkafka:schema:{stream}.{fmt}.v1"

    @pytest.mark.parametrize(("stream", "change"), [
        ("audit", {"outcome": "ok"}), ("audit", {"stream": "security"}), ("audit", {"actor": ""}),
        ("security", {"decision": "permit"}), ("application", {"timestamp": "yesterday"}),
        ("application", {"trace_id": "XYZ"}), ("application", {"line": "12"}),
    ])
    def test_a_wrong_record_fails(self, stream: str, change: dict[str, Any]) -> None:
        """The schemas do check: a record our code writes validates, the same record altered does not."""
        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(logkafka.JsonFormatter())
        root_with(handler)
        if stream == "audit":
            logkafka.audit("update", "alice", "doc:1", "success")
        elif stream == "security":
            logkafka.security("authentication", "bob", "login", "allow")
        else:
            logging.getLogger("app").info("hello")
        record = json.loads(out.getvalue())
        assert_valid(record, stream, "flat")
        with pytest.raises(jsonschema.ValidationError):
            assert_valid({**record, **change}, stream, "flat")


def test_headers_stay_small_for_huge_values(kafka_broker: Any, kafka_topic: str) -> None:
    """A 2 MB message with a 5,000-character correlation id still arrives: the value is cut to fit
    message.max.bytes and the header values are cut at 200 bytes, so headers never push it over."""
    handler = logkafka.KafkaLogHandler(kafka_broker.bootstrap_servers, kafka_topic)
    lg = logging.getLogger("headers.huge")
    lg.handlers[:] = [handler]
    lg.propagate = False
    lg.setLevel(logging.INFO)
    try:
        with logkafka.bound(correlation_id="c" * 5000):
            lg.info("x" * 2_000_000, extra={"event_id": "e" * 3000})
        assert handler.flush(30) is True
        (m,) = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=1)
        stats = handler.stats()
    finally:
        handler.close()
    assert m.data["truncated"] is True and stats["failed"] == 0 and stats["truncated"] == 1
    assert m.headers["correlation_id"] == b"c" * 200 and m.headers["event_id"] == b"e" * 200
