"""Handler settings: constructor arguments and environment variables, validated loudly."""

from __future__ import annotations

import difflib
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from logkafka._headers import StaticHeaders, static_headers
from logkafka._memory import MemoryPlan
from logkafka._producer_config import (
    DEFAULT_SERVERS,
    PRODUCER_DEFAULTS,
    bootstrap_servers_of,
    user_config,
    validate_producer_config,
)
from logkafka._record import CORE_FIELDS
from logkafka._spool import default_spool_dir
from logkafka._values import FALSE_WORDS, choice, env_bool, positive

DEFAULT_TOPIC = "logs.application.v1"
DEFAULT_AUDIT_TOPIC = "logs.audit.v1"
DEFAULT_SECURITY_TOPIC = "logs.security.v1"
FORMATS = ("flat", "envelope")
_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
DEFAULT_FLUSH_TIMEOUT = 10.0
DEFAULT_SPOOL_MAX_BYTES = 1 << 30  # 1 GiB per destination
DEFAULT_BLOCK_TIMEOUT = 1.0
OVERFLOW_POLICIES = ("spool", "drop_newest", "drop_oldest", "block")
DURABILITY_MODES = ("memory", "disk")
_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")

#: Record attributes a ``key`` may name, besides the ``extra.<name>`` / ``context.<name>`` forms.
KEY_FIELDS = frozenset(CORE_FIELDS | {
    "code", "event_id", "correlation_id", "request_id", "tenant_id", "user_id", "session_id",
    "name", "levelname", "funcName", "lineno", "pathname", "filename", "processName", "threadName",
}) - {"message", "error", "stack_info", "timestamp"}


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
    headers: StaticHeaders = ()  # the user's Kafka headers for every record
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
    encoding: str = "json"  # "json", or an OpenTelemetry encoding: "otlp_json", "otlp_proto"
    handle_sigterm: bool = False
    servers_defaulted: bool = False  # no address was set anywhere: DEFAULT_SERVERS
    memory: MemoryPlan | None = None  # how memory_budget is shared (None only for settings made by hand)
    stream_producer_config: dict[str, Any] = field(default_factory=dict, repr=False)  # audit and security
    audit_chain_key: bytes | None = field(default=None, repr=False)  # HMAC key of the audit/security chains

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


class StreamTopics(NamedTuple):
    """The topic of each stream."""

    application: str
    audit: str
    security: str


def stream_topics(namespace: str | None, topic: str | None, audit_topic: str | None,
                  security_topic: str | None) -> StreamTopics:
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
    return StreamTopics(*out)


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
    audit_chain_key: str | bytes | None = None,
    headers: Any = None,
    encoding: str | None = None,
) -> HandlerSettings:
    """Merge arguments, environment and defaults; raise ``ValueError`` naming a bad setting."""
    on = env_bool("LOGKAFKA_ENABLED", enabled, True)
    ns = check_namespace(namespace if namespace is not None else os.environ.get("LOGKAFKA_NAMESPACE"))
    app_topic, audit, security = stream_topics(ns, topic, audit_topic, security_topic)
    user = user_config(producer_config)
    servers = bootstrap_servers_of(bootstrap_servers, user)
    memory = MemoryPlan.from_settings(memory_budget, queue_size)
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
        format=(fmt := choice("format", "LOGKAFKA_FORMAT", format, "flat", FORMATS)),
        encoding=encoding_of(encoding, fmt),
        fields=choice("fields", "LOGKAFKA_FIELDS", fields, "default", ("default", "ecs", "datadog", "otel")),
        queue_size=memory.queue_size,
        flush_timeout=positive("flush_timeout", "LOGKAFKA_FLUSH_TIMEOUT", flush_timeout, DEFAULT_FLUSH_TIMEOUT, float),
        key=env_key(key),
        identity=identity,
        producer_config=config,
        spool_dir=spool,
        spool_off=spool_off,
        spool_max_bytes=positive("spool_max_bytes", "LOGKAFKA_SPOOL_MAX_BYTES", spool_max_bytes,
                                 DEFAULT_SPOOL_MAX_BYTES, int),
        spool_fsync=choice("spool_fsync", "LOGKAFKA_SPOOL_FSYNC", spool_fsync, "interval",
                           ("always", "interval", "never")),
        durability=choice("durability", "LOGKAFKA_DURABILITY", durability, "memory", DURABILITY_MODES),
        overflow=choice("overflow", "LOGKAFKA_OVERFLOW", overflow, "spool", OVERFLOW_POLICIES),
        block_timeout=positive("block_timeout", "LOGKAFKA_BLOCK_TIMEOUT", block_timeout, DEFAULT_BLOCK_TIMEOUT, float),
        handle_sigterm=env_bool("LOGKAFKA_HANDLE_SIGTERM", handle_sigterm, False),
        servers_defaulted=bootstrap_servers is None and servers == DEFAULT_SERVERS
        and not user.get("bootstrap.servers") and not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
        memory=memory,
        stream_producer_config=stream_config,
        audit_chain_key=chain_key(audit_chain_key),
        headers=static_headers(headers),
    )


def encoding_of(value: str | None, fmt: str) -> str:
    """The ``encoding`` setting (else ``LOGKAFKA_ENCODING``), checked against the record ``format``."""
    encoding = choice("encoding", "LOGKAFKA_ENCODING", value, "json", ("json", "otlp_json", "otlp_proto"))
    if encoding != "json" and fmt == "envelope":
        raise ValueError(f"encoding: {encoding!r} cannot be combined with format='envelope' (the envelope wraps "
                         "JSON records; an OTLP message has its own resource and attributes)")
    return encoding


def chain_key(value: str | bytes | None) -> bytes | None:
    """The HMAC key of the audit and security chains: the argument, else ``LOGKAFKA_AUDIT_CHAIN_KEY``;
    ``@/path`` reads it from a file (a mounted secret). At least 16 bytes; None: plain SHA-256 chains."""
    name = "audit_chain_key"
    if value is None:
        value, name = os.environ.get("LOGKAFKA_AUDIT_CHAIN_KEY") or None, "LOGKAFKA_AUDIT_CHAIN_KEY"
    if value is None:
        return None
    if isinstance(value, str) and value.startswith("@"):
        try:
            with open(value[1:], "rb") as f:
                value = f.read().strip()
        except OSError as exc:
            raise ValueError(f"{name}: cannot read {value[1:]!r}: {exc.strerror or exc}") from None
    key = value.encode() if isinstance(value, str) else value
    if not isinstance(key, bytes) or len(key) < 16:
        raise ValueError(f"{name}: expected a secret of at least 16 bytes (or @/path/to/a/file holding one)")
    return key


DEFAULT_KEY = "service"


def env_key(value: Any) -> str | None:
    """The partition key: the argument, else ``LOGKAFKA_KEY`` when the argument is left at its default
    (``none`` there for no key)."""
    env = os.environ.get("LOGKAFKA_KEY", "").strip()
    if value == DEFAULT_KEY and env:
        return None if env.lower() == "none" else check_key(env, "LOGKAFKA_KEY")
    return check_key(value)


def check_spool_dir(value: Any) -> str | None:
    """The spool directory: the argument, else ``LOGKAFKA_SPOOL_DIR``, else a per-user default;
    ``False`` or ``""`` turns the spool off. The path is only checked, not tried (see ``usable_spool_dir``)."""
    if value is None:
        env = os.environ.get("LOGKAFKA_SPOOL_DIR")
        if env is not None:
            return None if env.strip().lower() in ("", *FALSE_WORDS) else env
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
