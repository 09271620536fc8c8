"""``logkafka check``, ``logkafka topics ensure`` and ``logkafka replay``, run as a subprocess against the broker."""

from __future__ import annotations

import json
import logging
import logging.config
import logging.handlers
import os
import pty
import select
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from logkafka import JsonFormatter, KafkaLogHandler
from logkafka._spool import Spool, destination_dir
from logkafka.testing import free_port, read_topic

SECRET = "hunter2-not-a-real-password"


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``python -m logkafka ARGS`` with this test's environment (its own spool directory)."""
    return subprocess.run([sys.executable, "-m", "logkafka", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **(env or {})}, timeout=timeout)


def errors_of(proc: subprocess.CompletedProcess[str], command: str) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith(f"logkafka {command}: error:")]


def logging_config(**handler: Any) -> dict[str, Any]:
    """A dictConfig with one KafkaLogHandler (and a console handler beside it) on the root logger."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "logkafka.JsonFormatter"}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "level": "ERROR"},
            "kafka": {"class": "logkafka.KafkaLogHandler", "formatter": "json", **handler},
        },
        "root": {"level": "INFO", "handlers": ["console", "kafka"]},
    }


def probe_id_of(stdout: str) -> str:
    (line,) = [ln for ln in stdout.splitlines() if "probe:" in ln]
    assert "OK" in line, line
    return next(word for word in line.split() if word.startswith("lkcheck-"))


def assert_probe_in_topic(servers: str, topic: str, probe_id: str) -> None:
    """The probe is in the check's own topic (``<topic>.check``) once, and not in the application topic."""
    probes = [m.data for m in read_topic(servers, f"{topic}.check", timeout=30) if probe_id in m.value.decode()]
    assert len(probes) == 1
    assert probes[0]["code"] == "LOGKAFKA_CHECK"
    assert probes[0]["logger"] == "lkcheck"
    assert not [m for m in read_topic(servers, topic, timeout=3) if b"lkcheck" in m.value]


def warnings_of(stdout: str) -> list[str]:
    """The codes of the warnings ``check`` printed, in order."""
    return [line.split("]", 1)[0].removeprefix("warning [") for line in stdout.splitlines()
            if line.startswith("warning [")]


class TestHelp:
    @pytest.mark.parametrize("command", [["check"], ["topics"], ["topics", "ensure"], ["replay"]])
    def test_help(self, command: list[str]) -> None:
        """Every subcommand has --help; those that connect list the shared connection options."""
        proc = run_cli(*command, "--help", timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"usage: logkafka {' '.join(command)}")
        if command != ["topics"]:
            for option in ("--bootstrap-servers", "--producer-config", "--consumer-config"):
                assert option in proc.stdout


class TestCheck:
    def test_json_config_round_trip_with_masked_secret(self, kafka_broker: Any, kafka_topic: str,
                                                       tmp_path: Path) -> None:
        """A JSON config: settings printed with the password masked, the probe goes through the topic and back."""
        path = tmp_path / "logging.json"
        path.write_text(json.dumps(logging_config(
            bootstrap_servers=kafka_broker.bootstrap_servers, topic=kafka_topic, queue_size=500,
            producer_config={"ssl.key.password": SECRET, "linger.ms": 1})))
        proc = run_cli("check", str(path))
        assert proc.returncode == 0, proc.stderr
        assert SECRET not in proc.stdout + proc.stderr
        assert "ssl.key.password = ***" in proc.stdout
        assert "linger.ms = 1" in proc.stdout
        assert f"application topic: {kafka_topic}" in proc.stdout
        assert "queue size:        500" in proc.stdout
        assert f"{kafka_broker.bootstrap_servers} (from the configuration)" in proc.stdout
        assert_probe_in_topic(kafka_broker.bootstrap_servers, kafka_topic, probe_id_of(proc.stdout))

    def test_yaml_config_takes_servers_from_the_option(self, kafka_broker: Any, kafka_topic: str,
                                                       tmp_path: Path) -> None:
        """A YAML config that names no cluster uses --bootstrap-servers, as the handler would use the env."""
        import yaml

        path = tmp_path / "logging.yaml"
        path.write_text(yaml.safe_dump(logging_config(topic=kafka_topic, format="envelope")))
        proc = run_cli("check", str(path), "-b", kafka_broker.bootstrap_servers,
                       env={"KAFKA_BOOTSTRAP_SERVERS": ""})
        assert proc.returncode == 0, proc.stderr
        assert f"{kafka_broker.bootstrap_servers} (from --bootstrap-servers)" in proc.stdout
        assert "format:            envelope" in proc.stdout
        probe = probe_id_of(proc.stdout)
        (msg,) = [m for m in read_topic(kafka_broker.bootstrap_servers, f"{kafka_topic}.check", timeout=30)
                  if probe in m.value.decode()]
        assert msg.data["payload"]["code"] == "LOGKAFKA_CHECK"

    @pytest.mark.parametrize("spec", ["conf_logging.py", "conf_logging", "conf_logging:OTHER_LOGGING"])
    def test_python_config(self, kafka_broker: Any, kafka_topic: str, tmp_path: Path, spec: str) -> None:
        """A Python file's LOGGING, a module's LOGGING, and module:ATTR all load and pass."""
        config = logging_config(bootstrap_servers=kafka_broker.bootstrap_servers, topic=kafka_topic)
        (tmp_path / "conf_logging.py").write_text(textwrap.dedent(f"""\
            import json
            LOGGING = json.loads({json.dumps(json.dumps(config))})
            OTHER_LOGGING = dict(LOGGING, handlers=dict(LOGGING["handlers"]))
            OTHER_LOGGING["handlers"]["kafka"] = dict(LOGGING["handlers"]["kafka"], service_name="other-svc")
            """))
        proc = run_cli("check", spec, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert ("service=other-svc" in proc.stdout) == spec.endswith("OTHER_LOGGING")
        assert_probe_in_topic(kafka_broker.bootstrap_servers, kafka_topic, probe_id_of(proc.stdout))

    @pytest.mark.parametrize(("content", "expected"), [
        (None, "cannot read"),
        ('{"version": 1,', "not valid JSON"),
        ('["a list"]', "must be a mapping"),
        ('{"version": 1, "handlers": {"h": {"class": "logging.NullHandler"}}}', "no logkafka.KafkaLogHandler"),
    ])
    def test_bad_file(self, tmp_path: Path, content: str | None, expected: str) -> None:
        """A missing, malformed or Kafka-less file fails with exit 2 and one clear message."""
        path = tmp_path / "logging.json"
        if content is not None:
            path.write_text(content)
        proc = run_cli("check", str(path), timeout=60)
        assert proc.returncode == 2
        (error,) = errors_of(proc, "check")
        assert expected in error
        assert "Traceback" not in proc.stderr

    def test_bad_setting_names_it(self, kafka_broker: Any, kafka_topic: str, tmp_path: Path) -> None:
        """A handler setting dictConfig rejects fails with the setting named."""
        path = tmp_path / "logging.json"
        path.write_text(json.dumps(logging_config(bootstrap_servers=kafka_broker.bootstrap_servers,
                                                  topic=kafka_topic, queue_size=-5)))
        proc = run_cli("check", str(path), timeout=60)
        assert proc.returncode == 2
        (error,) = errors_of(proc, "check")
        assert "handler 'kafka'" in error
        assert "queue_size: must be positive" in error

    def test_unreachable_broker_the_files_servers_win(self, kafka_broker: Any, tmp_path: Path) -> None:
        """The file's cluster is used even with -b; when it does not answer, the check fails naming it."""
        dead = f"127.0.0.1:{free_port()}"
        path = tmp_path / "logging.json"
        path.write_text(json.dumps(logging_config(bootstrap_servers=dead)))
        proc = run_cli("check", str(path), "-b", kafka_broker.bootstrap_servers, "--timeout", "3")
        assert proc.returncode == 2
        (error,) = errors_of(proc, "check")
        assert f"cannot reach Kafka at {dead}" in error
        assert f"bootstrap servers: {dead} (from the configuration)" in proc.stdout

    def test_consumer_config_is_used_for_the_read_back(self, kafka_broker: Any, kafka_topic: str,
                                                       tmp_path: Path) -> None:
        """--consumer-config settings reach the probe's consumer: one librdkafka refuses fails the check, named."""
        path = tmp_path / "logging.json"
        path.write_text(json.dumps(logging_config(bootstrap_servers=kafka_broker.bootstrap_servers,
                                                  topic=kafka_topic)))
        consumer = tmp_path / "consumer.json"
        consumer.write_text(json.dumps({"no.such.setting": "1"}))
        proc = run_cli("check", str(path), "--consumer-config", str(consumer))
        assert proc.returncode == 2
        (error,) = errors_of(proc, "check")
        assert error.endswith('--consumer-config: No such configuration property: "no.such.setting"')


class TestProbeTopic:
    def test_probe_goes_to_its_own_topic_created_by_the_check(self, kafka_broker: Any, kafka_topic: str,
                                                              tmp_path: Path) -> None:
        """By default the probe goes to <application topic>.check, which the check creates and names; the
        application topic gets nothing; a second check finds the topic there."""
        path = tmp_path / "logging.json"
        path.write_text(json.dumps(logging_config(bootstrap_servers=kafka_broker.bootstrap_servers,
                                                  topic=kafka_topic)))
        proc = run_cli("check", str(path), "--strict")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"probe topic:       {kafka_topic}.check (created by the check: 1 partition, kept 1 day)" in proc.stdout
        assert f"sent to {kafka_topic}.check and read back" in proc.stdout
        assert_probe_in_topic(kafka_broker.bootstrap_servers, kafka_topic, probe_id_of(proc.stdout))
        assert topic_states(kafka_broker.bootstrap_servers, [f"{kafka_topic}.check"])[f"{kafka_topic}.check"][0] == 1

        again = run_cli("check", str(path))
        assert again.returncode == 0, again.stderr
        assert f"probe topic:       {kafka_topic}.check (exists)" in again.stdout

    def test_probe_topic_option_sends_it_to_the_application_topic(self, kafka_broker: Any, kafka_topic: str,
                                                                  tmp_path: Path) -> None:
        """--probe-topic naming the application topic puts the probe there, and creates no .check topic."""
        path = tmp_path / "logging.json"
        path.write_text(json.dumps(logging_config(bootstrap_servers=kafka_broker.bootstrap_servers,
                                                  topic=kafka_topic)))
        proc = run_cli("check", str(path), "--probe-topic", kafka_topic)
        assert proc.returncode == 0, proc.stderr
        assert f"probe topic:       {kafka_topic} (exists, from --probe-topic)" in proc.stdout
        probe = probe_id_of(proc.stdout)
        assert [m.data["code"] for m in read_topic(kafka_broker.bootstrap_servers, kafka_topic, timeout=30)
                if probe in m.value.decode()] == ["LOGKAFKA_CHECK"]
        from confluent_kafka.admin import AdminClient

        topics = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers}).list_topics(timeout=15).topics
        assert f"{kafka_topic}.check" not in topics

    def test_probe_topic_option_is_never_created(self, kafka_broker: Any, kafka_topic: str, tmp_path: Path) -> None:
        """A --probe-topic that does not exist fails with exit 2, saying so; nothing is sent."""
        missing = f"test.no-such-topic.{uuid.uuid4().hex[:8]}"
        path = tmp_path / "logging.json"
        path.write_text(json.dumps(logging_config(bootstrap_servers=kafka_broker.bootstrap_servers,
                                                  topic=kafka_topic)))
        proc = run_cli("check", str(path), "--probe-topic", missing)
        assert proc.returncode == 2
        (error,) = errors_of(proc, "check")
        assert f"--probe-topic: no topic {missing!r}" in error
        assert "probe:" not in proc.stdout

    def test_missing_application_topic_is_a_warning(self, kafka_broker: Any, tmp_path: Path) -> None:
        """An application topic that does not exist is a warning (the probe, in its own topic, passes); with
        --strict the check fails with exit 3."""
        missing = f"test.not-created.{uuid.uuid4().hex[:8]}"
        path = tmp_path / "logging.json"
        path.write_text(json.dumps(logging_config(bootstrap_servers=kafka_broker.bootstrap_servers, topic=missing)))
        proc = run_cli("check", str(path), "--strict")
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert warnings_of(proc.stdout) == ["missing-topic"]
        assert f"its application topic {missing!r} does not exist" in proc.stdout
        assert f"logkafka topics ensure --topic {missing}" in proc.stdout
        assert "probe:             OK" in proc.stdout
        (error,) = errors_of(proc, "check")
        assert error.endswith("but 1 warning (--strict)")


def topic_states(servers: str, names: list[str]) -> dict[str, tuple[int, int | None]]:
    """(partitions, retention.ms) of each topic, as the cluster reports them."""
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    admin = AdminClient({"bootstrap.servers": servers})
    md = admin.list_topics(timeout=15)
    out = {}
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in names])
    for resource, future in futures.items():
        entries = future.result(15)
        retention = entries["retention.ms"].value if "retention.ms" in entries else None
        out[resource.name] = (len(md.topics[resource.name].partitions), None if retention is None else int(retention))
    return out


class TestTopicsEnsure:
    def test_creates_with_retention_then_is_idempotent(self, kafka_broker: Any) -> None:
        """The three namespaced topics are created with partitions and retention; a second run changes nothing."""
        ns = f"t{uuid.uuid4().hex[:8]}"
        names = [f"{ns}.logging.{s}.v1" for s in ("application", "audit", "security")]
        proc = run_cli("topics", "ensure", "-b", kafka_broker.bootstrap_servers, "--namespace", ns,
                       "--partitions", "2", "--retention-security", "36h")
        assert proc.returncode == 0, proc.stderr
        day = 86_400_000
        assert topic_states(kafka_broker.bootstrap_servers, names) == {
            names[0]: (2, 7 * day), names[1]: (2, -1), names[2]: (2, 36 * 3_600_000)}
        assert [ln.split()[-1] for ln in proc.stdout.splitlines()[1:]] == ["created"] * 3
        assert "7d" in proc.stdout and "unlimited" in proc.stdout and "36h" in proc.stdout

        again = run_cli("topics", "ensure", "-b", kafka_broker.bootstrap_servers, "--namespace", ns,
                        "--partitions", "4", "--retention-application", "14d")
        assert again.returncode == 0, again.stderr
        rows = again.stdout.splitlines()[1:]
        assert len(rows) == 3 and all(" exists" in row for row in rows)
        assert all("has 2 partitions, asked 4: not changed" in row for row in rows)
        assert "retention 7d, asked 14d: not changed" in rows[0]
        assert topic_states(kafka_broker.bootstrap_servers, names)[names[0]] == (2, 7 * day)

    def test_topic_names_from_the_handlers_environment(self, kafka_broker: Any) -> None:
        """LOGKAFKA_NAMESPACE and LOGKAFKA_AUDIT_TOPIC name the topics as they do for the handler."""
        ns = f"e{uuid.uuid4().hex[:8]}"
        audit = f"audit-{ns}"
        proc = run_cli("topics", "ensure", "--partitions", "1",
                       env={"KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
                            "LOGKAFKA_NAMESPACE": ns, "LOGKAFKA_AUDIT_TOPIC": audit})
        assert proc.returncode == 0, proc.stderr
        names = [f"{ns}.logging.application.v1", audit, f"{ns}.logging.security.v1"]
        assert {n: s[0] for n, s in topic_states(kafka_broker.bootstrap_servers, names).items()} == dict.fromkeys(
            names, 1)

    @pytest.mark.parametrize("value", ["7x", "-3d", "0", "soon"])
    def test_bad_retention_is_refused(self, value: str) -> None:
        """A retention that is not a duration fails with a message naming the option and the forms."""
        proc = run_cli("topics", "ensure", "-b", "127.0.0.1:1", f"--retention-application={value}", timeout=60)
        assert proc.returncode == 2
        assert "--retention-application: invalid duration" in proc.stderr
        assert "14d" in proc.stderr

    def test_unreachable_broker(self) -> None:
        """No answer from the cluster: exit 2 with the address."""
        dead = f"127.0.0.1:{free_port()}"
        proc = run_cli("topics", "ensure", "-b", dead, "--timeout", "3")
        assert proc.returncode == 2
        (error,) = errors_of(proc, "topics")
        assert f"cannot reach Kafka at {dead}" in error


def spool_with_handler(topic: str, count: int, big: frozenset[int] = frozenset()) -> None:
    """Records of a real KafkaLogHandler that cannot reach its cluster: they wait in its disk spool."""
    handler = KafkaLogHandler(bootstrap_servers=f"127.0.0.1:{free_port()}", topic=topic, durability="disk",
                              flush_timeout=1, key="extra.n")
    lg = logging.getLogger(f"app.replay.{uuid.uuid4().hex[:6]}")
    lg.propagate = False
    lg.setLevel(logging.INFO)
    lg.addHandler(handler)
    try:
        for n in range(count):
            lg.info("record %d %s", n, "x" * 3000 if n in big else "", extra={"n": n})
    finally:
        lg.removeHandler(handler)
        handler.close()


def segments(spool_dir: Path) -> list[Path]:
    return sorted(spool_dir.rglob("*.seg"))


def spooled_lines(spool_dir: Path) -> list[list[Any]]:
    return [orjson.loads(line) for seg in segments(spool_dir) for line in seg.read_bytes().splitlines()]


class TestProducerConfig:
    @pytest.mark.parametrize("command", [["topics", "ensure"], ["replay"]])
    def test_bad_producer_config_is_named(self, kafka_broker: Any, kafka_topic: str, tmp_path: Path,
                                          command: list[str]) -> None:
        """A --producer-config setting librdkafka refuses fails with exit 2, naming the option and the setting."""
        spool_with_handler(kafka_topic, 1)
        config = tmp_path / "producer.properties"
        config.write_text("no.such.setting=1\n")
        proc = run_cli(*command, "-b", kafka_broker.bootstrap_servers, "--producer-config", str(config))
        assert proc.returncode == 2
        (error,) = errors_of(proc, command[0])
        assert error.endswith('--producer-config: No such configuration property: "no.such.setting"')


class TestReplay:
    def test_handler_spool_arrives_exactly_once(self, kafka_broker: Any, kafka_topic: str) -> None:
        """A handler's spool goes to the broker with keys, timestamps and headers, once; the spool is left empty."""
        spool_dir = Path(os.environ["LOGKAFKA_SPOOL_DIR"])
        spool_with_handler(kafka_topic, 300)
        spooled = {json.loads(line[2])["n"]: line for line in spooled_lines(spool_dir)}
        assert sorted(spooled) == list(range(300))

        proc = run_cli("replay", "-b", kafka_broker.bootstrap_servers)  # default: $LOGKAFKA_SPOOL_DIR
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("replayed 300 records")
        assert "spooled for another cluster address" in proc.stderr  # the handler's cluster was another one
        assert segments(spool_dir) == []

        got = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=300, timeout=60)
        assert sorted(m.data["n"] for m in got) == list(range(300))
        for m in got:
            _, key, _, ts, headers = spooled[m.data["n"]]
            assert m.key == key.encode() == str(m.data["n"]).encode()
            assert m.timestamp_ms == ts
            assert m.headers == {name: value.encode() for name, value in headers}
            assert m.headers["event_id"].decode() == m.data["event_id"]

        again = run_cli("replay", "-b", kafka_broker.bootstrap_servers)
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith("nothing to replay")

    def test_dry_run_counts_and_sends_nothing(self, kafka_broker: Any, kafka_topic: str, tmp_path: Path) -> None:
        """--dry-run counts the records and leaves the spool and the topic alone."""
        spool_dir = Path(os.environ["LOGKAFKA_SPOOL_DIR"])
        spool_with_handler(kafka_topic, 40)
        before = {p: p.read_bytes() for p in segments(spool_dir)}
        proc = run_cli("replay", str(spool_dir), "--dry-run", "-b", kafka_broker.bootstrap_servers)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"dry run: 40 records in {len(before)} segments")
        assert {p: p.read_bytes() for p in segments(spool_dir)} == before
        assert read_topic(kafka_broker.bootstrap_servers, kafka_topic, timeout=3) == []

    def test_failed_records_stay_and_the_producer_config_is_honoured(self, kafka_broker: Any, kafka_topic: str,
                                                                     tmp_path: Path) -> None:
        """--producer-config's message.max.bytes refuses the big records: they stay spooled, the rest is sent;
        a second replay sends them, and every record arrives exactly once."""
        spool_dir = Path(os.environ["LOGKAFKA_SPOOL_DIR"])
        big = frozenset({3, 11, 17})
        spool_with_handler(kafka_topic, 20, big)
        config = tmp_path / "producer.properties"
        config.write_text("# small messages only\nmessage.max.bytes=2000\n")

        proc = run_cli("replay", "-b", kafka_broker.bootstrap_servers, "--producer-config", str(config))
        assert proc.returncode == 1
        (error,) = errors_of(proc, "replay")
        assert "sent 17 of 20 records" in error
        assert "3 records remain" in error
        assert sorted(json.loads(line[2])["n"] for line in spooled_lines(spool_dir)) == sorted(big)

        proc = run_cli("replay", "-b", kafka_broker.bootstrap_servers)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("replayed 3 records")
        got = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=20, timeout=60)
        assert sorted(m.data["n"] for m in got) == list(range(20))
        assert segments(spool_dir) == []

    def test_segment_held_by_a_live_writer_is_skipped(self, kafka_broker: Any, kafka_topic: str,
                                                      tmp_path: Path) -> None:
        """A segment another process still writes (locked) is left alone; the closed one is sent."""
        dest = tmp_path / "spool" / f"{kafka_topic}-0123456789"
        closed = Spool(str(dest), max_bytes=1 << 30, fsync="never")
        closed.append(kafka_topic, b"k", b'{"n": 1}', 1_700_000_000_000)
        closed.close()
        live = Spool(str(dest), max_bytes=1 << 30, fsync="never")
        live.append(kafka_topic, b"k", b'{"n": 2}', 1_700_000_000_001)
        live.commit()  # written, its segment still open and locked by this process
        try:
            proc = run_cli("replay", str(dest), "-b", kafka_broker.bootstrap_servers)
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout.startswith("replayed 1 records from 1 segments")
            assert "1 segments skipped (held by a running process)" in proc.stdout
            assert [m.data for m in read_topic(kafka_broker.bootstrap_servers, kafka_topic, timeout=10)] == [{"n": 1}]
            assert [line[2] for line in spooled_lines(dest)] == ['{"n": 2}']
        finally:
            live.close()

    def test_progress_bar_on_a_terminal(self, kafka_broker: Any, kafka_topic: str) -> None:
        """With stderr on a terminal a progress bar is drawn up to 100%."""
        spool_with_handler(kafka_topic, 50)
        main, secondary = pty.openpty()
        try:
            proc = subprocess.Popen([sys.executable, "-m", "logkafka", "replay", "-b", kafka_broker.bootstrap_servers],
                                    stdout=subprocess.PIPE, stderr=secondary, text=True)
            os.close(secondary)
            seen = b""
            deadline = time.monotonic() + 120
            exited = False
            while time.monotonic() < deadline:
                ready, _, _ = select.select([main], [], [], 0.5)
                if ready:
                    try:
                        chunk = os.read(main, 4096)
                    except OSError:  # the terminal closed: the process is gone
                        break
                    if not chunk:
                        break
                    seen += chunk
                elif exited:
                    break  # gone, and nothing more to read
                else:
                    exited = proc.poll() is not None  # one more look: its last output may just have come
            out, _ = proc.communicate(timeout=60)
        finally:
            os.close(main)
        assert proc.returncode == 0
        assert out.startswith("replayed 50 records")
        text = seen.decode(errors="replace")
        assert "replay [" in text
        assert "50/50 records (100%)" in text

    def test_unreachable_broker_keeps_the_spool(self, kafka_topic: str) -> None:
        """No answer from the cluster: exit 2, nothing removed from the spool."""
        spool_dir = Path(os.environ["LOGKAFKA_SPOOL_DIR"])
        spool_with_handler(kafka_topic, 5)
        before = segments(spool_dir)
        dead = f"127.0.0.1:{free_port()}"
        proc = run_cli("replay", "-b", dead, "--timeout", "3")
        assert proc.returncode == 2
        (error,) = errors_of(proc, "replay")
        assert f"cannot reach Kafka at {dead}" in error
        assert segments(spool_dir) == before


class TestMasked:
    @pytest.mark.parametrize(("name", "secret"), [
        ("ssl.key.password", True),
        ("ssl.keystore.password", True),
        ("ssl.key.pem", True),
        ("ssl.certificate.pem", False),
        ("ssl.ca.location", False),
        ("sasl.password", True),
        ("sasl.jaas.config", True),
        ("sasl.oauthbearer.config", True),
        ("sasl.oauthbearer.client.secret", True),
        ("sasl.oauthbearer.client.id", True),
        ("sasl.kerberos.keytab", True),
        ("sasl.kerberos.kinit.cmd", True),
        ("sasl.mechanism", False),
        ("sasl.mechanisms", False),
        ("sasl.username", False),
        ("sasl.kerberos.service.name", False),
        ("sasl.kerberos.principal", False),
        ("basic.auth.user.info", True),
        ("schema.registry.basic.auth.user.info", True),
        ("oauth.token", True),
        ("aws.credentials", True),
        ("private_key", True),
        ("bootstrap.servers", False),
        ("security.protocol", False),
        ("linger.ms", False),
    ])
    def test_table(self, name: str, secret: bool) -> None:
        """Every sasl.* value but the mechanism, user name and Kerberos names is masked, and so is every
        setting named like a password, secret, token, credential, user info, JAAS or PEM key or private key."""
        from logkafka._cli.connection import masked

        shown = masked({name: "clientSecret=s3cr3t", "empty": ""})
        assert shown[name] == ("***" if secret else "clientSecret=s3cr3t")
        assert shown["empty"] == ""


class TestCheckSpool:
    @pytest.mark.parametrize("where", ["spool_dir", "LOGKAFKA_SPOOL_DIR"])
    def test_unacknowledged_probe_is_not_left_in_the_applications_spool(self, tmp_path: Path, where: str) -> None:
        """A probe the cluster never acknowledges fails the check and is not left in the application's spool
        (named by spool_dir or by LOGKAFKA_SPOOL_DIR), where the application would later replay it; the check's
        own temporary spool is removed."""
        from logkafka.testing import ProxiedBroker

        with ProxiedBroker() as broker:
            topic = f"test.check-spool.{uuid.uuid4().hex[:8]}"
            broker.broker.create_topic(f"{topic}.check", 1)  # the probe topic exists...
            broker.proxy.cut()
            # ...and the broker answers metadata requests on its own port, but names as the leader the proxy's,
            # which is cut: nothing is acknowledged
            app_spool = tmp_path / "app-spool" if where == "spool_dir" else Path(os.environ["LOGKAFKA_SPOOL_DIR"])
            extra = {"spool_dir": str(app_spool)} if where == "spool_dir" else {}
            path = tmp_path / "logging.json"
            path.write_text(json.dumps(logging_config(
                bootstrap_servers=f"127.0.0.1:{broker.broker.port}", topic=topic,
                flush_timeout=2, producer_config={"message.timeout.ms": 3000}, **extra)))
            scratch = tmp_path / "tmp"
            scratch.mkdir()
            proc = run_cli("check", str(path), "--timeout", "5", env={"TMPDIR": str(scratch)})
        assert proc.returncode == 1, proc.stdout + proc.stderr
        (error,) = errors_of(proc, "check")
        assert "the probe was not acknowledged" in error
        assert f"spool:             {app_spool} (" in proc.stdout  # the application's spool is what is shown
        left = [line for seg in app_spool.rglob("*.seg") for line in seg.read_bytes().splitlines()]
        assert not [line for line in left if b"lkcheck" in line]
        assert list(scratch.iterdir()) == []


class TestAdminConnection:
    def test_consumer_config_serves_admin_requests_without_producer_config(self, kafka_broker: Any,
                                                                           tmp_path: Path) -> None:
        """Without --producer-config, topics ensure connects with --consumer-config's settings (its consumer-only
        settings left out): a plaintext file works, one asking for TLS fails against this plaintext broker."""
        ns = f"c{uuid.uuid4().hex[:8]}"
        consumer = tmp_path / "consumer.properties"
        consumer.write_text("group.id=readers\nauto.offset.reset=earliest\nenable.auto.commit=false\n"
                            "client.id=ops\n")
        proc = run_cli("topics", "ensure", "-b", kafka_broker.bootstrap_servers, "--namespace", ns,
                       "--partitions", "1", "--consumer-config", str(consumer))
        assert proc.returncode == 0, proc.stderr
        assert len(proc.stdout.splitlines()) == 4

        consumer.write_text("group.id=readers\nsecurity.protocol=SSL\n")
        proc = run_cli("topics", "ensure", "-b", kafka_broker.bootstrap_servers, "--namespace", ns,
                       "--consumer-config", str(consumer), "--timeout", "5")
        assert proc.returncode == 2
        (error,) = errors_of(proc, "topics")
        assert f"cannot reach Kafka at {kafka_broker.bootstrap_servers}" in error

    def test_replay_connects_with_the_consumer_config(self, kafka_broker: Any, kafka_topic: str,
                                                      tmp_path: Path) -> None:
        """replay without --producer-config uses --consumer-config's connection settings (TLS here: it fails)."""
        spool_dir = Path(os.environ["LOGKAFKA_SPOOL_DIR"])
        write_spool(destination_dir(str(spool_dir), kafka_topic, kafka_broker.bootstrap_servers), kafka_topic,
                    range(3))
        consumer = tmp_path / "consumer.json"
        consumer.write_text(json.dumps({"security.protocol": "SSL", "group.id": "g"}))
        proc = run_cli("replay", "-b", kafka_broker.bootstrap_servers, "--consumer-config", str(consumer),
                       "--timeout", "5")
        assert proc.returncode == 2
        (error,) = errors_of(proc, "replay")
        assert "cannot reach Kafka" in error
        assert len(spooled_lines(spool_dir)) == 3


def write_spool(directory: str, topic: str, numbers: Any, pad: int = 0, big: frozenset[int] = frozenset()) -> None:
    """One closed segment in ``directory`` with a record ``{"n": N, "pad": ...}`` keyed N for each number."""
    spool = Spool(directory, max_bytes=1 << 40, fsync="never", segment_bytes=1 << 32)
    for n in numbers:
        value = json.dumps({"n": n, "pad": "x" * (3000 if n in big else pad)}).encode()
        spool.append(topic, str(n).encode(), value, 1_700_000_000_000 + n)
    spool.close()


def numbers_in_spool(spool_dir: Path) -> list[int]:
    return [json.loads(line[2])["n"] for line in spooled_lines(spool_dir)]


class _Terminal:
    """A process with stderr on a terminal, its output collected by a thread (the terminal never fills up)."""

    def __init__(self, *args: str) -> None:
        import threading

        main, secondary = pty.openpty()
        self._main = main
        self.proc = subprocess.Popen([sys.executable, "-m", "logkafka", *args], stdout=subprocess.PIPE,
                                     stderr=secondary, text=True)
        os.close(secondary)
        self.output = b""
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            while True:
                try:
                    chunk = os.read(self._main, 4096)
                except OSError:  # the process closed the terminal
                    break
                if not chunk:
                    break
                self.output += chunk
        finally:
            self._done.set()

    def wait_for(self, text: bytes, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert time.monotonic() < deadline and self.proc.poll() is None, self.output.decode(errors="replace")
            time.sleep(0.01)

    def finish(self, timeout: float = 180) -> tuple[int, str, str]:
        out, _ = self.proc.communicate(timeout=timeout)
        self._done.wait(30)
        os.close(self._main)
        return self.proc.returncode, out, self.output.decode(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class TestReplayOnce:
    """A record acknowledged by replay is never left in the spool, so no later replay sends it twice."""

    N = 20_000

    def replay_with_a_frozen_broker(self, tmp_path: Path, replay_args: list[str],
                                    while_frozen: Any) -> tuple[int, str, list[int], list[int], Any]:
        """Replay N records; freeze the broker once the first ones are acknowledged, run ``while_frozen``."""
        from logkafka.testing import LocalBroker

        broker = LocalBroker().start()
        try:
            servers = broker.bootstrap_servers
            topic = f"test.replay-once.{uuid.uuid4().hex[:8]}"
            broker.create_topic(topic, 3)
            spool_dir = tmp_path / "spool"
            write_spool(destination_dir(str(spool_dir), topic, servers), topic, range(self.N), pad=1000)
            config = tmp_path / "producer.properties"
            config.write_text("message.timeout.ms=90000\n")
            term = _Terminal("replay", str(spool_dir), "-b", servers, "--producer-config", str(config), *replay_args)
            try:
                term.wait_for(b"replay [")  # the first acknowledgements are in
                broker.pause()
                try:
                    while_frozen(term.proc)
                finally:
                    broker.resume()
                status, _, terminal = term.finish()
            finally:
                term.kill()
            got = [json.loads(m.value)["n"] for m in read_topic(servers, topic, timeout=120, idle=3)]
            left = numbers_in_spool(spool_dir)
            # the rest goes with a second replay: every record then arrived exactly once
            again = run_cli("replay", str(spool_dir), "-b", servers)
            assert again.returncode == 0, again.stderr
            final = [json.loads(m.value)["n"] for m in read_topic(servers, topic, expected=self.N, timeout=120)]
            return status, terminal, got, left, final
        finally:
            broker.stop()

    def check(self, got: list[int], left: list[int], final: list[int]) -> None:
        assert len(got) == len(set(got))
        assert not set(got) & set(left), "records both acknowledged and still in the spool"
        assert sorted(got + left) == list(range(self.N))
        assert sorted(final) == list(range(self.N))

    def test_timeout_with_records_in_flight(self, tmp_path: Path) -> None:
        """--timeout passes while records are in flight to a frozen broker: the queued ones are withdrawn, the
        in-flight ones get their acknowledgement (the broker wakes up) before the segment is rewritten, and
        none is delivered after: what arrived and what stayed in the spool never overlap."""
        status, terminal, got, left, final = self.replay_with_a_frozen_broker(
            tmp_path, ["--timeout", "3"], lambda proc: time.sleep(6))
        assert status in (0, 1), terminal
        if status == 1:
            assert f"records remain in {tmp_path / 'spool'}" in terminal
        self.check(got, left, final)

    def test_ctrl_c_mid_segment(self, tmp_path: Path) -> None:
        """Ctrl-C in the middle of a segment: the records in flight are settled, the acknowledged ones are
        removed from the segment before the command ends (status 130), so the next replay sends only the rest."""
        def interrupt(proc: subprocess.Popen[str]) -> None:
            time.sleep(1)
            proc.send_signal(signal.SIGINT)
            time.sleep(2)

        status, terminal, got, left, final = self.replay_with_a_frozen_broker(
            tmp_path, ["--timeout", "120"], interrupt)
        assert status == 130, terminal
        assert got and left
        self.check(got, left, final)
        assert "interrupted" in terminal


class TestReplayGoesOn:
    def test_refused_record_does_not_stop_the_other_segments(self, kafka_broker: Any, tmp_path: Path) -> None:
        """A record the cluster refuses for good (too large) stays in the spool and is reported; the rest of its
        segment, the next segment and another destination are still sent; exit 1."""
        servers = kafka_broker.bootstrap_servers
        first, second = (f"test.replay-{c}.{uuid.uuid4().hex[:8]}" for c in "ab")
        for topic in (first, second):
            kafka_broker.create_topic(topic, 1)
        spool_dir = tmp_path / "spool"
        write_spool(destination_dir(str(spool_dir), first, servers), first, range(5), big=frozenset({2}))
        write_spool(destination_dir(str(spool_dir), first, servers), first, range(5, 10))
        write_spool(destination_dir(str(spool_dir), second, servers), second, range(100, 105))
        config = tmp_path / "producer.properties"
        config.write_text("message.max.bytes=2000\n")
        proc = run_cli("replay", str(spool_dir), "-b", servers, "--producer-config", str(config))
        assert proc.returncode == 1, proc.stderr
        (error,) = errors_of(proc, "replay")
        assert "sent 14 of 15 records" in error and "1 records remain" in error
        assert "1 records can never be delivered as they are" in proc.stderr and "too large" in proc.stderr
        assert numbers_in_spool(spool_dir) == [2]
        assert sorted(json.loads(m.value)["n"] for m in read_topic(servers, first, expected=9)) == [
            0, 1, 3, 4, 5, 6, 7, 8, 9]
        assert sorted(json.loads(m.value)["n"] for m in read_topic(servers, second, expected=5)) == list(
            range(100, 105))

    def test_servers_are_compared_as_the_handler_writes_them(self, kafka_broker: Any, kafka_topic: str) -> None:
        """-b with spaces around the address names the cluster the spool was written for: no 'another cluster'
        note (the handler strips the address before hashing it)."""
        spool_dir = Path(os.environ["LOGKAFKA_SPOOL_DIR"])
        write_spool(destination_dir(str(spool_dir), kafka_topic, kafka_broker.bootstrap_servers), kafka_topic,
                    range(2))
        proc = run_cli("replay", "-b", f"  {kafka_broker.bootstrap_servers} ")
        assert proc.returncode == 0, proc.stderr
        assert "another cluster address" not in proc.stderr
        assert proc.stdout.startswith("replayed 2 records")


# -- the lint of check ----------------------------------------------------------------------------
NOWHERE = "127.0.0.1:9"  # handlers built by the lint tests never connect: construction does not


def readme_recipe() -> dict[str, Any]:
    """The dictConfig of the README's section "The recipe", as written there."""
    import ast

    text = (Path(__file__).parent.parent / "README.md").read_text()
    section = text.split("\n## The recipe", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    calls = [node for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and node.func.attr == "dictConfig"]
    config = ast.literal_eval(calls[0].args[0])
    assert isinstance(config, dict)
    return config


def lint_config(**changes: Any) -> dict[str, Any]:
    """The README recipe (with "disable_existing_loggers": False), a console instead of its file, on NOWHERE."""
    config = readme_recipe()
    config["disable_existing_loggers"] = False
    config["handlers"]["file"] = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                  "formatter": "json"}
    config["handlers"]["kafka"]["bootstrap_servers"] = NOWHERE
    config.update(changes)
    return config


@pytest.fixture
def lint() -> Any:
    """Build a configuration with dictConfig, as check does, and return its findings; handlers closed after."""
    from logkafka._cli import lint as _lint

    libraries = _lint.enabled_loggers()  # before the test makes loggers of its own

    def run(config: dict[str, Any], **spools: str) -> list[_lint.Finding]:
        before = _lint.enabled_loggers()
        logging.config.dictConfig(config)
        targets = [_lint.Target(str(name), h, spools.get(str(name), h.settings.spool_dir))
                   for name, h in list(logging._handlers.items())  # type: ignore[attr-defined]
                   if isinstance(h, KafkaLogHandler)]
        built.extend(t.handler for t in targets)
        return _lint.lint(config, targets, enabled_before=before, libraries=libraries)

    built: list[KafkaLogHandler] = []
    yield run
    for handler in built:
        handler.close()


def codes(findings: list[Any]) -> list[tuple[str, str]]:
    return [(f.code, f.name) for f in findings]


class TestLintRecipe:
    def test_readme_recipe_with_disable_existing_loggers_false_has_no_warning(self, lint: Any) -> None:
        """The README's recipe, with "disable_existing_loggers": False, gives no warning at all."""
        config = readme_recipe()
        config["disable_existing_loggers"] = False
        config["handlers"]["file"]["filename"] = os.devnull
        assert lint(config) == []

    def test_readme_recipe_without_it_gives_one_warning(self, lint: Any) -> None:
        """Without the setting: exactly one warning, the disabled loggers, with the fix."""
        config = readme_recipe()
        config.pop("disable_existing_loggers", None)
        config["handlers"]["file"]["filename"] = os.devnull
        (finding,) = lint(config)
        assert finding.code == "disable-existing-loggers"
        assert finding.fix == 'add "disable_existing_loggers": false to the configuration'


class TestLintDisabledLoggers:
    def test_names_the_loggers_it_disabled_but_not_logkafkas_streams(self, lint: Any) -> None:
        """Loggers that existed before dictConfig are named; logkafka.audit / logkafka.security are not."""
        name = f"app.views{uuid.uuid4().hex[:8]}"  # new in this process, whatever ran in it before
        logging.getLogger(name)
        (finding,) = lint(lint_config(disable_existing_loggers=True))
        assert finding.code == "disable-existing-loggers"
        assert 'sets "disable_existing_loggers": true' in finding.problem
        assert name in finding.problem
        assert "logkafka.audit" not in finding.problem and "logkafka.security" not in finding.problem
        assert logging.getLogger(name).disabled  # what the finding says is what happened

    def test_named_loggers_are_kept_and_not_named(self, lint: Any) -> None:
        """A logger the configuration names, and its children, are not disabled and not in the warning."""
        logging.getLogger("app.models")
        logging.getLogger("app.models.orders")
        logging.getLogger("other.thing")
        config = lint_config(loggers={"app.models": {"level": "INFO"}})
        del config["disable_existing_loggers"]
        (finding,) = lint(config)
        assert "other.thing" in finding.problem
        assert "app.models" not in finding.problem

    def test_a_text_false_counts_as_true(self, lint: Any) -> None:
        """"disable_existing_loggers": "false" (a string) disables loggers too, and the warning says why."""
        (finding,) = lint(lint_config(disable_existing_loggers="false"))
        assert finding.code == "disable-existing-loggers"
        assert "counts as true (write the boolean false)" in finding.problem


class TestLintLevels:
    def test_named_logger_above_the_handler_hides_its_info_records(self, lint: Any) -> None:
        """A configured logger at WARNING under a root at INFO with the Kafka handler: its INFO records are
        named as not reaching 'kafka'."""
        (finding,) = lint(lint_config(loggers={"app.payments": {"level": "WARNING"}}))
        assert codes([finding]) == [("logger-level", "app.payments")]
        assert "logger 'app.payments' is at WARNING, so its INFO records" in finding.problem
        assert "handler 'kafka' on the root logger" in finding.problem
        assert 'set its level to "INFO"' in finding.fix

    def test_error_level_hides_warnings_too(self, lint: Any) -> None:
        """At ERROR both INFO and WARNING records are hidden, and said so."""
        (finding,) = lint(lint_config(loggers={"app.payments": {"level": "ERROR"}}))
        assert "its INFO and WARNING records" in finding.problem

    @pytest.mark.parametrize("loggers", [
        {"app.payments": {"level": "INFO"}},
        {"app.payments": {"level": "DEBUG"}},
        {"app.payments": {"level": "WARNING", "handlers": ["kafka"], "propagate": False}},  # its own handler
        {"app.payments": {"handlers": ["kafka"], "propagate": False}},
        {"app.payments": {"level": "WARNING", "handlers": ["kafka"]}},  # on itself (and on root above)
    ])
    def test_no_warning_when_nothing_is_hidden(self, lint: Any, loggers: dict[str, Any]) -> None:
        """A logger at INFO or below, or with the Kafka handler on itself, hides nothing from Kafka."""
        assert lint(lint_config(loggers=loggers)) == []

    def test_debug_only_is_not_reported(self, lint: Any) -> None:
        """A root at DEBUG and a logger at INFO: only DEBUG records are kept back, which is a choice."""
        config = lint_config(loggers={"urllib3": {"level": "INFO"}})
        config["root"]["level"] = "DEBUG"
        assert lint(config) == []

    def test_quiet_root_with_app_loggers_at_info_is_fine(self, lint: Any) -> None:
        """Root at WARNING (third-party libraries quiet), the app's loggers at INFO: nothing to report."""
        config = lint_config(loggers={"checkout": {"level": "INFO"}, "urllib3": {"level": "WARNING"}})
        config["root"]["level"] = "WARNING"
        assert lint(config) == []

    def test_root_without_a_level_keeps_pythons_warning(self, lint: Any) -> None:
        """A root logger given handlers but no level stays at WARNING: no INFO record reaches Kafka."""
        config = lint_config()
        del config["root"]["level"]
        (finding,) = lint(config)
        assert codes([finding]) == [("logger-level", "root")]
        assert "Python's default: the configuration gives it no level" in finding.problem
        assert '"root": {"level": "INFO"' in finding.fix

    def test_root_at_warning_with_no_info_logger(self, lint: Any) -> None:
        """A root explicitly at WARNING and no logger below it at INFO: reported, without the default's words."""
        config = lint_config()
        config["root"]["level"] = "WARNING"
        (finding,) = lint(config)
        assert codes([finding]) == [("logger-level", "root")]
        assert "the root logger is at WARNING and no logger below it takes INFO" in finding.problem

    def test_handler_level_above_info(self, lint: Any) -> None:
        """The Kafka handler's own level at WARNING keeps INFO out of Kafka."""
        config = lint_config()
        config["handlers"]["kafka"]["level"] = "WARNING"
        assert codes(lint(config)) == [("handler-level", "kafka")]

    def test_propagate_false_without_the_kafka_handler(self, lint: Any) -> None:
        """"propagate": false on a logger with only a console handler: its records never reach 'kafka'."""
        (finding,) = lint(lint_config(loggers={"uvicorn.access": {"handlers": ["file"], "propagate": False}}))
        assert codes([finding]) == [("propagate", "uvicorn.access")]
        assert "never reach handler 'kafka' on the root logger" in finding.problem
        assert finding.fix == ("add 'kafka' to its \"handlers\", or remove \"propagate\": false; "
                               "--ignore propagate:uvicorn.access if it is meant")

    def test_unattached_handler(self, lint: Any) -> None:
        """A KafkaLogHandler no logger lists receives nothing, and is named."""
        config = lint_config()
        config["root"]["handlers"] = ["file"]
        assert codes(lint(config)) == [("unattached", "kafka")]


class TestLintFronts:
    def test_queue_handler_in_front(self, lint: Any) -> None:
        """A QueueHandler whose listener feeds the KafkaLogHandler: warned, with why and the fix."""
        import queue

        config = lint_config()
        config["root"]["handlers"] = ["file"]
        lint(config)
        kafka = logging._handlers["kafka"]  # type: ignore[attr-defined]
        q: queue.Queue[Any] = queue.Queue()
        front = logging.handlers.QueueHandler(q)
        front.set_name("queue")
        front.listener = logging.handlers.QueueListener(q, kafka)  # type: ignore[attr-defined]  # as 3.12 does
        logging.getLogger().addHandler(front)
        from logkafka._cli import lint as _lint

        found = _lint.lint(config, [_lint.Target("kafka", kafka)])
        assert codes(found) == [("queue-handler", "queue")]
        assert "bound context" in found[0].problem and "flattens" in found[0].problem
        assert "give 'queue' a logkafka.JsonFormatter" in found[0].fix
        assert "attach 'kafka' to the logger directly" in found[0].fix
        front.setFormatter(JsonFormatter())  # the set-up that keeps the record: nothing to say
        assert _lint.lint(config, [_lint.Target("kafka", kafka)]) == []

    def test_listener_made_in_code_is_found_by_its_queue(self, lint: Any) -> None:
        """A QueueListener started in code (Python 3.11's way) is found through the QueueHandler's queue."""
        import queue

        config = lint_config()
        config["root"]["handlers"] = ["file"]
        lint(config)
        kafka = logging._handlers["kafka"]  # type: ignore[attr-defined]
        q: queue.Queue[Any] = queue.Queue()
        listener = logging.handlers.QueueListener(q, kafka)
        logging.getLogger("app").addHandler(logging.handlers.QueueHandler(q))
        from logkafka._cli import lint as _lint

        assert [f.code for f in _lint.lint(config, [_lint.Target("kafka", kafka)])] == ["queue-handler"]
        del listener

    def test_memory_handler_in_front(self, lint: Any) -> None:
        """A MemoryHandler targeting the KafkaLogHandler: warned (records take the flushing call's context)."""
        config = lint_config()
        config["handlers"]["buffer"] = {"class": "logging.handlers.MemoryHandler", "capacity": 100,
                                        "target": "kafka"}
        config["root"]["handlers"] = ["file", "buffer"]
        found = lint(config)
        assert codes(found) == [("memory-handler", "buffer")]
        assert "not their own" in found[0].problem


class TestLintIdentity:
    def test_handler_and_formatter_disagree(self, lint: Any) -> None:
        """service_name on the handler and another on its formatter: one warning naming both values."""
        config = lint_config()
        config["handlers"]["kafka"]["service_name"] = "payments"
        config["handlers"]["kafka"]["environment"] = "prod"
        config["formatters"]["json"]["environment"] = "prod"
        (finding,) = lint(config)
        assert codes([finding]) == [("identity", "kafka")]
        assert "service_name 'payments' on the handler, 'checkout' on the formatter" in finding.problem
        assert "handler 'file', sharing the formatter, writes the formatter's" in finding.problem
        assert "environment" not in finding.problem.split("(")[1].split(")")[0]  # the same on both: not named

    def test_same_identity_or_only_on_one_side(self, lint: Any) -> None:
        """The same value on both, or a value on one side only, is no disagreement."""
        config = lint_config()
        config["handlers"]["kafka"]["service_name"] = "checkout"
        config["handlers"]["kafka"]["version"] = "1.2.3"  # the formatter sets none
        assert lint(config) == []

    def test_formatter_by_class_drops_its_identity(self, lint: Any) -> None:
        """A JsonFormatter given by "class" loses its service_name in dictConfig: warned, "()" suggested."""
        config = lint_config()
        config["formatters"]["json"] = {"class": "logkafka.JsonFormatter", "service_name": "checkout"}
        (finding,) = lint(config)
        assert codes([finding]) == [("formatter-class", "json")]
        assert "service_name is silently ignored" in finding.problem
        assert "\"()\": 'logkafka.JsonFormatter'" in finding.fix

    def test_formatter_without_a_factory_drops_its_identity(self, lint: Any) -> None:
        """A formatter with neither "()" nor "class" is a plain logging.Formatter: its service_name is dropped."""
        config = lint_config()
        config["formatters"]["json"] = {"format": "%(message)s", "service_name": "checkout"}
        (finding,) = lint(config)
        assert codes([finding]) == [("formatter-class", "json")]
        assert 'names no "()" factory' in finding.problem
        assert finding.fix.startswith('give it "()": "logkafka.JsonFormatter"')


class TestLintSpoolDir:
    def test_problems_found_without_leaving_anything(self, tmp_path: Path) -> None:
        """A file, a path under a file, a path that cannot be created: each named; a writable or creatable one is
        fine, and the test leaves no file and creates no directory."""
        from logkafka._cli.lint_handlers import spool_dir_problem

        a_file = tmp_path / "a-file"
        a_file.write_text("x")
        assert spool_dir_problem(str(a_file)) == f"{a_file} is a file, not a directory"
        assert spool_dir_problem(str(a_file / "spool")) == f"{a_file} is a file, so {a_file / 'spool'} cannot " \
                                                           "be created under it"
        problem = spool_dir_problem("/sys/logkafka-spool")  # sysfs refuses new files, even to root
        assert problem is not None and problem.startswith("/sys/logkafka-spool cannot be created: /sys cannot be")
        before = sorted(tmp_path.rglob("*"))
        assert spool_dir_problem(str(tmp_path)) is None
        assert spool_dir_problem(str(tmp_path / "new" / "spool")) is None
        assert sorted(tmp_path.rglob("*")) == before

    def test_unusable_spool_dir_is_a_warning(self, lint: Any, tmp_path: Path) -> None:
        """The application's spool directory that cannot be created is a warning naming the handler."""
        a_file = tmp_path / "a-file"
        a_file.write_text("x")
        found = lint(lint_config(), kafka=str(a_file / "spool"))
        assert codes(found) == [("spool-dir", "kafka")]
        assert "records that cannot be delivered at once" in found[0].problem
        assert "spool_dir to false for no spool" in found[0].fix


class TestLintExt:
    def test_ext_left_in_producer_config(self, lint: Any) -> None:
        """An ext:// text inside producer_config reaches librdkafka as text: named with its key."""
        config = lint_config()
        config["handlers"]["kafka"]["producer_config"] = {"client.id": "ext://app.settings.CLIENT_ID"}
        (finding,) = lint(config)
        assert codes([finding]) == [("ext-in-producer-config", "kafka")]
        assert "producer_config['client.id'] is the text 'ext://app.settings.CLIENT_ID'" in finding.problem
        assert "{'client.id': app.settings.CLIENT_ID}" in finding.fix

    def test_ext_in_the_handlers_own_settings_is_resolved(self, lint: Any) -> None:
        """ext:// in a handler's own argument is resolved by dictConfig: nothing to say."""
        config = lint_config()
        config["handlers"]["kafka"]["topic"] = "ext://logkafka._settings.DEFAULT_TOPIC"
        assert lint(config) == []


class TestFinding:
    def test_matches(self) -> None:
        """--ignore CODE covers every finding of the code; CODE:NAME only the one about NAME."""
        from logkafka._cli.lint_tree import Finding

        f = Finding("logger-level", "urllib3", "p", "f")
        assert f.matches("logger-level") and f.matches("logger-level:urllib3")
        assert not f.matches("logger-level:app") and not f.matches("propagate")
        assert str(f) == "warning [logger-level]: p\n  fix: f"


class TestCheckLintCli:
    """check --no-probe: the lint end to end, as a user runs it, with no cluster."""

    def write(self, tmp_path: Path, config: dict[str, Any]) -> Path:
        path = tmp_path / "logging.json"
        path.write_text(json.dumps(config))
        return path

    def test_readme_recipe_is_clean_with_strict(self, tmp_path: Path) -> None:
        """The README recipe with "disable_existing_loggers": False passes --strict with no warning."""
        config = readme_recipe()
        config["disable_existing_loggers"] = False
        config["handlers"]["file"]["filename"] = str(tmp_path / "app.log")
        proc = run_cli("check", str(self.write(tmp_path, config)), "--no-probe", "--strict", timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert warnings_of(proc.stdout) == []
        assert proc.stdout.rstrip().endswith("OK: 1 KafkaLogHandler checked without connecting (--no-probe), "
                                             "no warnings")
        assert "connect:" not in proc.stdout

    def test_strict_fails_with_exit_3_and_ignore_accepts(self, tmp_path: Path) -> None:
        """Warnings pass without --strict (exit 0), fail with it (exit 3, one error line); --ignore CODE:NAME
        accepts one, and says that it was left out."""
        path = self.write(tmp_path, lint_config(loggers={"urllib3": {"level": "WARNING"}}))
        plain = run_cli("check", str(path), "--no-probe", timeout=60)
        assert plain.returncode == 0, plain.stderr
        assert warnings_of(plain.stdout) == ["logger-level"]
        assert "\n  fix: " in plain.stdout
        assert plain.stdout.rstrip().endswith(", 1 warning")

        strict = run_cli("check", str(path), "--no-probe", "--strict", timeout=60)
        assert strict.returncode == 3
        (error,) = errors_of(strict, "check")
        assert error.endswith("but 1 warning (--strict)")

        ignored = run_cli("check", str(path), "--no-probe", "--strict", "--ignore", "logger-level:urllib3",
                          timeout=60)
        assert ignored.returncode == 0, ignored.stderr
        assert warnings_of(ignored.stdout) == []
        assert "(1 warning not shown: --ignore)" in ignored.stdout

    def test_unknown_ignore_code_is_a_usage_error(self, tmp_path: Path) -> None:
        """--ignore with a code that does not exist: exit 2, listing the codes."""
        proc = run_cli("check", str(self.write(tmp_path, lint_config())), "--ignore", "levels", timeout=60)
        assert proc.returncode == 2
        assert "unknown warning code 'levels'" in proc.stderr and "logger-level" in proc.stderr

    def test_import_time_logger_of_a_python_config_is_named(self, tmp_path: Path) -> None:
        """A Python configuration whose import creates an app logger, without "disable_existing_loggers":
        that logger is named as disabled."""
        config = lint_config()
        del config["disable_existing_loggers"]
        (tmp_path / "conf_lint.py").write_text(textwrap.dedent(f"""\
            import json, logging
            log = logging.getLogger("shop.models")  # as a module of the application would, at import
            LOGGING = json.loads({json.dumps(json.dumps(config))})
            """))
        proc = run_cli("check", "conf_lint", "--no-probe", cwd=tmp_path, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert warnings_of(proc.stdout) == ["disable-existing-loggers"]
        assert "shop.models" in proc.stdout

    def test_spool_dir_under_a_file(self, tmp_path: Path) -> None:
        """spool_dir under a regular file: the check itself still runs (its own spool), and warns."""
        (tmp_path / "a-file").write_text("x")
        config = lint_config()
        config["handlers"]["kafka"]["spool_dir"] = str(tmp_path / "a-file" / "spool")
        proc = run_cli("check", str(self.write(tmp_path, config)), "--no-probe", timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert warnings_of(proc.stdout) == ["spool-dir"]
        assert f"handler 'kafka' spools to {tmp_path / 'a-file' / 'spool'} (spool_dir)" in proc.stdout

    def test_help_documents_the_exit_codes_and_the_probe_topic(self) -> None:
        """--help says what each exit status means, where the probe goes, and lists --strict and the codes."""
        proc = run_cli("check", "--help", timeout=60)
        assert proc.returncode == 0
        text = " ".join(proc.stdout.split())
        for words in ("Exit status: 0 when", "1 when a probe", "2 when the configuration", "3 with --strict",
                      "<application topic>.check", "--probe-topic", "--no-probe", "queue-handler"):
            assert words in text
