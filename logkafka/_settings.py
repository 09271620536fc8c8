"""Handler settings: constructor arguments and environment variables, validated loudly."""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException, Producer

from logkafka._record import CORE_FIELDS

DEFAULT_TOPIC = "logs.application.v1"
DEFAULT_AUDIT_TOPIC = "logs.audit.v1"
DEFAULT_SECURITY_TOPIC = "logs.security.v1"
STREAMS = ("application", "audit", "security")
FORMATS = ("flat", "envelope")
_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
DEFAULT_MEMORY_BUDGET = 16 << 20  # bytes per handler: 4 to 8 workers and their master fit a 512 MiB pod
QUEUED_RECORD_BYTES = 1024  # what a record waiting in the Python queue costs (measured: about 830 bytes)
_RDKAFKA_MESSAGE_BYTES = 768  # what librdkafka holds per message besides its value (measured: about 700)
_MIN_MEMORY_BUDGET = 1 << 20
DEFAULT_FLUSH_TIMEOUT = 10.0
DEFAULT_SPOOL_MAX_BYTES = 1 << 30  # 1 GiB per destination
DEFAULT_BLOCK_TIMEOUT = 1.0
OVERFLOW_POLICIES = ("spool", "drop_newest", "drop_oldest", "block")
DURABILITY_MODES = ("memory", "disk")
_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

#: Producer defaults for logs; every one can be overridden in ``producer_config``.
DEFAULT_SERVERS = "localhost:9092"  # when neither bootstrap_servers nor KAFKA_BOOTSTRAP_SERVERS is set
PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "compression.type": "lz4",
    "linger.ms": 5,
    "partitioner": "murmur2_random",  # the same partition for a key as the Java client
    # librdkafka's own buffer (queue.buffering.max.messages / .kbytes) comes from memory_budget
    # Broker addresses resolved at most every 30 s (librdkafka's default is 1 s): each lookup by a client
    # thread is a moment in which a fork (gunicorn, Celery prefork) leaves the child's resolver locked.
    "broker.address.ttl": 30_000,
}
#: Settings logkafka owns: changing them would break delivery accounting.
_RESERVED_PRODUCER = {
    "on_delivery": "logkafka counts every delivery report itself",
    "delivery.report.only.error": "logkafka counts every delivery report, successes included",
    "error_cb": "logkafka watches client errors itself",
}
#: Record attributes a ``key`` may name, besides the ``extra.<name>`` / ``context.<name>`` forms.
KEY_FIELDS = frozenset(CORE_FIELDS | {
    "code", "event_id", "correlation_id", "request_id", "tenant_id", "user_id", "session_id",
    "name", "levelname", "funcName", "lineno", "pathname", "filename", "processName", "threadName",
}) - {"message", "error", "stack_info", "timestamp"}


def env_bool(name: str, value: bool | str | None, default: bool) -> bool:
    """A boolean from an argument, else the environment variable ``name``."""
    source = name
    if value is None:
        value = os.environ.get(name)
        if value is None or value == "":
            return default
    else:
        source = name.lower().removeprefix("logkafka_")
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{source}: expected true or false, got {value!r}")


def _number(name: str, env: str, value: Any, default: float, kind: type) -> Any:
    source = name
    if value is None:
        raw = os.environ.get(env)
        if raw is None or raw == "":
            return kind(default)
        value, source = raw, env
    if isinstance(value, bool):
        raise ValueError(f"{source}: expected a number, got {value!r}")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: expected {'an integer' if kind is int else 'a number'}, got {value!r}") from None
    if kind is int and isinstance(value, float) and value != number:
        raise ValueError(f"{source}: expected an integer, got {value!r}")
    if not number > 0:
        raise ValueError(f"{source}: must be positive, got {value!r}")
    return number


_SIZE_RE = re.compile(r"^\s*(\d{1,15}(?:\.\d{1,6})?)\s*(?:([kmgt])i?b?|(b?))\s*$", re.IGNORECASE)
_MAX_MEMORY_BUDGET = 1 << 40  # librdkafka's buffer settings are 32-bit numbers
_SIZE_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def byte_size(name: str, env: str, value: Any, default: int, minimum: int = 1) -> int:
    """A size in bytes from the argument, else the environment variable ``env``, else ``default``:
    a number of bytes, or with a unit (``16MiB``, ``16M``, ``512KB``; K/M/G are powers of 1024)."""
    source = name
    if value is None:
        raw = os.environ.get(env)
        if raw is None or raw == "":
            return default
        value, source = raw, env
    if isinstance(value, bool):
        raise ValueError(f"{source}: expected a size in bytes, got {value!r}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE_RE.match(str(value))
        if not match:
            raise ValueError(f"{source}: expected a size in bytes such as 16777216, '16MiB' or '512KiB', got {value!r}")
        size = int(float(match.group(1)) * 1024 ** _SIZE_UNITS[(match.group(2) or "").lower()])
    if size > _MAX_MEMORY_BUDGET:
        raise ValueError(f"{source}: at most 1 TiB, got {value!r}")
    if size < minimum:
        raise ValueError(f"{source}: must be at least {minimum} bytes ({minimum >> 20} MiB), got {value!r}"
                         if minimum >= 1 << 20 else f"{source}: must be at least {minimum}, got {value!r}")
    return size


def producer_buffers(share: int) -> dict[str, int]:
    """librdkafka's buffer bounds for at most ``share`` bytes held: half for the values it copies, half for
    what it keeps per message besides (about 700 bytes: the message, its headers, the allocator's share)."""
    return {"queue.buffering.max.kbytes": max(64, share // 2 // 1024),
            "queue.buffering.max.messages": max(10, share // 2 // _RDKAFKA_MESSAGE_BYTES)}


@dataclass(frozen=True)
class MemoryPlan:
    """How a handler's ``memory_budget`` is shared: a quarter for the application queue, three eighths for its
    producer's buffer, an eighth for a batch of records being written to the spool (held twice: as lines and
    as records, in case the disk refuses them), an eighth each for the audit and security queue and their
    producer's buffer."""

    budget: int
    queue_size: int  # records the application queue holds (an explicit queue_size wins)
    queue_explicit: bool
    stream_queue_size: int  # records the audit and security queue holds
    producer: dict[str, int]  # librdkafka buffer settings of the application producer
    stream_producer: dict[str, int]  # and of the audit and security producer
    spool_batch: int  # bytes of lines a spool holds before it writes them

    @classmethod
    def of(cls, budget: int, queue_size: int | None) -> MemoryPlan:
        """The plan for ``budget`` bytes; ``queue_size`` given by the user, else None."""
        return cls(
            budget=budget,
            queue_size=queue_size if queue_size is not None else max(10, budget // 4 // QUEUED_RECORD_BYTES),
            queue_explicit=queue_size is not None,
            stream_queue_size=max(10, budget // 8 // QUEUED_RECORD_BYTES),
            producer=producer_buffers(budget * 3 // 8),
            stream_producer=producer_buffers(budget // 8),
            spool_batch=max(16 * 1024, budget // 16),
        )


def check_topic(name: str, value: Any) -> str:
    """A legal Kafka topic name, else ``ValueError`` naming the setting."""
    if not isinstance(value, str) or not _TOPIC_RE.match(value) or value in (".", ".."):
        raise ValueError(
            f"{name}: invalid Kafka topic name {value!r} "
            "(1 to 249 characters of A-Z a-z 0-9 . _ -, not '.' or '..')"
        )
    return value


def check_key(value: Any, setting: str = "key") -> str | None:
    """Validate the partition key setting (``setting``: the setting's name in messages)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{setting}: expected a record attribute name, got {value!r}")
    kind, _, name = value.partition(".")
    if kind in ("extra", "context") and name.isidentifier():
        return value
    if value in KEY_FIELDS:
        return value
    close = difflib.get_close_matches(value, KEY_FIELDS, n=1)
    likely = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(
        f"{setting}: unknown record attribute {value!r}{likely}; use one of {', '.join(sorted(KEY_FIELDS))}, "
        "or 'extra.<name>' / 'context.<name>' for your own attributes, or None for no key"
    )


#: Client settings whose values are functions: checked as callables, never called while validating.
_CALLBACKS = ("oauth_cb", "stats_cb", "throttle_cb", "logger")


def _client_error(exc: BaseException) -> str:
    if isinstance(exc, KafkaException) and exc.args and hasattr(exc.args[0], "str"):
        return str(exc.args[0].str())
    return str(exc.args[0] if exc.args else exc)


def _try_client(config: Mapping[str, Any]) -> str | None:
    """librdkafka's objection to ``config`` (a client built without connecting anywhere), or None."""
    try:
        Producer({**config, "log_level": 0})
    except (KafkaException, TypeError, ValueError) as exc:
        return _client_error(exc)
    return None


def validate_producer_config(config: Mapping[str, Any], user: Mapping[str, Any] | None = None) -> None:
    """Let librdkafka itself check every setting, without connecting anywhere or calling a callback.

    A bad value is reported under the name the user wrote (``acks``, not
    librdkafka's alias ``request.required.acks``); ``user`` holds those names.
    """
    for name, reason in _RESERVED_PRODUCER.items():
        if name in config:
            raise ValueError(f"producer_config: {name!r} cannot be set: {reason}")
    for name in _CALLBACKS:
        if name in config and not (callable(config[name]) or (name == "logger" and hasattr(config[name], "log"))):
            value = config[name]
            hint = (" (dictConfig resolves 'ext://' only in a handler's own arguments: pass the function itself, "
                    "or set it in code)") if isinstance(value, str) and value.startswith("ext://") else ""
            raise ValueError(f"producer_config[{name!r}]: expected a function, got {value!r}{hint}")
    probe = {k: v for k, v in config.items() if k not in ("bootstrap.servers", *_CALLBACKS)}
    text = _try_client(probe)
    if text is None:
        return
    mine = [k for k in (user if user is not None else config) if k in probe]
    culprit = next((k for k in mine if _try_client({k: probe[k]}) is not None), None)
    if culprit is None:
        hint = ""
        for k in mine:
            if "_" in k and "No such configuration property" in text and k in text:
                hint = f" (librdkafka names use dots: {k.replace('_', '.')!r}?)"
        raise ValueError(f"producer_config: {text}{hint}")
    if "No such configuration property" in text:
        hint = f" (librdkafka names use dots: {culprit.replace('_', '.')!r}?)" if "_" in culprit else ""
        raise ValueError(f"producer_config[{culprit!r}]: no such client setting{hint}")
    raise ValueError(f"producer_config[{culprit!r}]: invalid value {probe[culprit]!r} (librdkafka: {text})")


@dataclass(frozen=True)
class HandlerSettings:
    """The effective, validated settings of one ``KafkaLogHandler``."""

    enabled: bool
    bootstrap_servers: str
    topic: str
    queue_size: int
    flush_timeout: float
    key: str | None
    identity: dict[str, str]
    producer_config: dict[str, Any] = field(repr=False)
    spool_dir: str | None = None  # None: no spool
    spool_off: str | None = None  # why there is no spool although none was asked for
    spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES
    spool_fsync: str = "interval"
    durability: str = "memory"
    overflow: str = "spool"
    block_timeout: float = DEFAULT_BLOCK_TIMEOUT
    audit_topic: str = DEFAULT_AUDIT_TOPIC
    security_topic: str = DEFAULT_SECURITY_TOPIC
    namespace: str | None = None
    format: str = "flat"
    fields: str = "default"
    handle_sigterm: bool = False
    servers_defaulted: bool = False  # no address was set anywhere: DEFAULT_SERVERS
    memory: MemoryPlan | None = None  # how memory_budget is shared (None only for settings made by hand)
    stream_producer_config: dict[str, Any] = field(default_factory=dict, repr=False)  # audit and security

    def topic_of(self, stream: str) -> str:
        """The topic of a stream: ``application``, ``audit`` or ``security``."""
        return {"audit": self.audit_topic, "security": self.security_topic}.get(stream, self.topic)


def check_namespace(value: Any) -> str | None:
    """A namespace for topic names and event types (``omninode``), else ``ValueError``."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _NAMESPACE_RE.match(value) or len(value) > 200:
        raise ValueError(f"namespace: expected dot-separated words of A-Z a-z 0-9 _ -, got {value!r}")
    return value


def stream_topics(namespace: str | None, topic: str | None, audit_topic: str | None,
                  security_topic: str | None) -> tuple[str, str, str]:
    """The three topics: each argument, else its environment variable, else from the namespace, else the default."""
    out = []
    for stream, value, env, default in (
        ("application", topic, "LOGKAFKA_TOPIC", DEFAULT_TOPIC),
        ("audit", audit_topic, "LOGKAFKA_AUDIT_TOPIC", DEFAULT_AUDIT_TOPIC),
        ("security", security_topic, "LOGKAFKA_SECURITY_TOPIC", DEFAULT_SECURITY_TOPIC),
    ):
        name = "topic" if stream == "application" else f"{stream}_topic"
        if value is None:
            value = os.environ.get(env) or None
            if value is not None:
                name = env
        if value is None:
            value = f"{namespace}.logging.{stream}.v1" if namespace else default
        out.append(check_topic(name, value))
    return out[0], out[1], out[2]


def env_producer_config() -> dict[str, str]:
    """librdkafka settings from the environment: ``LOGKAFKA_PRODUCER_CONFIG_FILE`` (a file, as Kubernetes mounts
    a secret), then ``LOGKAFKA_PRODUCER_CONFIG`` over it; each a JSON object or ``key=value`` lines. A value
    ``@/path`` is read from that file (a mounted secret). ``ValueError`` naming the variable when malformed."""
    out: dict[str, str] = {}
    path = os.environ.get("LOGKAFKA_PRODUCER_CONFIG_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                out.update(_client_settings(f.read(), f"LOGKAFKA_PRODUCER_CONFIG_FILE ({path})"))
        except OSError as exc:
            raise ValueError(f"LOGKAFKA_PRODUCER_CONFIG_FILE: cannot read {path!r}: {exc.strerror or exc}") from None
    text = os.environ.get("LOGKAFKA_PRODUCER_CONFIG")
    if text:
        out.update(_client_settings(text, "LOGKAFKA_PRODUCER_CONFIG"))
    return out


def _client_settings(text: str, source: str) -> dict[str, str]:
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{source}: not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object of librdkafka settings")
        pairs = [(str(k), "true" if v is True else "false" if v is False else str(v)) for k, v in data.items()]
    else:
        pairs = []
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith(("#", "!")):
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"{source}: line {n}: expected key=value, got {line!r}")
            pairs.append((key.strip(), value.strip()))
    out = {}
    for key, value in pairs:
        if value.startswith("@"):
            try:
                with open(value[1:], encoding="utf-8") as f:
                    value = f.read().strip()
            except OSError as exc:
                raise ValueError(f"{source}: {key}: cannot read {value[1:]!r}: {exc.strerror or exc}") from None
        out[key] = value
    return out


def build_settings(
    *,
    bootstrap_servers: str | None,
    topic: str | None,
    producer_config: Mapping[str, Any] | None,
    queue_size: int | None,
    flush_timeout: float | None,
    key: str | None,
    identity: dict[str, str],
    enabled: bool | str | None,
    spool_dir: str | bool | None = None,
    spool_max_bytes: int | None = None,
    spool_fsync: str | None = None,
    durability: str | None = None,
    overflow: str | None = None,
    block_timeout: float | None = None,
    audit_topic: str | None = None,
    security_topic: str | None = None,
    namespace: str | None = None,
    format: str | None = None,
    fields: str | None = None,
    handle_sigterm: bool | str | None = None,
    memory_budget: int | str | None = None,
) -> HandlerSettings:
    """Merge arguments, environment and defaults; raise ``ValueError`` naming a bad setting."""
    on = env_bool("LOGKAFKA_ENABLED", enabled, True)
    ns = check_namespace(namespace if namespace is not None else os.environ.get("LOGKAFKA_NAMESPACE"))
    app_topic, audit, security = stream_topics(ns, topic, audit_topic, security_topic)
    if producer_config is not None and not isinstance(producer_config, Mapping):
        raise ValueError(f"producer_config: expected a mapping, got {type(producer_config).__name__}")
    user = {**env_producer_config(), **dict(producer_config or {})}  # the argument's keys win
    for k in user:
        if not isinstance(k, str):
            raise ValueError(f"producer_config: setting names must be strings, got {k!r}")
    if bootstrap_servers is None:
        servers = user.get("bootstrap.servers") or os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_SERVERS
    else:
        servers = bootstrap_servers
        if "bootstrap.servers" in user and user["bootstrap.servers"] != servers:
            raise ValueError(
                "bootstrap_servers: differs from producer_config['bootstrap.servers']; set only one"
            )
    if not isinstance(servers, str) or not servers.strip() or any(
        not s.strip() or ":" not in s for s in servers.split(",")
    ):
        raise ValueError(f"bootstrap_servers: expected 'host:port[,host:port...]', got {servers!r}")
    explicit_queue = queue_size if queue_size is not None else (os.environ.get("LOGKAFKA_QUEUE_SIZE") or None)
    memory = MemoryPlan.of(
        byte_size("memory_budget", "LOGKAFKA_MEMORY_BUDGET", memory_budget, DEFAULT_MEMORY_BUDGET,
                  _MIN_MEMORY_BUDGET),
        None if explicit_queue is None else _number("queue_size", "LOGKAFKA_QUEUE_SIZE", queue_size, 1, int))
    config = {**PRODUCER_DEFAULTS, **memory.producer, **user, "bootstrap.servers": servers.strip()}
    config.setdefault("client.id", f"logkafka-{identity['service']}")
    stream_config = {**config, **{k: v for k, v in memory.stream_producer.items() if k not in user}}
    spool, spool_off = check_spool_dir(spool_dir), None
    if on:
        validate_producer_config(config, user)
        spool, spool_off = usable_spool_dir(spool, spool_dir)
    return HandlerSettings(
        enabled=on,
        bootstrap_servers=config["bootstrap.servers"],
        topic=app_topic,
        audit_topic=audit,
        security_topic=security,
        namespace=ns,
        format=_choice("format", "LOGKAFKA_FORMAT", format, "flat", FORMATS),
        fields=_choice("fields", "LOGKAFKA_FIELDS", fields, "default", ("default", "ecs", "datadog", "otel")),
        queue_size=memory.queue_size,
        flush_timeout=_number("flush_timeout", "LOGKAFKA_FLUSH_TIMEOUT", flush_timeout, DEFAULT_FLUSH_TIMEOUT, float),
        key=env_key(key),
        identity=identity,
        producer_config=config,
        spool_dir=spool,
        spool_off=spool_off,
        spool_max_bytes=_number("spool_max_bytes", "LOGKAFKA_SPOOL_MAX_BYTES", spool_max_bytes,
                                DEFAULT_SPOOL_MAX_BYTES, int),
        spool_fsync=_choice("spool_fsync", "LOGKAFKA_SPOOL_FSYNC", spool_fsync, "interval",
                            ("always", "interval", "never")),
        durability=_choice("durability", "LOGKAFKA_DURABILITY", durability, "memory", DURABILITY_MODES),
        overflow=_choice("overflow", "LOGKAFKA_OVERFLOW", overflow, "spool", OVERFLOW_POLICIES),
        block_timeout=_number("block_timeout", "LOGKAFKA_BLOCK_TIMEOUT", block_timeout, DEFAULT_BLOCK_TIMEOUT, float),
        handle_sigterm=env_bool("LOGKAFKA_HANDLE_SIGTERM", handle_sigterm, False),
        servers_defaulted=bootstrap_servers is None and servers == DEFAULT_SERVERS
        and not user.get("bootstrap.servers") and not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
        memory=memory,
        stream_producer_config=stream_config,
    )


DEFAULT_KEY = "service"


def env_key(value: Any) -> str | None:
    """The partition key: the argument, else ``LOGKAFKA_KEY`` when the argument is left at its default
    (``none`` there for no key)."""
    env = os.environ.get("LOGKAFKA_KEY", "").strip()
    if value == DEFAULT_KEY and env:
        return None if env.lower() == "none" else check_key(env, "LOGKAFKA_KEY")
    return check_key(value)


def env_level(value: int | str) -> int:
    """The handler's level: the argument, else ``LOGKAFKA_LEVEL`` when the argument is left at NOTSET."""
    env = os.environ.get("LOGKAFKA_LEVEL", "").strip()
    level = level_of(value)
    if level == logging.NOTSET and env:
        return level_of(env, "LOGKAFKA_LEVEL")
    return level


def _choice(name: str, env: str, value: Any, default: str, allowed: tuple[str, ...]) -> str:
    source = name
    if value is None:
        value = os.environ.get(env) or default
        source = env if os.environ.get(env) else name
    if value not in allowed:
        raise ValueError(f"{source}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
    return str(value)


def check_spool_dir(value: Any) -> str | None:
    """The spool directory: the argument, else ``LOGKAFKA_SPOOL_DIR``, else a per-user default;
    ``False`` or ``""`` turns the spool off. The path is only checked, not tried (see ``usable_spool_dir``)."""
    from logkafka._spool import default_spool_dir

    if value is None:
        env = os.environ.get("LOGKAFKA_SPOOL_DIR")
        if env is not None:
            return None if env.strip().lower() in ("", *_FALSE) else env
        return default_spool_dir()
    if value is False or value == "":
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ValueError(f"spool_dir: expected a directory path, or False for no spool, got {value!r}")
    if os.path.exists(value) and not os.path.isdir(value):
        raise ValueError(f"spool_dir: {value!r} exists and is not a directory")
    return value


def spool_dir_problem(path: str) -> str | None:
    """Why records could not be written under ``path`` (created if missing), or None when they can.

    Tried for real (a directory made, a file written and removed): permissions,
    a read-only file system and a path under a regular file all show.
    """
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".logkafka-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"{exc.strerror or exc}" + (f": {exc.filename!r}" if exc.filename else "")
    return None


def usable_spool_dir(spool_dir: str | None, explicit: Any) -> tuple[str | None, str | None]:
    """(the spool directory to use, why the spool is off) for a checked ``spool_dir``.

    A directory the user chose (the argument or ``LOGKAFKA_SPOOL_DIR``) that
    cannot be written is a ``ValueError`` naming the setting; the per-user
    default that cannot (a read-only home, as in hardened containers) turns the
    spool off, said once: records then wait in memory only.
    """
    if spool_dir is None:
        return None, None
    problem = spool_dir_problem(spool_dir)
    if problem is None:
        return spool_dir, None
    if explicit is not None:
        raise ValueError(f"spool_dir: cannot write records under {spool_dir!r}: {problem} "
                         "(choose a writable directory, or spool_dir=False for no spool)")
    if os.environ.get("LOGKAFKA_SPOOL_DIR") is not None:
        raise ValueError(f"LOGKAFKA_SPOOL_DIR: cannot write records under {spool_dir!r}: {problem} "
                         "(choose a writable directory, or LOGKAFKA_SPOOL_DIR=false for no spool)")
    return None, f"the default spool directory {spool_dir!r} cannot be written ({problem})"


def level_of(value: int | str, name: str = "level") -> int:
    """A logging level from a number or a name (``name``: the setting's name in messages)."""
    if isinstance(value, int):
        return value
    text = str(value).strip().upper()
    if text.isdigit():
        return int(text)
    level = logging.getLevelName(text)
    if not isinstance(level, int):
        raise ValueError(f"{name}: unknown logging level {value!r} (DEBUG, INFO, WARNING, ERROR, CRITICAL or a number)")
    return level
