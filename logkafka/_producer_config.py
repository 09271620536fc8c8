"""The producer's librdkafka settings: our defaults, the user's (arguments and environment), checked."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from typing import Any

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
}

#: Client settings whose values are functions (for ``logger``, an object with ``log()``): given as names in
#: configuration files, imported; checked as callables, never called while validating. ``error_cb`` is called
#: after logkafka's own.
_CALLBACKS = ("oauth_cb", "stats_cb", "throttle_cb", "error_cb", "logger")


def user_config(producer_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The user's client settings: the environment's (:func:`env_producer_config`), then the argument's."""
    if producer_config is not None and not isinstance(producer_config, Mapping):
        raise ValueError(f"producer_config: expected a mapping, got {type(producer_config).__name__}")
    user = {**env_producer_config(), **dict(producer_config or {})}  # the argument's keys win
    for k in user:
        if not isinstance(k, str):
            raise ValueError(f"producer_config: setting names must be strings, got {k!r}")
    for name in _CALLBACKS:  # from dictConfig, YAML or the environment, functions come as names
        if isinstance(user.get(name), str):
            user[name] = resolve_object(f"producer_config[{name!r}]", user[name])
    return user


def resolve_object(setting: str, ref: str) -> Any:
    """The object ``ref`` names: ``ext://package.module.name`` (as dictConfig writes it), or
    ``package.module:name``; a ``ValueError`` naming ``setting`` when it cannot be found."""
    path = ref.strip().removeprefix("ext://")
    module, sep, attrs = path.partition(":")
    parts = path.split(".") if not sep else [module, *attrs.split(".")]
    if len(parts) < 2 or not all(p.isidentifier() for part in parts for p in part.split(".")):
        raise ValueError(f"{setting}: expected a function named 'ext://package.module.function' or "
                         f"'package.module:function', got {ref!r}")
    done = parts[0]
    try:
        found: Any = importlib.import_module(done)
        for part in parts[1:]:
            done = f"{done}.{part}"
            if not sep and not hasattr(found, part):  # a submodule not imported yet
                try:
                    importlib.import_module(done)
                except ModuleNotFoundError as exc:
                    if exc.name != done:  # the submodule's own import failed
                        raise
            found = getattr(found, part)
    except ImportError as exc:
        raise ValueError(f"{setting}: cannot import {ref!r}: {exc}") from None
    except AttributeError:
        raise ValueError(f"{setting}: no {done!r} (from {ref!r})") from None
    return found


def bootstrap_servers_of(bootstrap_servers: str | None, user: Mapping[str, Any]) -> str:
    """The broker addresses: the argument, else the user's ``bootstrap.servers``, else
    ``KAFKA_BOOTSTRAP_SERVERS``, else :data:`DEFAULT_SERVERS`; checked."""
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
    return servers


def _client_error(exc: BaseException) -> str:
    from confluent_kafka import KafkaException  # loaded by the first handler, not by importing logkafka

    if isinstance(exc, KafkaException) and exc.args and hasattr(exc.args[0], "str"):
        return str(exc.args[0].str())
    return str(exc.args[0] if exc.args else exc)


def _try_client(config: Mapping[str, Any]) -> str | None:
    """librdkafka's objection to ``config`` (a client built without connecting anywhere), or None."""
    from confluent_kafka import KafkaException, Producer

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
            raise ValueError(f"producer_config[{name!r}]: expected a function, got {config[name]!r}")
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


def settings_text(text: str, source: str) -> list[tuple[str, str]]:
    """librdkafka settings written as a JSON object or as ``key=value`` lines (a properties file; ``#`` and
    ``!`` start comments), as (name, text) pairs; a ``ValueError`` starting with ``source`` when malformed."""
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{source}: not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object of librdkafka settings")
        return [(str(k), _setting_text(v)) for k, v in data.items()]
    pairs = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{source}: line {n}: expected key=value, got {line!r}")
        pairs.append((key.strip(), value.strip()))
    return pairs


def _setting_text(value: Any) -> str:
    """A JSON value as librdkafka wants it: text (``true``/``false`` for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _client_settings(text: str, source: str) -> dict[str, str]:
    """:func:`settings_text`, where a value ``@/path`` is the content of that file (a mounted secret)."""
    pairs = settings_text(text, source)
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
