"""``logkafka check``, ``logkafka topics ensure`` and ``logkafka replay``, run as a subprocess against the broker."""

from __future__ import annotations

import json
import logging
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

from logkafka import KafkaLogHandler
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
    probes = [m.data for m in read_topic(servers, topic, timeout=30) if probe_id in m.value.decode()]
    assert len(probes) == 1
    assert probes[0]["code"] == "LOGKAFKA_CHECK"
    assert probes[0]["logger"] == "lkcheck"


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
        (msg,) = [m for m in read_topic(kafka_broker.bootstrap_servers, kafka_topic, timeout=30)
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
        from logkafka._cli import masked

        shown = masked({name: "clientSecret=s3cr3t", "empty": ""})
        assert shown[name] == ("***" if secret else "clientSecret=s3cr3t")
        assert shown["empty"] == ""


class TestCheckSpool:
    @pytest.mark.parametrize("where", ["spool_dir", "LOGKAFKA_SPOOL_DIR"])
    def test_unacknowledged_probe_is_not_left_in_the_applications_spool(self, tmp_path: Path, where: str) -> None:
        """A probe the cluster never acknowledges fails the check and is not left in the application's spool
        (named by spool_dir or by LOGKAFKA_SPOOL_DIR), where the application would later replay it; the check's
        own temporary spool is removed."""
        from logkafka.testing import LocalBroker

        # the cluster answers metadata requests but names a leader nobody listens on: nothing is acknowledged
        with LocalBroker(advertised_port=free_port()) as broker:
            app_spool = tmp_path / "app-spool" if where == "spool_dir" else Path(os.environ["LOGKAFKA_SPOOL_DIR"])
            extra = {"spool_dir": str(app_spool)} if where == "spool_dir" else {}
            path = tmp_path / "logging.json"
            path.write_text(json.dumps(logging_config(
                bootstrap_servers=f"127.0.0.1:{broker.port}", topic=f"test.check-spool.{uuid.uuid4().hex[:8]}",
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
