"""The pytest plugin's ``kafka_log_handler`` fixture: attach, read back, and leave logging as it was."""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

import logkafka
from logkafka.testing import KafkaLogCapture, create_topic


def fresh_logger() -> logging.Logger:
    """A logger of its own, left at NOTSET: it inherits the root logger's WARNING, as in an application."""
    return logging.getLogger(f"plugin.{uuid.uuid4().hex[:8]}")


def handler_threads(handler: logkafka.KafkaLogHandler) -> list[threading.Thread]:
    """The live threads of ``handler`` (named after its topics)."""
    names = {f"logkafka-{handler.settings.topic_of(s)}" for s in ("application", "audit", "security")}
    return [t for t in threading.enumerate() if t.name in names or t.name.rsplit("-reports", 1)[0] in names]


class TestKafkaLogHandler:
    def test_info_reaches_a_logger_that_inherits_warning(
            self, kafka_log_handler: KafkaLogCapture, kafka_topic: str) -> None:
        """A logger left at the inherited WARNING ships its INFO records; DEBUG stays below level="INFO"."""
        logging.getLogger().setLevel(logging.WARNING)
        log = fresh_logger()
        handler = kafka_log_handler(log.name, level="INFO")
        assert isinstance(handler, logkafka.KafkaLogHandler)
        assert handler.settings.topic == kafka_topic
        log.debug("not this one")
        log.info("Order %s placed", "A-1", extra={"code": "ORDER_PLACED"})
        messages = kafka_log_handler.read(expected=1)
        assert [m.data["message"] for m in messages] == ["Order A-1 placed"]
        assert messages[0].data["code"] == "ORDER_PLACED"

    def test_default_level_is_debug_and_the_logger_level_is_never_raised(
            self, kafka_log_handler: KafkaLogCapture) -> None:
        """Without a level every record ships; a logger already below the level keeps its own level."""
        log = fresh_logger()
        kafka_log_handler(log.name)
        assert log.level == logging.DEBUG
        other = fresh_logger()
        other.setLevel(logging.DEBUG)
        kafka_log_handler(other, level="ERROR")
        assert other.level == logging.DEBUG

    def test_a_logger_dictconfig_disabled_is_enabled_until_teardown(self, kafka_broker: Any, kafka_topic: str) -> None:
        """A disabled logger ships while attached, and is disabled again afterwards."""
        log = fresh_logger()
        log.disabled = True
        capture = KafkaLogCapture(kafka_broker.bootstrap_servers, kafka_topic)
        capture(log.name, level="INFO")
        log.info("shipped although dictConfig had disabled the logger")
        assert len(capture.read(expected=1)) == 1
        capture.close()
        assert log.disabled is True

    def test_teardown_restores_the_logger_and_ends_the_handler(self, kafka_broker: Any, kafka_topic: str) -> None:
        """close() removes, flushes and closes each handler, waits for its threads, and restores level and handlers."""
        log = fresh_logger()
        log.setLevel(logging.ERROR)
        own = logging.NullHandler()
        log.addHandler(own)
        capture = KafkaLogCapture(kafka_broker.bootstrap_servers, kafka_topic)
        first = capture(log.name, level="INFO")
        second = capture(log.name, level="DEBUG")
        assert log.handlers == [own, first, second] and log.level == logging.DEBUG
        for i in range(20):
            log.info("record %d", i)
        assert handler_threads(first)
        capture.close()
        assert log.handlers == [own]
        assert log.level == logging.ERROR
        assert handler_threads(first) == [] and handler_threads(second) == []
        assert first.stats()["delivered"] == 20 and second.stats()["delivered"] == 20
        assert capture.handlers == ()
        capture.close()  # idempotent

    def test_audit_and_security_go_to_the_tests_own_topics(self, kafka_log_handler: KafkaLogCapture,
                                                           kafka_topic: str) -> None:
        """On the root logger the handler takes audit and security records, shipped to <topic>.audit/.security."""
        kafka_log_handler("", level="INFO")
        assert kafka_log_handler.topic_of("audit") == f"{kafka_topic}.audit"
        logkafka.audit("invoice.update", actor="alice", resource="invoice:42", outcome="success")
        logkafka.security("authorization", user_id="bob", resource="admin:users", decision="deny")
        [audit] = kafka_log_handler.read(expected=1, stream="audit")
        [security] = kafka_log_handler.read(expected=1, stream="security")
        assert (audit.topic, audit.data["action"]) == (f"{kafka_topic}.audit", "invoice.update")
        assert security.data["decision"] == "deny"

    def test_handler_options_are_passed_on(self, kafka_log_handler: KafkaLogCapture, tmp_path: Path) -> None:
        """Any KafkaLogHandler argument is taken; a bad one is the handler's own ValueError."""
        handler = kafka_log_handler(fresh_logger().name, service_name="checkout", format="envelope")
        assert handler.settings.format == "envelope"
        with pytest.raises(ValueError, match="flush_timeout"):
            kafka_log_handler(fresh_logger().name, flush_timeout=-1)
        with pytest.raises(ValueError, match="stream"):
            kafka_log_handler.read(stream="metrics")

    def test_spools_into_a_directory_of_the_tests_own(self, kafka_broker: Any, kafka_topic: str,
                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without LOGKAFKA_SPOOL_DIR the spool is the fixture's directory; with it, the variable wins."""
        monkeypatch.delenv("LOGKAFKA_SPOOL_DIR", raising=False)
        capture = KafkaLogCapture(kafka_broker.bootstrap_servers, kafka_topic, spool_dir=tmp_path / "own")
        try:
            handler = capture(fresh_logger().name)
            assert handler.settings.spool_dir is not None
            assert Path(handler.settings.spool_dir).is_relative_to(tmp_path / "own")
            monkeypatch.setenv("LOGKAFKA_SPOOL_DIR", str(tmp_path / "env"))
            handler = capture(fresh_logger().name)
            assert handler.settings.spool_dir is not None
            assert Path(handler.settings.spool_dir).is_relative_to(tmp_path / "env")
        finally:
            capture.close()

    def test_read_says_when_records_cannot_be_settled(self, kafka_log_handler: KafkaLogCapture) -> None:
        """A handler that cannot deliver makes read() fail with an AssertionError naming its counters."""
        log = fresh_logger()
        kafka_log_handler(log.name, bootstrap_servers="127.0.0.1:1", flush_timeout=0.5, spool_dir=False)
        log.info("nowhere to go")
        with pytest.raises(AssertionError, match="did not settle its records"):
            kafka_log_handler.read(expected=1, timeout=1)


class TestCreateTopic:
    def test_an_existing_topic_leaves_no_client_behind(self, kafka_broker: Any, kafka_topic: str) -> None:
        """Creating a topic that exists keeps no AdminClient alive (it would stay connected to the broker)."""
        from confluent_kafka.admin import AdminClient

        gc.collect()
        gc.disable()
        try:
            before = sum(isinstance(o, AdminClient) for o in gc.get_objects())
            create_topic(kafka_broker.bootstrap_servers, kafka_topic)
            after = sum(isinstance(o, AdminClient) for o in gc.get_objects())
        finally:
            gc.enable()
        assert after == before


class TestAsAUserRunsIt:
    def test_a_test_file_using_the_fixture_passes_with_a_clean_teardown(self, tmp_path: Path) -> None:
        """In a project of its own (the plugin's own broker, stopped at the end), the fixture's test passes
        and teardown prints no client error."""
        (tmp_path / "test_shipping.py").write_text(textwrap.dedent('''
            import logging

            def test_shipped(kafka_log_handler):
                kafka_log_handler("shipping", level="INFO")
                logging.getLogger("shipping").info("parcel sent", extra={"code": "PARCEL_SENT"})
                [message] = kafka_log_handler.read(expected=1)
                assert message.data["code"] == "PARCEL_SENT"
        '''))
        env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-W", "error", "-p", "no:cacheprovider",
                               "test_shipping.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out
        assert "1 passed" in out
        for noise in ("brokers are down", "rdkafka", "logkafka:", "Traceback"):
            assert noise not in out, out
