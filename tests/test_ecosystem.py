"""Coming from other tools: functions named in configuration files (OAUTHBEARER, AWS MSK IAM, a user's
``error_cb``), ..."""

from __future__ import annotations

import logging
import logging.config
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support import SPAN_ID, TRACE_ID, delivered_after_outage, in_span, logger_with

from logkafka import KafkaLogHandler

NOWHERE = "127.0.0.1:1"


@pytest.fixture
def auth_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An importable module of the user's with a token function, an error callback, and what they saw."""
    name = f"lk_auth_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent("""
        import threading, time
        token_calls = []
        errors = []
        called = threading.Event()

        def token(config):
            token_calls.append(config)
            called.set()
            return "a-token", time.time() + 3600

        def on_error(err):
            errors.append(err)
            called.set()
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    yield importlib.import_module(name)
    sys.modules.pop(name, None)


def wait_for(event: threading.Event, what: str) -> None:
    assert event.wait(20), f"{what} was never called"


class TestFunctionsNamedInConfiguration:
    def test_ext_oauth_cb_from_dictconfig_is_imported_and_called(self, auth_module: Any) -> None:
        """dictConfig leaves 'ext://' inside producer_config as text: the handler imports the function, and
        librdkafka calls it for an OAUTHBEARER token (the way AWS MSK IAM and Confluent Cloud OAuth are set up)."""
        config = {"version": 1, "disable_existing_loggers": False, "handlers": {"kafka": {
            "class": "logkafka.KafkaLogHandler", "bootstrap_servers": NOWHERE, "topic": "t", "flush_timeout": 0.5,
            "producer_config": {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "OAUTHBEARER",
                                "oauth_cb": f"ext://{auth_module.__name__}.token"}}},
            "loggers": {"eco.oauth": {"handlers": ["kafka"], "level": "INFO", "propagate": False}}}
        logging.config.dictConfig(config)
        handler = logging.getLogger("eco.oauth").handlers[0]
        try:
            assert isinstance(handler, KafkaLogHandler)
            assert handler.settings.producer_config["oauth_cb"] is auth_module.token
            assert auth_module.token_calls == []  # not called while the settings were checked
            logging.getLogger("eco.oauth").info("hello")  # the handler's thread starts its producer
            wait_for(auth_module.called, "oauth_cb")
            assert auth_module.token_calls[0] is None or isinstance(auth_module.token_calls[0], str)
        finally:
            logging.getLogger("eco.oauth").handlers.clear()
            handler.close()

    @pytest.mark.parametrize("form", ["ext://{m}.token", "{m}:token", "{m}.token", " ext://{m}.token "])
    def test_forms_of_a_name(self, auth_module: Any, made: list[KafkaLogHandler], form: str) -> None:
        """'ext://module.function', 'module:function' and 'module.function' name the same function."""
        made.append(KafkaLogHandler(NOWHERE, "t", producer_config={
            "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "OAUTHBEARER",
            "oauth_cb": form.format(m=auth_module.__name__)}))
        assert made[-1].settings.producer_config["oauth_cb"] is auth_module.token

    def test_a_submodule_not_imported_yet(self, made: list[KafkaLogHandler]) -> None:
        """A dotted name imports the packages on its way, as dictConfig's ext:// does."""
        sys.modules.pop("xml.dom.minidom", None)
        made.append(KafkaLogHandler(NOWHERE, "t", producer_config={
            "statistics.interval.ms": 60_000, "stats_cb": "ext://xml.dom.minidom.parseString"}))
        import xml.dom.minidom
        assert made[-1].settings.producer_config["stats_cb"] is xml.dom.minidom.parseString

    def test_from_the_environment(self, auth_module: Any, made: list[KafkaLogHandler],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
        """LOGKAFKA_PRODUCER_CONFIG can name the function too (a Kubernetes secret or config map)."""
        monkeypatch.setenv("LOGKAFKA_PRODUCER_CONFIG", "security.protocol=SASL_PLAINTEXT\n"
                           f"sasl.mechanisms=OAUTHBEARER\noauth_cb=ext://{auth_module.__name__}.token")
        made.append(KafkaLogHandler(NOWHERE, "t"))
        assert made[-1].settings.producer_config["oauth_cb"] is auth_module.token

    @pytest.mark.parametrize(("value", "expected"), [
        ("ext://lk_no_such_module_x.token",
         "producer_config['oauth_cb']: cannot import 'ext://lk_no_such_module_x.token': No module named "
         "'lk_no_such_module_x'"),
        ("ext://json.no_such_function", "producer_config['oauth_cb']: no 'json.no_such_function' (from "
         "'ext://json.no_such_function')"),
        ("json:dumps.nope", "producer_config['oauth_cb']: no 'json.dumps.nope' (from 'json:dumps.nope')"),
        ("token", "producer_config['oauth_cb']: expected a function named 'ext://package.module.function' or "
                  "'package.module:function', got 'token'"),
        ("ext://json.dumps()", "producer_config['oauth_cb']: expected a function named"),
        ("ext://json.JSONDecodeError.__name__", "producer_config['oauth_cb']: expected a function, got "
                                                "'JSONDecodeError'"),
    ])
    def test_a_name_that_does_not_resolve(self, value: str, expected: str) -> None:
        """A name that cannot be imported, or is not a function, is a ValueError naming the setting."""
        with pytest.raises(ValueError) as info:
            KafkaLogHandler(NOWHERE, "t", producer_config={"oauth_cb": value})
        assert str(info.value).startswith(expected), str(info.value)

    def test_text_settings_stay_text(self, made: list[KafkaLogHandler]) -> None:
        """Only settings whose values are functions are imported: others are librdkafka's text."""
        made.append(KafkaLogHandler(NOWHERE, "t", producer_config={"client.id": "json.dumps"}))
        assert made[-1].settings.producer_config["client.id"] == "json.dumps"

    def test_the_users_error_cb_is_called_after_logkafkas(self, auth_module: Any,
                                                           made: list[KafkaLogHandler]) -> None:
        """A user's error_cb sees the client's errors; logkafka still counts them and says the outage."""
        handler = KafkaLogHandler(NOWHERE, "t", flush_timeout=0.5,
                                  producer_config={"error_cb": f"ext://{auth_module.__name__}.on_error"})
        made.append(handler)
        log = logging.getLogger(f"eco.error_cb.{uuid.uuid4().hex[:6]}")
        log.propagate = False
        log.addHandler(handler)
        log.warning("nobody listens")
        wait_for(auth_module.called, "error_cb")
        deadline = time.monotonic() + 20
        while not handler.stats()["errors"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert auth_module.errors[0].code() is not None
        assert handler.stats()["errors"] >= 1, handler.stats()

    def test_an_error_cb_that_raises_is_said_and_ignored(self, made: list[KafkaLogHandler],
                                                          capfd: pytest.CaptureFixture[str]) -> None:
        """A failing error_cb of the user's never stops logkafka's own watch: it is said on stderr."""
        seen = threading.Event()

        def broken(err: Any) -> None:
            seen.set()
            raise RuntimeError("the user's callback broke")

        handler = KafkaLogHandler(NOWHERE, "t", flush_timeout=0.5, producer_config={"error_cb": broken})
        made.append(handler)
        log = logging.getLogger(f"eco.error_cb.broken.{uuid.uuid4().hex[:6]}")
        log.propagate = False
        log.addHandler(handler)
        log.warning("nobody listens")
        wait_for(seen, "error_cb")
        deadline = time.monotonic() + 10
        while "the user's callback broke" not in (err := capfd.readouterr().err) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "producer_config['error_cb'] raised RuntimeError: the user's callback broke" in err


ROOT = Path(__file__).resolve().parent.parent


class TestCloudSignIn:
    @pytest.fixture
    def aws_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """AWS credentials in the environment, as a pod's or a CI job's (made up: the token is signed locally)."""
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                     "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEY123456")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret/EXAMPLEKEY/made-up")
        monkeypatch.setenv("AWS_REGION", "eu-west-1")
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.syspath_prepend(str(ROOT))

    def test_the_msk_iam_token_is_a_signed_connect_request(self, aws_env: None) -> None:
        """The recipe's token is what MSK checks: a base64url SigV4-signed kafka-cluster:Connect request for
        the region, signed with the credentials found, expiring in the future."""
        import base64
        from urllib.parse import parse_qs, urlparse

        from examples.cloud_auth import msk_iam_token

        token, expires = msk_iam_token(None)
        url = urlparse(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
        query = parse_qs(url.query)
        assert url.hostname == "kafka.eu-west-1.amazonaws.com"
        assert query["Action"] == ["kafka-cluster:Connect"]
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
        assert query["X-Amz-Credential"][0].startswith("AKIAEXAMPLEKEY123456/")
        assert "/eu-west-1/kafka-cluster/" in query["X-Amz-Credential"][0]
        assert time.time() < expires < time.time() + 24 * 3600

    def test_the_readme_recipe_from_yaml_signs_in_through_librdkafka(self, aws_env: None,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
        """The README's YAML block, as written (the servers aside), makes a handler whose client asks the
        recipe's function for its token."""
        import yaml

        import examples.cloud_auth

        made: list[tuple[str, float]] = []
        asked = threading.Event()
        real = examples.cloud_auth.msk_iam_token

        def watched(config: Any) -> tuple[str, float]:
            made.append(real(config))
            asked.set()
            return made[-1]

        monkeypatch.setattr(examples.cloud_auth, "msk_iam_token", watched)
        text = readme_block("yaml", "ext://examples.cloud_auth.msk_iam_token")
        config = yaml.safe_load(text)
        kafka = config["handlers"]["kafka"]
        kafka["bootstrap_servers"] = NOWHERE
        kafka["flush_timeout"] = 0.5
        logging.config.dictConfig(config)
        log = logging.getLogger(next(iter(config["loggers"])))
        handler = next(h for h in log.handlers if isinstance(h, KafkaLogHandler))
        try:
            assert handler.settings.producer_config["oauth_cb"] is watched
            log.warning("signing in")
            wait_for(asked, "the MSK IAM oauth_cb")
            assert made[0][0] and made[0][1] > time.time()
        finally:
            log.handlers.clear()
            handler.close()


def readme_block(lang: str, containing: str) -> str:
    """The README's fenced ``lang`` block that contains ``containing``."""
    text = (ROOT / "README.md").read_text()
    for block in text.split(f"```{lang}\n")[1:]:
        body = block.split("```", 1)[0]
        if containing in body:
            return body
    raise AssertionError(f"no {lang} block with {containing!r} in README.md")


def test_the_readme_confluent_cloud_properties_read_the_secret_from_its_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, made: list[KafkaLogHandler]) -> None:
    """The README's properties file, as written (the secret's path aside): the client settings come from
    LOGKAFKA_PRODUCER_CONFIG_FILE, the password from the mounted file, and librdkafka accepts them."""
    text = readme_block("properties", "sasl.mechanisms=PLAIN")
    secret = tmp_path / "api-secret"
    secret.write_text("s3cr3t-from-the-mount\n")
    path = tmp_path / "client.properties"
    path.write_text(text.replace("/var/run/secrets/confluent/api-secret", str(secret)))
    monkeypatch.setenv("LOGKAFKA_PRODUCER_CONFIG_FILE", str(path))
    made.append(KafkaLogHandler(NOWHERE, "t"))
    config = made[-1].settings.producer_config
    assert (config["security.protocol"], config["sasl.mechanisms"]) == ("SASL_SSL", "PLAIN")
    assert config["sasl.username"] == "ABCDEFGHIJKLMNOP"
    assert config["sasl.password"] == "s3cr3t-from-the-mount"
    assert "s3cr3t" not in repr(made[-1].stats())


# -- headers ----------------------------------------------------------------------------------------
class TestHeaders:
    def test_static_headers_and_traceparent_from_dictconfig(self, kafka_broker: Any, kafka_topic: str) -> None:
        """headers={...} from dictConfig arrive on every message, audit records too; a record logged in a span
        carries its W3C traceparent (flags included), one logged outside none."""
        import logkafka
        from logkafka.testing import read_topic

        config = {"version": 1, "disable_existing_loggers": False, "handlers": {"kafka": {
            "class": "logkafka.KafkaLogHandler", "bootstrap_servers": kafka_broker.bootstrap_servers,
            "topic": kafka_topic, "audit_topic": kafka_topic, "security_topic": kafka_topic,
            "headers": {"team": "payments", "region": "eu-west-1", "schema": 3}}},
            "root": {"handlers": ["kafka"], "level": "INFO"}}
        logging.config.dictConfig(config)
        root = logging.getLogger()
        handler = next(h for h in root.handlers if isinstance(h, KafkaLogHandler))
        try:
            log = logging.getLogger("eco.headers")
            log.info("outside")
            with in_span():
                log.info("inside")
            with in_span(sampled=False):
                log.info("unsampled")
            logkafka.audit("role.granted", "admin", "user:u-1", "success")
            assert handler.flush(30)
        finally:
            root.removeHandler(handler)
            handler.close()
        got = {m.data.get("message") or m.data.get("code") or m.data.get("action"): m
               for m in read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=4, timeout=60)}
        assert len(got) == 4, list(got)
        for m in got.values():
            assert (m.headers["team"], m.headers["region"], m.headers["schema"]) == (
                b"payments", b"eu-west-1", b"3"), m.headers
        assert "traceparent" not in got["outside"].headers
        assert got["inside"].headers["traceparent"] == f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01".encode()
        assert got["inside"].data["trace_id"] == f"{TRACE_ID:032x}"
        assert got["unsampled"].headers["traceparent"].endswith(b"-00")

    def test_headers_are_kept_through_the_spool_and_its_replay(self, tmp_path: Path) -> None:
        """Records that waited out an outage in the spool are sent with the same headers."""
        from logkafka.testing import free_port

        port = free_port()
        topic = f"eco.{uuid.uuid4().hex[:8]}"
        handler = KafkaLogHandler(f"127.0.0.1:{port}", topic, spool_dir=str(tmp_path), flush_timeout=60,
                                  headers={"team": "payments"}, producer_config={"message.timeout.ms": 1000})
        log = logger_with(handler, "eco.spool")
        try:
            with in_span():
                for n in range(50):
                    log.warning("waited %d", n, extra={"n": n})
            got = delivered_after_outage(handler, port, topic, 50)
        finally:
            log.removeHandler(handler)
            handler.close()
        assert handler.stats()["replayed"] == 50
        assert [m.data["n"] for m in got] == list(range(50))
        for m in got:
            assert m.headers.get("team") == b"payments", m.headers
            assert m.headers["traceparent"] == f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01".encode()
            assert m.headers["event_id"].decode() == m.data["event_id"]

    @pytest.mark.parametrize(("value", "expected"), [
        (["team", "payments"], "headers: expected a mapping of header names to text, got list"),
        ({"event_id": "x"}, "headers['event_id']: logkafka sets this header itself"),
        ({"TraceParent": "x"}, "headers['TraceParent']: logkafka sets this header itself"),
        ({"": "x"}, "headers: header names must be non-empty text, got ''"),
        ({"team": {"a": 1}}, "headers['team']: expected text, got dict"),
        ({"team": None}, "headers['team']: expected text, got NoneType"),
        ({"big": "x" * 300}, "headers: 311 bytes of headers, more than the 256 kept for them"),
    ])
    def test_bad_headers(self, value: Any, expected: str) -> None:
        """A wrong header is a ValueError naming the setting and the header."""
        with pytest.raises(ValueError) as info:
            KafkaLogHandler(NOWHERE, "t", headers=value)
        assert str(info.value).startswith(expected), str(info.value)

    @pytest.mark.parametrize(("text", "expected"), [
        ("team=payments, region=eu-west-1", (("team", "payments"), ("region", "eu-west-1"))),
        ('{"team": "payments", "tier": 1}', (("team", "payments"), ("tier", "1"))),
    ])
    def test_headers_from_the_environment(self, monkeypatch: pytest.MonkeyPatch, made: list[KafkaLogHandler],
                                          text: str, expected: tuple[tuple[str, str], ...]) -> None:
        """LOGKAFKA_HEADERS: name=value pairs or a JSON object; the argument wins over it."""
        monkeypatch.setenv("LOGKAFKA_HEADERS", text)
        made.append(KafkaLogHandler(NOWHERE, "t"))
        assert made[-1].settings.headers == expected
        made.append(KafkaLogHandler(NOWHERE, "t", headers={"only": "this"}))
        assert made[-1].settings.headers == (("only", "this"),)

    def test_malformed_headers_in_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("LOGKAFKA_HEADERS", "team")
        with pytest.raises(ValueError) as info:
            KafkaLogHandler(NOWHERE, "t")
        assert str(info.value) == "LOGKAFKA_HEADERS: expected name=value[,name=value...], got 'team'"


class TestOpenTelemetryLogging:
    def test_records_enriched_by_the_instrumentation_are_not_duplicated(self, kafka_broker: Any,
                                                                        kafka_topic: str) -> None:
        """opentelemetry-instrumentation-logging adds otelTraceID, otelSpanID, otelServiceName and
        otelTraceSampled to every record ("0" outside a span): the record ships its trace and span once, as
        trace_id / span_id from the span itself."""
        from opentelemetry.instrumentation.logging import LoggingInstrumentor

        from logkafka.testing import read_topic

        instrumentor = LoggingInstrumentor()
        instrumentor.instrument(set_logging_format=False)
        handler = KafkaLogHandler(kafka_broker.bootstrap_servers, kafka_topic)
        log = logger_with(handler, "eco.otel")
        try:
            with in_span():
                log.info("inside")
            log.info("outside")
            assert handler.flush(30)
        finally:
            instrumentor.uninstrument()
            log.removeHandler(handler)
            handler.close()
        got = {m.data["message"]: m.data for m in read_topic(kafka_broker.bootstrap_servers, kafka_topic,
                                                             expected=2, timeout=60)}
        for data in got.values():
            assert not any(k.startswith("otel") for k in data), data
            assert not any(k.startswith("otel") for k in data.get("extra", {})), data
        assert got["inside"]["trace_id"] == f"{TRACE_ID:032x}" and got["inside"]["span_id"] == f"{SPAN_ID:016x}"
        assert "trace_id" not in got["outside"]


# -- a QueueHandler in front ------------------------------------------------------------------------
def shipped_fields(data: dict[str, Any]) -> dict[str, Any]:
    """A record's fields that do not depend on where in the test it was logged."""
    out = {k: v for k, v in data.items() if k not in ("timestamp", "event_id", "logger", "line")}
    if "error" in out:
        error = dict(out["error"])
        assert "ZeroDivisionError" in error.pop("stack_trace")
        out["error"] = error
    return out


class TestQueueHandlerInFront:
    def test_the_record_is_the_one_shipped_without_the_queue(self, kafka_broker: Any, kafka_topic: str) -> None:
        """The logging cookbook's QueueHandler + QueueListener, given logkafka.JsonFormatter: the Kafka record
        equals the one a KafkaLogHandler attached directly ships: the message (not the JSON line), the bound
        context, the span's ids and the structured error, all as at the call."""
        import logging.handlers
        import queue

        import logkafka
        from logkafka.testing import read_topic

        kafka = KafkaLogHandler(kafka_broker.bootstrap_servers, kafka_topic)
        q: queue.Queue[Any] = queue.Queue()
        front = logging.handlers.QueueHandler(q)
        front.setFormatter(logkafka.JsonFormatter())
        listener = logging.handlers.QueueListener(q, kafka, respect_handler_level=True)
        listener.start()
        loggers = {}
        for name, handler in (("direct", kafka), ("queued", front)):
            log = loggers[name] = logging.getLogger(f"eco.queue.{name}.{kafka_topic}")
            log.propagate = False
            log.setLevel(logging.INFO)
            log.addHandler(handler)
        try:
            for log in loggers.values():
                with logkafka.bound(correlation_id="c0ffee", tenant_id="acme"), in_span():
                    log.info("order %s placed", 7, extra={"order_id": 7, "items": [1, 2]})
                    try:
                        1 / 0  # noqa: B018
                    except ZeroDivisionError:
                        log.exception("payment %s failed", "p-1")
            listener.stop()
            assert kafka.flush(30)
        finally:
            for log in loggers.values():
                log.handlers.clear()
            kafka.close()
        got = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=4, timeout=60)
        by = {(m.data["logger"].split(".")[2], m.data["level"]): m.data for m in got}
        assert len(by) == 4, [m.data for m in got]
        for level in ("INFO", "ERROR"):
            direct, queued = by[("direct", level)], by[("queued", level)]
            assert shipped_fields(queued) == shipped_fields(direct), (queued, direct)
        queued = by[("queued", "INFO")]
        assert queued["message"] == "order 7 placed" and queued["correlation_id"] == "c0ffee", queued
        assert queued["trace_id"] == f"{TRACE_ID:032x}" and queued["items"] == [1, 2], queued
        error = by[("queued", "ERROR")]
        assert error["message"] == "payment p-1 failed", error
        assert error["error"]["type"] == "ZeroDivisionError" and "Traceback" not in error["message"], error

    def test_the_queue_keeps_the_event_id_of_the_file_line(self, kafka_broker: Any, kafka_topic: str,
                                                          tmp_path: Path) -> None:
        """One JsonFormatter on the QueueHandler and on a FileHandler behind the listener: the file's line and
        the Kafka message carry one event_id."""
        import json
        import logging.handlers
        import queue

        import logkafka
        from logkafka.testing import read_topic

        formatter = logkafka.JsonFormatter()
        kafka = KafkaLogHandler(kafka_broker.bootstrap_servers, kafka_topic)
        file = logging.FileHandler(tmp_path / "app.log")
        file.setFormatter(formatter)
        q: queue.Queue[Any] = queue.Queue()
        front = logging.handlers.QueueHandler(q)
        front.setFormatter(formatter)
        listener = logging.handlers.QueueListener(q, kafka, file)
        listener.start()
        log = logging.getLogger(f"eco.queue.file.{kafka_topic}")
        log.propagate = False
        log.addHandler(front)
        try:
            log.warning("disk %s%% full", 91)
            listener.stop()
            assert kafka.flush(30)
        finally:
            log.handlers.clear()
            kafka.close()
            file.close()
        (line,) = (tmp_path / "app.log").read_text().splitlines()
        (message,) = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=1, timeout=60)
        assert json.loads(line)["message"] == "disk 91% full"
        assert message.data["message"] == "disk 91% full"
        assert message.data["event_id"] == json.loads(line)["event_id"]


# -- loguru -----------------------------------------------------------------------------------------
class TestLoguru:
    def test_loguru_sink_ships_clean_records(self, kafka_broker: Any, kafka_topic: str) -> None:
        """loguru through logkafka.loguru_sink: the message as written, bind() values as top-level fields (a
        clash with a record attribute as extra.<name>), the exception under error, loguru's level names, the
        caller's bound context and span."""
        from loguru import logger

        import logkafka
        from logkafka.testing import read_topic

        handler = KafkaLogHandler(kafka_broker.bootstrap_servers, kafka_topic)
        sink = logger.add(logkafka.loguru_sink(handler), level="INFO")
        try:
            with logkafka.bound(correlation_id="c0ffee"), in_span():
                log = logger.bind(order_id=7, name="clash", items=[1, 2])
                log.info("order {} placed", 7)
                try:
                    1 / 0  # noqa: B018
                except ZeroDivisionError:
                    log.exception("payment failed")
                log.success("paid")
                log.debug("below the sink's level")
            assert handler.flush(30)
        finally:
            logger.remove(sink)
            handler.close()
        got = {m.data["level"]: m.data for m in read_topic(kafka_broker.bootstrap_servers, kafka_topic,
                                                           expected=3, timeout=60)}
        assert set(got) == {"INFO", "ERROR", "SUCCESS"}, list(got)
        info = got["INFO"]
        assert info["message"] == "order 7 placed" and info["order_id"] == 7 and info["items"] == [1, 2], info
        assert info["extra.name"] == "clash" and "extra" not in info, info
        assert info["correlation_id"] == "c0ffee" and info["trace_id"] == f"{TRACE_ID:032x}", info
        assert info["logger"] == __name__ and info["function"] == "test_loguru_sink_ships_clean_records", info
        error = got["ERROR"]
        assert error["message"] == "payment failed" and "Traceback" not in error["message"], error
        assert error["error"]["type"] == "ZeroDivisionError", error
        assert "ZeroDivisionError" in error["error"]["stack_trace"], error

    def test_loguru_sink_wants_a_handler(self) -> None:
        import logkafka

        with pytest.raises(ValueError, match=r"^handler: expected a logging.Handler, got str$"):
            logkafka.loguru_sink("kafka")  # type: ignore[arg-type]


# -- structlog --------------------------------------------------------------------------------------
@pytest.fixture
def structlog_reset() -> Iterator[None]:
    import structlog

    yield
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


class TestStructlog:
    def _configure(self, path: str) -> None:
        """Each path as its README recipe configures it (render_to_log_kwargs: without the processors that
        add what the record already holds, level, logger name and time, which it would pass on as extras)."""
        import structlog

        sl = structlog.stdlib
        if path == "wrap_for_formatter":
            processors = [structlog.contextvars.merge_contextvars, sl.add_log_level, sl.add_logger_name,
                          structlog.processors.TimeStamper(fmt="iso"), sl.PositionalArgumentsFormatter(),
                          sl.ProcessorFormatter.wrap_for_formatter]
        else:
            processors = [structlog.contextvars.merge_contextvars, sl.PositionalArgumentsFormatter(),
                          sl.render_to_log_kwargs]
        structlog.configure(
            processors=processors,
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=False)

    @pytest.mark.parametrize("path", ["wrap_for_formatter", "render_to_log_kwargs"])
    def test_both_stdlib_paths_ship_clean_records(self, kafka_broker: Any, kafka_topic: str, path: str,
                                                  structlog_reset: None) -> None:
        """structlog's two stdlib paths: the event as message, key-values as fields, no structlog internals,
        its level and timestamp not repeated, the exception under error; structlog's contextvars and
        logkafka.bind values in one context."""
        import structlog

        import logkafka
        from logkafka.testing import read_topic

        self._configure(path)
        handler = KafkaLogHandler(kafka_broker.bootstrap_servers, kafka_topic)
        std = logger_with(handler, f"eco.structlog.{path}")
        try:
            structlog.contextvars.bind_contextvars(request_id="r-1", tenant_id="acme")
            with logkafka.bound(correlation_id="c0ffee"), in_span():
                log = structlog.get_logger(std.name)
                log.info("order placed", order_id=7, items=[1, 2])
                try:
                    1 / 0  # noqa: B018
                except ZeroDivisionError:
                    log.exception("payment failed", payment="p-1")
                std.warning("a stdlib record in the same request")
            assert handler.flush(30)
        finally:
            std.handlers.clear()
            handler.close()
        got = {m.data["level"]: m.data for m in read_topic(kafka_broker.bootstrap_servers, kafka_topic,
                                                           expected=3, timeout=60)}
        info, error, plain = got["INFO"], got["ERROR"], got["WARNING"]
        assert info["message"] == "order placed" and info["order_id"] == 7 and info["items"] == [1, 2], info
        for data in (info, error, plain):
            assert not [k for k in data if k.startswith("_") or k.startswith("extra.")], data
            assert "event" not in data and "timestamp" in data and data["logger"] == std.name, data
            assert (data["request_id"], data["tenant_id"], data["correlation_id"]) == ("r-1", "acme", "c0ffee")
            assert data["trace_id"] == f"{TRACE_ID:032x}", data
        assert error["message"] == "payment failed" and error["payment"] == "p-1", error
        assert error["error"]["type"] == "ZeroDivisionError" and "exception" not in error, error
        assert plain["message"] == "a stdlib record in the same request", plain
