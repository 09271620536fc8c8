"""What a new user meets first: helpful setting errors, the formatter's identity, audit records that no
ordinary configuration switches off, and an exit that is fast and honest when Kafka is away."""

from __future__ import annotations

import json
import logging
import logging.config
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import logkafka
from logkafka import KafkaLogHandler
from logkafka.testing import LocalBroker, free_port, read_topic

NOWHERE = "127.0.0.1:1"


def causes(exc: BaseException) -> list[str]:
    out = []
    current: BaseException | None = exc
    while current is not None:
        out.append(str(current))
        current = current.__cause__ or current.__context__
    return out


class TestSettingErrors:
    @pytest.mark.parametrize(("given", "expected"), [
        ("bootstrap_server", "unknown setting 'bootstrap_server' (did you mean 'bootstrap_servers'?)"),
        ("flush_timout", "unknown setting 'flush_timout' (did you mean 'flush_timeout'?)"),
        ("spool.dir", "unknown setting 'spool.dir' (did you mean 'spool_dir'?)"),
    ])
    def test_misspelt_setting(self, given: str, expected: str) -> None:
        """A misspelt argument is a ValueError naming it and the setting it most likely means."""
        with pytest.raises(ValueError) as info:
            KafkaLogHandler(**{given: "x"})
        assert str(info.value) == expected

    @pytest.mark.parametrize("given", ["acks", "linger.ms", "security.protocol"])
    def test_client_setting_as_argument(self, given: str) -> None:
        """A Kafka client setting given as a handler argument points at producer_config."""
        with pytest.raises(ValueError, match=rf"^unknown setting '{given}' .*producer_config"):
            KafkaLogHandler(**{given: "1"})

    def test_misspelt_setting_in_dictconfig(self) -> None:
        """Through dictConfig the hint is in the error chain, not a bare TypeError."""
        config = {"version": 1, "disable_existing_loggers": False,
                  "handlers": {"kafka": {"class": "logkafka.KafkaLogHandler", "bootstrap_server": NOWHERE}}}
        with pytest.raises(ValueError) as info:
            logging.config.dictConfig(config)
        assert "unknown setting 'bootstrap_server' (did you mean 'bootstrap_servers'?)" in causes(info.value)

    def test_oauth_cb_not_called_at_construction(self, made: list[KafkaLogHandler]) -> None:
        """Construction checks the client settings without calling the token callback (nor connecting)."""
        calls: list[Any] = []

        def token(config: Any) -> tuple[str, float]:
            calls.append(config)
            return "token", 2e9

        made.append(KafkaLogHandler(NOWHERE, "t", flush_timeout=0.5, producer_config={
            "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "OAUTHBEARER", "oauth_cb": token}))
        assert calls == []

    def test_spool_dir_under_a_file(self, tmp_path: Path) -> None:
        """A spool_dir that cannot hold files is refused at construction, naming the setting."""
        blocker = tmp_path / "file"
        blocker.write_text("")
        with pytest.raises(ValueError, match=r"^spool_dir: cannot write records under .*file/spool"):
            KafkaLogHandler(NOWHERE, "t", spool_dir=str(blocker / "spool"))

    def test_spool_dir_from_env_under_a_file(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        blocker = tmp_path / "file"
        blocker.write_text("")
        monkeypatch.setenv("LOGKAFKA_SPOOL_DIR", str(blocker / "spool"))
        with pytest.raises(ValueError, match=r"^LOGKAFKA_SPOOL_DIR: cannot write records under"):
            KafkaLogHandler(NOWHERE, "t")

    def test_default_spool_dir_unusable(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str], made: list[KafkaLogHandler]) -> None:
        """The per-user default that cannot be written (a read-only home) is not an error: no spool, said once."""
        blocker = tmp_path / "file"
        blocker.write_text("")
        monkeypatch.delenv("LOGKAFKA_SPOOL_DIR")
        monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
        handler = KafkaLogHandler(NOWHERE, "t", flush_timeout=0.5)
        made.append(handler)
        assert handler.settings.spool_dir is None
        reason = handler.stats()["spool_off"]
        assert reason is not None and str(blocker) in reason
        err = capsys.readouterr().err
        assert err.count("no disk spool") == 1 and "LOGKAFKA_SPOOL_DIR" in err

    def test_disabled_handler_touches_no_disk(self, tmp_path: Path, made: list[KafkaLogHandler]) -> None:
        made.append(KafkaLogHandler(NOWHERE, "t", enabled=False, spool_dir=str(tmp_path / "never")))
        assert not (tmp_path / "never").exists()


class TestIdentity:
    def config(self, **handler: Any) -> dict[str, Any]:
        return {
            "version": 1, "disable_existing_loggers": False,
            "formatters": {"json": {"()": "logkafka.JsonFormatter", "service_name": "checkout",
                                    "environment": "prod"}},
            "handlers": {"kafka": {"class": "logkafka.KafkaLogHandler", "formatter": "json",
                                   "bootstrap_servers": NOWHERE, "flush_timeout": 0.5, **handler}},
            "loggers": {"first.hour.identity": {"handlers": ["kafka"], "propagate": False}},
        }

    def handler(self) -> KafkaLogHandler:
        (handler,) = logging.getLogger("first.hour.identity").handlers
        assert isinstance(handler, KafkaLogHandler)
        return handler

    def test_handler_takes_the_formatters_identity(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """client.id and the handler's identity follow the shared formatter's service name."""
        monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
        monkeypatch.delenv("SERVICE_NAME", raising=False)
        logging.config.dictConfig(self.config())
        st = self.handler().settings
        assert st.identity["service"] == "checkout" and st.identity["environment"] == "prod"
        assert st.producer_config["client.id"] == "logkafka-checkout"

    def test_own_settings_win(self) -> None:
        """What the handler names itself stays; the rest comes from the formatter; a chosen client.id is kept."""
        logging.config.dictConfig(self.config(service_name="billing", producer_config={"client.id": "mine"}))
        st = self.handler().settings
        assert (st.identity["service"], st.identity["environment"]) == ("billing", "prod")
        assert st.producer_config["client.id"] == "mine"


class TestStreamsCannotBeSwitchedOff:
    def test_dictconfig_without_disable_existing_loggers(self, kafka_broker: Any, tmp_path: Path) -> None:
        """logkafka's loggers exist before dictConfig; its default disable_existing_loggers must not silence them.

        The audit record says where it was logged: this test's line, not logkafka's.
        """
        topic = f"first-hour-{tmp_path.name[-20:]}".replace("_", "-")
        streams = {"audit": f"{topic}.audit", "security": f"{topic}.security"}
        for name in (topic, *streams.values()):
            kafka_broker.create_topic(name)
        script = tmp_path / "app.py"
        script.write_text(textwrap.dedent(f"""
            import logging.config, sys
            import logkafka
            logging.config.dictConfig({{
                "version": 1,
                "formatters": {{"json": {{"()": "logkafka.JsonFormatter", "service_name": "checkout"}}}},
                "handlers": {{"kafka": {{"class": "logkafka.KafkaLogHandler", "formatter": "json",
                                        "bootstrap_servers": {kafka_broker.bootstrap_servers!r},
                                        "topic": {topic!r}, "audit_topic": {streams["audit"]!r},
                                        "security_topic": {streams["security"]!r}}}}},
                "root": {{"level": "WARNING", "handlers": ["kafka"]}},
            }})
            def place_order():
                logkafka.audit("order.place", "u-{tmp_path.name}", "order/1", "success")
                logkafka.security("authentication", "u-{tmp_path.name}", "login", "allow")
            place_order()
            print(logkafka.KafkaLogHandler.stats(logging.getLogger().handlers[0])["unrouted"])
        """))
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                              cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == str({"audit": 0, "security": 0})
        for stream in ("audit", "security"):
            got = read_topic(kafka_broker.bootstrap_servers, streams[stream], expected=1, timeout=30)
            assert len(got) == 1, stream
            data = got[0].data
            assert (data["module"], data["function"]) == ("app", "place_order"), data
            assert data["service"] == "checkout"

    def test_unrouted_records_are_said_once_and_counted(self, capsys: pytest.CaptureFixture[str],
                                                        made: list[KafkaLogHandler]) -> None:
        """With a KafkaLogHandler that audit records never meet, the first call says so; each is counted."""
        handler = KafkaLogHandler(NOWHERE, "t", flush_timeout=0.5)
        made.append(handler)
        logging.getLogger("app.only").addHandler(handler)
        before = handler.stats()["unrouted"]["audit"]
        logkafka.audit("a.b", "actor", "res", "success")
        logkafka.audit("a.b", "actor", "res", "success")
        assert handler.stats()["unrouted"]["audit"] == before + 2
        err = capsys.readouterr().err
        assert err.count("logkafka.audit() records reach no KafkaLogHandler") <= 1
        logging.getLogger().addHandler(handler)
        logkafka.audit("a.b", "actor", "res", "success")
        assert handler.stats()["unrouted"]["audit"] == before + 2
        logging.getLogger().removeHandler(handler)
        logging.getLogger("app.only").removeHandler(handler)


EXIT_APP = """
import logging, logging.config, sys
import logkafka
logging.config.dictConfig({
    "version": 1,
    "formatters": {"json": {"()": "logkafka.JsonFormatter", "service_name": "checkout"}},
    "handlers": {"kafka": {"class": "logkafka.KafkaLogHandler", "formatter": "json", "flush_timeout": 60,
                           "bootstrap_servers": sys.argv[1], "topic": sys.argv[2]}},
    "root": {"level": "INFO", "handlers": ["kafka"]},
})
log = logging.getLogger("app")
for n in range(200):
    log.info("record %d", n, extra={"n": n})
"""


class TestExitWithKafkaAway:
    def test_exit_spools_at_once_and_the_next_start_delivers(self, tmp_path: Path) -> None:
        """Broker down: exit writes the 200 records to the spool without waiting flush_timeout (60 s here:
        the 40 s subprocess timeout fails the test if it waits), in at most 3 plain lines; the next start,
        with the broker up on the same address, delivers each record once."""
        port = free_port()
        servers, topic = f"127.0.0.1:{port}", "first.hour.exit"
        script = tmp_path / "app.py"
        script.write_text(EXIT_APP)
        proc = subprocess.run([sys.executable, str(script), servers, topic], capture_output=True, text=True,
                              timeout=40)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stderr.splitlines()
        assert 1 <= len(lines) <= 3, lines
        assert all(line.startswith("logkafka: ") for line in lines), lines
        assert not any(word in proc.stderr for word in ("Local:", "librdkafka", "rdkafka", "Purged")), lines
        assert "200 records written to the spool" in lines[-1], lines
        assert "queue" not in proc.stderr, lines

        with LocalBroker(port) as broker:
            broker.create_topic(topic)
            again = subprocess.run([sys.executable, "-c", (
                "import logkafka,sys; h = logkafka.KafkaLogHandler(sys.argv[1], sys.argv[2]); "
                "assert h.flush(60); h.close()"), servers, topic], capture_output=True, text=True, timeout=120)
            assert again.returncode == 0, again.stderr
            got = read_topic(servers, topic, expected=200, timeout=60)
        assert sorted(m.data["n"] for m in got) == list(range(200))

    def test_exit_summary_gives_the_true_reason(self, tmp_path: Path) -> None:
        """A spool that can no longer be written: the exit line says the records were lost and why,
        as stats() counts them, never "queue full" and never "spooled"."""
        spool = tmp_path / "spool"
        script = tmp_path / "app.py"
        script.write_text(textwrap.dedent(f"""
            import json, logging, shutil, sys
            import logkafka
            h = logkafka.KafkaLogHandler("127.0.0.1:{free_port()}", "t", flush_timeout=60, spool_dir={str(spool)!r})
            shutil.rmtree({str(spool)!r}, ignore_errors=True)
            open({str(spool)!r}, "w").close()  # the spool's directory is now a file: nothing can be written
            log = logging.getLogger("app")
            log.propagate = False
            log.setLevel(logging.INFO)
            log.addHandler(h)
            for n in range(5):
                log.info("record %d", n)
            h.close()
            print(json.dumps(h.stats()["dropped"]))
        """))
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=40)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == {"spool_error": 5}
        assert "5 records lost: spool write failed" in proc.stderr, proc.stderr
        assert "queue" not in proc.stderr and "written to the spool" not in proc.stderr, proc.stderr


class TestCloseWaitsForAHealthyBroker:
    def test_burst_through_a_small_client_buffer_is_delivered_at_close(self, kafka_broker: Any,
                                                                        kafka_topic: str, tmp_path: Path) -> None:
        """Spooling because librdkafka's buffer filled is no outage: close() keeps waiting and delivers."""
        handler = KafkaLogHandler(kafka_broker.bootstrap_servers, kafka_topic, flush_timeout=60,
                                  spool_dir=str(tmp_path / "spool"),
                                  producer_config={"queue.buffering.max.messages": 1000})
        log = logging.getLogger(f"first.hour.burst.{tmp_path.name}")
        log.propagate = False
        log.setLevel(logging.INFO)
        log.addHandler(handler)
        for n in range(20_000):
            log.info("record %d", n, extra={"n": n})
        log.removeHandler(handler)
        handler.close()
        st = handler.stats()
        assert st["delivered"] == 20_000 and st["failed"] == 0, st
        got = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=20_000, timeout=90)
        assert sorted(m.data["n"] for m in got) == list(range(20_000))

    def test_a_burst_waits_for_room_in_a_full_client_buffer_instead_of_spooling(
            self, kafka_broker: Any, kafka_topic: str, tmp_path: Path) -> None:
        """A burst that fills librdkafka's buffer while the broker acknowledges is a burst, not an outage: the
        thread waits for room while the queue has room, and nothing goes to disk."""
        handler = KafkaLogHandler(kafka_broker.bootstrap_servers, kafka_topic, flush_timeout=60, queue_size=40_000,
                                  spool_dir=str(tmp_path / "spool"),
                                  producer_config={"queue.buffering.max.messages": 200})
        log = logging.getLogger(f"first.hour.room.{tmp_path.name}")
        log.propagate = False
        log.setLevel(logging.INFO)
        log.addHandler(handler)
        log.info("first")
        assert handler.flush(30)  # the broker is known to answer
        for n in range(10_000):
            log.info("record %d", n, extra={"n": n})
        assert handler.flush(60)
        st = handler.stats()
        log.removeHandler(handler)
        handler.close()
        assert st["delivered"] == 10_001 and st["spooled"] == 0 and st["dropped_total"] == 0, st
        got = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=10_001, timeout=90)
        assert [m.data["n"] for m in got if "n" in m.data] == list(range(10_000))  # one partition: in order


class TestSubclasses:
    def test_a_subclass_with_its_own_arguments(self, made: list[KafkaLogHandler]) -> None:
        import inspect

        class Mine(KafkaLogHandler):
            def __init__(self, servers: str, name: str) -> None:
                super().__init__(servers, name, flush_timeout=0.5)

        handler = Mine(NOWHERE, "t")
        made.append(handler)
        assert handler.settings.topic == "t"
        assert list(inspect.signature(Mine).parameters) == ["servers", "name"]
