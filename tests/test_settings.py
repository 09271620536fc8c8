"""KafkaLogHandler settings: validated at construction, from arguments and the environment.

No broker is needed: construction never connects. Addresses like 127.0.0.1:1 have
nobody listening.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import logkafka
from logkafka import KafkaLogHandler

NOWHERE = "127.0.0.1:1"
ENV = (
    "KAFKA_BOOTSTRAP_SERVERS", "LOGKAFKA_TOPIC", "LOGKAFKA_QUEUE_SIZE", "LOGKAFKA_FLUSH_TIMEOUT", "LOGKAFKA_ENABLED",
    "OTEL_SERVICE_NAME", "SERVICE_NAME", "ENVIRONMENT", "APP_VERSION", "SERVICE_INSTANCE_ID",
    "LOGKAFKA_MEMORY_BUDGET", "LOGKAFKA_KEY", "LOGKAFKA_LEVEL", "LOGKAFKA_REDACT", "LOGKAFKA_REDACT_KEYS",
    "LOGKAFKA_REDACT_PATTERNS", "LOGKAFKA_REDACT_ALLOW",
)

Make = Callable[..., KafkaLogHandler]


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting comes from the environment unless the test sets it."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def make() -> Iterator[Make]:
    """Build handlers (bootstrap_servers defaults to an address nobody listens on); all closed afterwards."""
    made: list[KafkaLogHandler] = []

    def build(**kwargs: Any) -> KafkaLogHandler:
        kwargs.setdefault("bootstrap_servers", NOWHERE)
        kwargs.setdefault("flush_timeout", 0.5)
        handler = KafkaLogHandler(**kwargs)
        made.append(handler)
        return handler

    yield build
    for handler in made:
        handler.close()


def worker_threads() -> list[str]:
    """Names of the live threads that belong to logkafka handlers."""
    return [t.name for t in threading.enumerate() if t.name.startswith("logkafka-")]


def client_threads() -> list[str]:
    """Names of this process's librdkafka threads (a live Kafka client has several)."""
    names = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        if name.startswith("rdk:"):
            names.append(name)
    return sorted(names)


def raises_naming(name: str, make: Make, **kwargs: Any) -> str:
    """Build a handler expecting ValueError; return its message, checked to start with ``name``."""
    with pytest.raises(ValueError) as info:
        make(**kwargs)
    message = str(info.value)
    assert message.startswith((f"{name}:", f"{name}[")), message
    return message


class TestNumbers:
    @pytest.mark.parametrize("value", [0, -1, "abc", True, False, 1.5, "1.5", [5]])
    def test_bad_queue_size(self, make: Make, value: Any) -> None:
        """queue_size must be a positive integer (not a bool, not a string of letters)."""
        raises_naming("queue_size", make, queue_size=value)

    @pytest.mark.parametrize("value", [0, -1, -0.5, "soon", True])
    def test_bad_flush_timeout(self, make: Make, value: Any) -> None:
        """flush_timeout must be a positive number of seconds."""
        raises_naming("flush_timeout", make, flush_timeout=value)

    def test_good_numbers(self, make: Make) -> None:
        """Positive values are taken; numeric strings (as from config files) are converted."""
        handler = make(queue_size=5, flush_timeout=0.25)
        assert (handler.settings.queue_size, handler.settings.flush_timeout) == (5, 0.25)
        handler = make(queue_size="7", flush_timeout="1.5")
        assert (handler.settings.queue_size, handler.settings.flush_timeout) == (7, 1.5)
        assert handler.stats()["queue_size"] == 7

    def test_bad_queue_size_from_env(self, make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
        """A bad LOGKAFKA_QUEUE_SIZE raises ValueError naming the variable."""
        monkeypatch.setenv("LOGKAFKA_QUEUE_SIZE", "x")
        raises_naming("LOGKAFKA_QUEUE_SIZE", make)

    def test_bad_flush_timeout_from_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A bad LOGKAFKA_FLUSH_TIMEOUT raises ValueError naming the variable."""
        monkeypatch.setenv("LOGKAFKA_FLUSH_TIMEOUT", "-3")
        with pytest.raises(ValueError, match=r"^LOGKAFKA_FLUSH_TIMEOUT:"):
            KafkaLogHandler(NOWHERE)


class TestTopic:
    @pytest.mark.parametrize("topic", ["", "bad topic", "a" * 250, ".", "..", "ümlaut", "a/b", 5])
    def test_bad_topic(self, make: Make, topic: Any) -> None:
        """An illegal Kafka topic name raises ValueError naming topic."""
        raises_naming("topic", make, topic=topic)

    @pytest.mark.parametrize("topic", ["logs", "a" * 249, "logs.app-v1_x", "..."])
    def test_good_topic(self, make: Make, topic: str) -> None:
        """Legal names, up to 249 characters, are accepted."""
        handler = make(topic=topic)
        assert handler.settings.topic == topic
        assert handler.stats()["topic"] == topic

    def test_bad_topic_from_env(self, make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
        """An illegal LOGKAFKA_TOPIC raises ValueError too."""
        monkeypatch.setenv("LOGKAFKA_TOPIC", "no spaces allowed")
        with pytest.raises(ValueError, match="topic"):
            make()


class TestProducerConfig:
    def test_unknown_setting(self, make: Make) -> None:
        """An unknown librdkafka setting raises ValueError naming producer_config and the setting."""
        message = raises_naming("producer_config", make, producer_config={"no.such.setting": 1})
        assert "no.such.setting" in message

    def test_python_style_name(self, make: Make) -> None:
        """A Python-style name with underscores gets a hint with librdkafka's dotted name."""
        message = raises_naming("producer_config", make, producer_config={"linger_ms": 5})
        assert "linger_ms" in message
        assert "linger.ms" in message

    def test_invalid_value(self, make: Make) -> None:
        """An invalid value for a known setting raises ValueError naming producer_config."""
        message = raises_naming("producer_config", make, producer_config={"acks": "sometimes"})
        # librdkafka's name for it is request.required.acks: the user's name comes first
        assert message.startswith("producer_config['acks']: invalid value 'sometimes'"), message

    @pytest.mark.parametrize(
        ("name", "value"),
        [("on_delivery", lambda err, msg: None), ("delivery.report.only.error", True)],
    )
    def test_reserved(self, make: Make, name: str, value: Any) -> None:
        """Settings logkafka owns cannot be set: ValueError naming producer_config and the setting."""
        message = raises_naming("producer_config", make, producer_config={name: value})
        assert name in message

    def test_not_a_mapping(self, make: Make) -> None:
        """producer_config must be a mapping."""
        raises_naming("producer_config", make, producer_config=[("acks", "all")])

    def test_safe_defaults(self, make: Make) -> None:
        """Without producer_config the handler uses the safe producer defaults."""
        config = make().settings.producer_config
        assert config["acks"] == "all"
        assert config["enable.idempotence"] is True
        assert config["compression.type"] == "lz4"
        assert "linger.ms" in config
        assert config["bootstrap.servers"] == NOWHERE

    def test_user_config_wins(self, make: Make) -> None:
        """The user's producer_config overrides the defaults and keeps the rest of them."""
        config = make(producer_config={"acks": "1", "enable.idempotence": False, "compression.type": "zstd",
                                       "linger.ms": 50, "client.id": "mine"}).settings.producer_config
        assert (config["acks"], config["enable.idempotence"], config["compression.type"], config["linger.ms"],
                config["client.id"]) == ("1", False, "zstd", 50, "mine")
        assert config["partitioner"] == "murmur2_random"

    def test_bootstrap_servers_in_config(self, make: Make) -> None:
        """bootstrap.servers may be given in producer_config instead of bootstrap_servers."""
        handler = KafkaLogHandler(producer_config={"bootstrap.servers": "127.0.0.1:2"}, flush_timeout=0.5)
        try:
            assert handler.settings.bootstrap_servers == "127.0.0.1:2"
        finally:
            handler.close()

    def test_bootstrap_servers_given_twice(self, make: Make) -> None:
        """Different servers in bootstrap_servers and producer_config raise ValueError."""
        raises_naming("bootstrap_servers", make, producer_config={"bootstrap.servers": "127.0.0.1:2"})

    def test_user_config_not_mutated(self, make: Make) -> None:
        """The caller's producer_config dict is left as it was."""
        config = {"linger.ms": 20}
        make(producer_config=config)
        assert config == {"linger.ms": 20}


class TestKey:
    @pytest.mark.parametrize("key", ["not_a_field", "extra.", "context.", "extra.bad name", "levelno", 5])
    def test_bad_key(self, make: Make, key: Any) -> None:
        """A key that names no record attribute raises ValueError naming key."""
        raises_naming("key", make, key=key)

    @pytest.mark.parametrize(
        "key", ["service", "tenant_id", "context.request_id", "extra.order_id", None, "host", "logger", "code"],
    )
    def test_good_key(self, make: Make, key: str | None) -> None:
        """Field names, known context keys, extra.<name>, context.<name> and None are accepted."""
        assert make(key=key).settings.key == key

    def test_message_lists_choices(self, make: Make) -> None:
        """The error for a bad key names the value and suggests the forms that work."""
        message = raises_naming("key", make, key="not_a_field")
        assert "not_a_field" in message
        assert "extra.<name>" in message


class TestBootstrapServers:
    @pytest.mark.parametrize("servers", ["", "nohostport", " ", "host:1,", "a:1,,b:2", 9092])
    def test_bad(self, make: Make, servers: Any) -> None:
        """Servers that are not host:port[,host:port...] raise ValueError naming bootstrap_servers."""
        raises_naming("bootstrap_servers", make, bootstrap_servers=servers)

    def test_several(self, make: Make) -> None:
        """A comma-separated list of host:port is accepted as given."""
        assert make(bootstrap_servers="127.0.0.1:1,127.0.0.1:2").settings.bootstrap_servers == (
            "127.0.0.1:1,127.0.0.1:2")

    def test_from_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """KAFKA_BOOTSTRAP_SERVERS is used when bootstrap_servers is not given."""
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:3")
        handler = KafkaLogHandler(flush_timeout=0.5)
        try:
            assert handler.settings.bootstrap_servers == "127.0.0.1:3"
            assert handler.settings.producer_config["bootstrap.servers"] == "127.0.0.1:3"
        finally:
            handler.close()

    def test_bad_from_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A bad KAFKA_BOOTSTRAP_SERVERS raises ValueError too."""
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "nohostport")
        with pytest.raises(ValueError, match="bootstrap_servers"):
            KafkaLogHandler(flush_timeout=0.5)


class TestEnvironment:
    def test_env_defaults(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """LOGKAFKA_TOPIC, LOGKAFKA_QUEUE_SIZE and LOGKAFKA_FLUSH_TIMEOUT give the defaults."""
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", NOWHERE)
        monkeypatch.setenv("LOGKAFKA_TOPIC", "env.topic")
        monkeypatch.setenv("LOGKAFKA_QUEUE_SIZE", "123")
        monkeypatch.setenv("LOGKAFKA_FLUSH_TIMEOUT", "0.75")
        handler = KafkaLogHandler()
        try:
            s = handler.settings
            assert (s.topic, s.queue_size, s.flush_timeout) == ("env.topic", 123, 0.75)
        finally:
            handler.close()

    def test_arguments_win(self, make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
        """Explicit arguments win over the environment."""
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:3")
        monkeypatch.setenv("LOGKAFKA_TOPIC", "env.topic")
        monkeypatch.setenv("LOGKAFKA_QUEUE_SIZE", "123")
        monkeypatch.setenv("LOGKAFKA_FLUSH_TIMEOUT", "9")
        monkeypatch.setenv("LOGKAFKA_ENABLED", "false")
        s = make(bootstrap_servers=NOWHERE, topic="arg.topic", queue_size=5, flush_timeout=0.5, enabled=True).settings
        assert (s.bootstrap_servers, s.topic, s.queue_size, s.flush_timeout, s.enabled) == (
            NOWHERE, "arg.topic", 5, 0.5, True)

    def test_documented_defaults(self) -> None:
        """With neither arguments nor environment: localhost:9092, logs.application.v1, a 16 MiB memory budget
        (a queue of 4,096 records, librdkafka's buffer 3 MiB of values and 2,048 messages), 10 s, enabled."""
        handler = KafkaLogHandler()
        try:
            s = handler.settings
            assert (s.bootstrap_servers, s.topic, s.queue_size, s.flush_timeout, s.enabled, s.key) == (
                "localhost:9092", "logs.application.v1", 4096, 10.0, True, "service")
            assert handler.stats()["memory_budget"] == 16 << 20
            assert (s.producer_config["queue.buffering.max.kbytes"],
                    s.producer_config["queue.buffering.max.messages"]) == (3072, 2048)
        finally:
            handler.close()

    def test_identity(self, make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
        """The identity comes from the arguments, else the environment."""
        monkeypatch.setenv("SERVICE_NAME", "env-svc")
        monkeypatch.setenv("ENVIRONMENT", "staging")
        identity = make(version="3.1").settings.identity
        assert (identity["service"], identity["environment"], identity["version"]) == ("env-svc", "staging", "3.1")
        assert make().settings.producer_config["client.id"] == "logkafka-env-svc"

    @pytest.mark.parametrize("setting", ["service_name", "environment", "version", "instance_id"])
    def test_bad_identity(self, make: Make, setting: str) -> None:
        """An empty identity setting raises ValueError naming it."""
        raises_naming(setting, make, **{setting: ""})


class TestEnabled:
    def test_bad_env(self, make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
        """LOGKAFKA_ENABLED that is not a boolean raises ValueError naming LOGKAFKA_ENABLED."""
        monkeypatch.setenv("LOGKAFKA_ENABLED", "maybe")
        raises_naming("LOGKAFKA_ENABLED", make)

    def test_bad_argument(self, make: Make) -> None:
        """enabled that is not a boolean raises ValueError naming enabled."""
        raises_naming("enabled", make, enabled="maybe")

    @pytest.mark.parametrize(("text", "expected"), [("false", False), ("0", False), ("no", False), ("OFF", False),
                                                     ("true", True), ("1", True), ("Yes", True), ("on", True)])
    def test_env_words(self, make: Make, monkeypatch: pytest.MonkeyPatch, text: str, expected: bool) -> None:
        """LOGKAFKA_ENABLED takes the usual words for true and false."""
        monkeypatch.setenv("LOGKAFKA_ENABLED", text)
        assert make().settings.enabled is expected

    @pytest.mark.parametrize("how", ["argument", "env"])
    def test_disabled_does_nothing(self, make: Make, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
        """A disabled handler's emit does nothing: nothing produced or queued, no worker thread."""
        if how == "env":
            monkeypatch.setenv("LOGKAFKA_ENABLED", "false")
            handler = make()
        else:
            handler = make(enabled=False)
        before = worker_threads()
        lg = logging.getLogger("test.settings.disabled")
        lg.propagate = False
        lg.addHandler(handler)
        try:
            for i in range(10):
                lg.error("record %d", i)
        finally:
            lg.removeHandler(handler)
        stats = handler.stats()
        assert stats["enabled"] is False
        assert stats["produced"] == 0
        assert stats["queue_depth"] == 0
        assert stats["dropped_total"] == 0
        assert worker_threads() == before
        assert handler.flush() is True

    def test_disabled_skips_producer_checks(self, make: Make) -> None:
        """A disabled handler does not ask librdkafka about producer_config."""
        assert make(enabled=False, producer_config={"no.such.setting": 1}).settings.enabled is False

    def test_enabled_starts_a_worker_on_emit(self, make: Make) -> None:
        """For contrast: an enabled handler starts a logkafka-* thread at its first record, not before."""
        handler = make(topic="settings.contrast", flush_timeout=0.2)
        assert "logkafka-settings.contrast" not in worker_threads()
        handler.emit(logging.makeLogRecord({"name": "app", "msg": "x"}))
        assert "logkafka-settings.contrast" in worker_threads()
        assert handler.stats()["enabled"] is True
        handler.close()
        deadline = time.monotonic() + 10
        while "logkafka-settings.contrast" in worker_threads() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "logkafka-settings.contrast" not in worker_threads()  # the thread ends after close()


class TestConstruction:
    def test_construction_starts_no_client(self, make: Make) -> None:
        """Construction with a broker nobody listens on leaves no Kafka client and no thread running: nothing
        connects, resolves or waits until the first record (librdkafka's threads are named rdk:...)."""
        before = client_threads()
        handler = make(bootstrap_servers=NOWHERE, flush_timeout=10)
        assert client_threads() == before and "logkafka-" not in " ".join(worker_threads())
        assert handler.stats()["produced"] == 0
        assert handler.stats()["errors"] == 0

    def test_unresolvable_host(self, make: Make) -> None:
        """A host name that does not resolve is not looked up at construction: no client runs to look it up,
        and no error is counted."""
        before = client_threads()
        handler = make(bootstrap_servers="no-such-host.invalid:9092")
        assert client_threads() == before
        assert handler.stats()["errors"] == 0 and handler.stats()["last_error"] is None

    def test_close_without_records(self, make: Make) -> None:
        """Closing a handler that never got a record returns quickly and can be repeated."""
        handler = make(flush_timeout=10)
        start = time.monotonic()
        handler.close()
        handler.close()
        assert time.monotonic() - start < 5

    def test_level(self, make: Make) -> None:
        """level is the handler's level, by number or name."""
        assert make(level="WARNING").level == logging.WARNING
        assert make(level="warning").level == logging.WARNING
        assert make(level=logging.ERROR).level == logging.ERROR

    def test_unknown_level_names_the_setting(self) -> None:
        """An unknown level name is a ValueError naming the setting."""
        with pytest.raises(ValueError, match="level"):
            logkafka.KafkaLogHandler("127.0.0.1:1", enabled=False, level="loud")


class TestDictConfig:
    @staticmethod
    def _config(**handler: Any) -> dict[str, Any]:
        return {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"kafka": {"class": "logkafka.KafkaLogHandler", **handler}},
            "loggers": {"test.settings.dictconfig": {"handlers": ["kafka"], "propagate": False}},
        }

    @pytest.mark.parametrize(
        ("setting", "handler"),
        [("queue_size", {"queue_size": 0}), ("topic", {"topic": "bad topic"}),
         ("producer_config", {"producer_config": {"linger_ms": 5}}), ("key", {"key": "not_a_field"}),
         ("bootstrap_servers", {"bootstrap_servers": "nohostport"})],
    )
    def test_bad_setting(self, setting: str, handler: dict[str, Any]) -> None:
        """dictConfig with a bad setting raises ValueError whose message (or cause) names the setting."""
        handler.setdefault("bootstrap_servers", NOWHERE)
        with pytest.raises(ValueError) as info:
            logging.config.dictConfig(self._config(**handler))
        messages = []
        exc: BaseException | None = info.value
        while exc is not None:
            messages.append(str(exc))
            exc = exc.__cause__ or exc.__context__
        assert any(m.startswith((f"{setting}:", f"{setting}[")) for m in messages), messages
        assert "kafka" in messages[0]

    def test_good_settings(self) -> None:
        """dictConfig builds the handler with every setting given there."""
        logging.config.dictConfig(self._config(
            bootstrap_servers=NOWHERE, topic="cfg.topic", queue_size=9, flush_timeout=0.5, key="context.tenant",
            service_name="cfg-svc", producer_config={"linger.ms": 1}, level="INFO"))
        handler = logging.getLogger("test.settings.dictconfig").handlers[0]
        try:
            assert isinstance(handler, KafkaLogHandler)
            s = handler.settings
            assert (s.topic, s.queue_size, s.flush_timeout, s.key, s.identity["service"]) == (
                "cfg.topic", 9, 0.5, "context.tenant", "cfg-svc")
            assert s.producer_config["linger.ms"] == 1
            assert handler.level == logging.INFO
        finally:
            logging.getLogger("test.settings.dictconfig").removeHandler(handler)
            handler.close()


class TestProducerConfigFromTheEnvironment:
    def test_json_and_key_value_and_secret_files(self, tmp_path: Any, monkeypatch: Any) -> None:
        """LOGKAFKA_PRODUCER_CONFIG_FILE, then LOGKAFKA_PRODUCER_CONFIG over it; "@path" values read a mounted
        secret; the constructor's producer_config wins over both."""
        import logkafka

        secret = tmp_path / "password"
        secret.write_text("s3cret\n")
        conf = tmp_path / "client.properties"
        conf.write_text("# from a mounted file\nlinger.ms=20\nclient.id=from-file\n")
        monkeypatch.setenv("LOGKAFKA_PRODUCER_CONFIG_FILE", str(conf))
        monkeypatch.setenv("LOGKAFKA_PRODUCER_CONFIG", f'{{"linger.ms": 50, "sasl.password": "@{secret}"}}')
        h = logkafka.KafkaLogHandler("127.0.0.1:1", "t", spool_dir=False, producer_config={"client.id": "arg"})
        try:
            config = h.settings.producer_config
            assert config["linger.ms"] == "50" and config["sasl.password"] == "s3cret"
            assert config["client.id"] == "arg"
        finally:
            h.close()

    def test_malformed_names_the_variable(self, monkeypatch: Any) -> None:
        import pytest

        import logkafka

        monkeypatch.setenv("LOGKAFKA_PRODUCER_CONFIG", "linger.ms")
        with pytest.raises(ValueError, match=r"LOGKAFKA_PRODUCER_CONFIG: line 1: expected key=value"):
            logkafka.KafkaLogHandler("127.0.0.1:1", "t", spool_dir=False)
        monkeypatch.setenv("LOGKAFKA_PRODUCER_CONFIG", "linger.ms=5\nsasl.password=@/no/such/file")
        with pytest.raises(ValueError, match=r"sasl\.password: cannot read '/no/such/file'"):
            logkafka.KafkaLogHandler("127.0.0.1:1", "t", spool_dir=False)

    def test_an_unset_address_is_said_once(self, monkeypatch: Any, capsys: Any) -> None:
        import logkafka
        from logkafka import _report

        monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
        monkeypatch.setattr(_report, "_last", {})
        h = logkafka.KafkaLogHandler(topic="t", spool_dir=False, enabled=True)
        h.close()
        assert "no Kafka address set" in capsys.readouterr().err and h.settings.servers_defaulted
        h = logkafka.KafkaLogHandler("127.0.0.1:1", "t", spool_dir=False)
        h.close()
        assert not h.settings.servers_defaulted


class TestMemoryBudget:
    """memory_budget / LOGKAFKA_MEMORY_BUDGET: one number of bytes sharing out the queues and librdkafka's buffers."""

    @pytest.mark.parametrize(("value", "size"), [
        (8 << 20, 8 << 20), ("8MiB", 8 << 20), ("8M", 8 << 20), ("8 mb", 8 << 20), ("1.5GiB", 3 << 29),
        ("2048KiB", 2 << 20), ("4194304", 4 << 20),
    ])
    def test_sizes(self, make: Make, value: Any, size: int) -> None:
        assert make(memory_budget=value).stats()["memory_budget"] == size

    @pytest.mark.parametrize("value", ["lots", "-5MiB", "16XB", True, 1000, "0.5MiB", "16ib", "9" * 400, "8T", 1 << 50])
    def test_bad_sizes_name_the_setting(self, make: Make, value: Any) -> None:
        raises_naming("memory_budget", make, memory_budget=value)

    def test_from_the_environment(self, make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("LOGKAFKA_MEMORY_BUDGET", "64MiB")
        s = make().settings
        assert s.queue_size == 16384  # a quarter, at 1 KiB a record
        assert s.producer_config["queue.buffering.max.kbytes"] == 12288  # 3/8 for the producer: half values
        assert s.stream_producer_config["queue.buffering.max.kbytes"] == 4096  # an eighth for audit/security
        monkeypatch.setenv("LOGKAFKA_MEMORY_BUDGET", "sixteen")
        raises_naming("LOGKAFKA_MEMORY_BUDGET", make)

    def test_shares_add_up_to_the_budget(self, make: Make) -> None:
        """Queues at 1 KiB a record, the producer at its value bytes plus 1.5 KiB a message and the spool's batch
        stay in the budget."""
        from logkafka._memory import _RDKAFKA_MESSAGE_BYTES, QUEUED_RECORD_BYTES

        for budget in (1 << 20, 16 << 20, 100_000_000):
            s = make(memory_budget=budget).settings
            plan = s.memory
            assert plan is not None
            queues = (plan.queue_size + plan.stream_queue_size) * QUEUED_RECORD_BYTES
            buffers = sum(c["queue.buffering.max.kbytes"] * 1024
                          + c["queue.buffering.max.messages"] * _RDKAFKA_MESSAGE_BYTES
                          for c in (s.producer_config, s.stream_producer_config))
            batch = 2 * plan.spool_batch  # held as lines and as records
            assert budget * 0.95 <= queues + buffers + batch <= budget, (budget, queues, buffers, batch)

    def test_explicit_settings_win(self, make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
        """queue_size (argument or LOGKAFKA_QUEUE_SIZE) and librdkafka's own settings in producer_config win."""
        s = make(memory_budget="8MiB", queue_size=123,
                 producer_config={"queue.buffering.max.messages": 777}).settings
        assert s.queue_size == 123
        assert s.producer_config["queue.buffering.max.messages"] == 777
        assert s.stream_producer_config["queue.buffering.max.messages"] == 777
        assert s.producer_config["queue.buffering.max.kbytes"] == 1536
        monkeypatch.setenv("LOGKAFKA_QUEUE_SIZE", "55")
        assert make(memory_budget="8MiB").settings.queue_size == 55

    def test_a_full_capture_halves_the_queue(self, make: Make) -> None:
        """A formatter that reads every record attribute makes each queued record about twice as big."""
        handler = make(memory_budget="8MiB")
        assert handler.stats()["queue_size"] == 2048
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.handle(logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None))
        assert handler.stats()["queue_size"] == 1024


class TestSettingsFromTheEnvironment:
    """key, level and redaction from LOGKAFKA_KEY, LOGKAFKA_LEVEL and LOGKAFKA_REDACT_*."""

    def test_key(self, make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("LOGKAFKA_KEY", "tenant_id")
        assert make().settings.key == "tenant_id"
        assert make(key="code").settings.key == "code"  # an argument other than the default wins
        monkeypatch.setenv("LOGKAFKA_KEY", "none")
        assert make().settings.key is None
        monkeypatch.setenv("LOGKAFKA_KEY", "tenant")
        message = raises_naming("LOGKAFKA_KEY", make)
        assert "tenant_id" in message

    def test_level(self, make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("LOGKAFKA_LEVEL", "warning")
        assert make().level == logging.WARNING
        assert make(level="ERROR").level == logging.ERROR
        assert make(level="notset").level == logging.WARNING  # left at NOTSET, however written
        monkeypatch.setenv("LOGKAFKA_LEVEL", "LOUD")
        raises_naming("LOGKAFKA_LEVEL", make)

    def test_redaction_adds_to_every_json_formatter(self, make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
        """The variables add to the arguments, for the handler's own formatter and a JsonFormatter alike."""
        monkeypatch.setenv("LOGKAFKA_REDACT_KEYS", "pin, badge")
        monkeypatch.setenv("LOGKAFKA_REDACT_PATTERNS", json.dumps([r"ACME-\d{6}"]))
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "order ACME-123456 ok", None, None)
        record.pin, record.badge, record.visible, record.office = "1234", "b-77", "shown", "o-1"
        for formatter in (logkafka.JsonFormatter(redact_keys=["office"]),
                          logkafka.JsonFormatter(fmt=None, redact_keys=("office",))):
            out = json.loads(formatter.format(record))
            assert "ACME-123456" not in out["message"] and out["visible"] == "shown"
            assert "1234" not in json.dumps(out) and "b-77" not in json.dumps(out) and "o-1" not in json.dumps(out)
        monkeypatch.setenv("LOGKAFKA_REDACT_ALLOW", "pin")
        assert json.loads(logkafka.JsonFormatter().format(record))["pin"] == "1234"
        monkeypatch.setenv("LOGKAFKA_REDACT", "false")
        monkeypatch.delenv("LOGKAFKA_REDACT_ALLOW")
        assert json.loads(logkafka.JsonFormatter().format(record))["badge"] == "b-77"

    @pytest.mark.parametrize(("name", "value"), [
        ("LOGKAFKA_REDACT", "maybe"), ("LOGKAFKA_REDACT_PATTERNS", "[1, 2]"), ("LOGKAFKA_REDACT_PATTERNS", "(unclosed"),
        ("LOGKAFKA_REDACT_PATTERNS", "[not json"),
    ])
    def test_bad_redaction_names_the_variable(self, make: Make, monkeypatch: pytest.MonkeyPatch, name: str,
                                              value: str) -> None:
        monkeypatch.setenv(name, value)
        raises_naming(name, make)
