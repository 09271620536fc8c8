"""How the ``logkafka`` subcommands reach a cluster: the connection options, client config files, clients.

Every subcommand shares the connection options: ``--bootstrap-servers`` (default
``KAFKA_BOOTSTRAP_SERVERS``) and ``--producer-config`` / ``--consumer-config`` for TLS and SASL settings.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any

from logkafka._cli.common import EXIT_USAGE, CliError, kafka_text, unreachable
from logkafka._producer_config import settings_text

#: Parts of a setting's name that mark its value secret (``ssl.key.password``, ``basic.auth.user.info``,
#: ``sasl.jaas.config``, ``ssl.key.pem``, ``private_key``...).
_SECRET_WORDS = ("password", "secret", "token", "credential", "user.info", "jaas", "key.pem", "private")
#: The ``sasl.*`` settings whose values may be shown; every other ``sasl.*`` value is masked
#: (``sasl.oauthbearer.config`` may hold ``clientSecret=...``, and new settings appear).
_PUBLIC_SASL = frozenset({"sasl.mechanism", "sasl.mechanisms", "sasl.username", "sasl.kerberos.service.name",
                          "sasl.kerberos.principal"})


def is_secret_setting(name: str) -> bool:
    """Whether a client setting's value must not be printed (passwords, keys, tokens, SASL secrets)."""
    lowered = name.lower().replace("_", ".")
    if lowered.startswith("sasl.") and lowered not in _PUBLIC_SASL:
        return True
    return any(w in lowered for w in _SECRET_WORDS)


def masked(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with every secret value replaced by ``"***"``."""
    return {k: ("***" if is_secret_setting(k) and v is not None and v != "" else v) for k, v in config.items()}


def load_client_config(path: str, option: str) -> dict[str, str]:
    """Read librdkafka settings from ``path``: a JSON object, or ``key=value`` lines (a properties file).

    Raises :class:`CliError` naming ``option`` when the file is missing or malformed.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise CliError(f"{option}: cannot read {path!r}: {exc.strerror or exc}", EXIT_USAGE) from None
    try:
        return dict(settings_text(text, f"{option}: {path!r}"))
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def bootstrap_servers(args: argparse.Namespace) -> str:
    """``--bootstrap-servers``, else ``KAFKA_BOOTSTRAP_SERVERS``, else the config files' ``bootstrap.servers``;
    without any, a :class:`CliError`."""
    servers = given_servers(args)
    if not servers:
        raise CliError("no Kafka cluster given: pass --bootstrap-servers or set KAFKA_BOOTSTRAP_SERVERS", EXIT_USAGE)
    return servers


def given_servers(args: argparse.Namespace) -> str | None:
    """``--bootstrap-servers``, else ``KAFKA_BOOTSTRAP_SERVERS``, else the config files' ``bootstrap.servers``;
    None without any."""
    servers = (args.bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "").strip() or None
    if not servers:
        for option in ("producer_config", "consumer_config"):
            path = getattr(args, option, None)
            if path:
                servers = load_client_config(path, "--" + option.replace("_", "-")).get("bootstrap.servers")
                servers = servers.strip() if servers else None
                if servers:
                    break
    return servers


def client_config(args: argparse.Namespace, kind: str, servers: str | None = None) -> dict[str, Any]:
    """The librdkafka settings for a ``"producer"`` or ``"consumer"``: the file's, then the bootstrap servers."""
    path = getattr(args, f"{kind}_config", None)
    config: dict[str, Any] = load_client_config(path, f"--{kind}-config") if path else {}
    config["bootstrap.servers"] = servers or bootstrap_servers(args)
    return config


#: Settings of one kind of client only: left out where the settings serve another kind.
_PRODUCER_ONLY = ("linger", "batch", "compression", "acks", "enable.idempotence", "queue.buffering", "message.",
                  "delivery.", "retries", "retry.", "request.required.acks", "request.timeout.ms", "partitioner",
                  "sticky", "transaction", "enable.gapless", "dr_", "on_delivery", "sticky.partitioning")
_CONSUMER_ONLY = ("group.", "auto.offset", "enable.auto", "auto.commit", "session.timeout", "heartbeat",
                  "max.poll", "fetch.", "partition.assignment", "isolation.level", "enable.partition.eof",
                  "check.crcs", "queued.", "consume.", "allow.auto.create", "coordinator.", "on_commit",
                  "offset.store")


def producer_config(args: argparse.Namespace, servers: str | None = None) -> dict[str, Any]:
    """Settings for a producer: ``--producer-config``; without it, the connection settings of
    ``--consumer-config`` (those :func:`admin_config` keeps)."""
    if getattr(args, "producer_config", None):
        return client_config(args, "producer", servers)
    return admin_config(args, servers)


def connection_option(args: argparse.Namespace) -> str | None:
    """Which file gives the connection (TLS, SASL) settings of admin operations: ``--producer-config`` if
    given, else ``--consumer-config``; None without either."""
    if getattr(args, "producer_config", None):
        return "--producer-config"
    if getattr(args, "consumer_config", None):
        return "--consumer-config"
    return None


def admin_config(args: argparse.Namespace, servers: str | None = None) -> dict[str, Any]:
    """Settings for an admin client: the security and connection settings of ``--producer-config``, else of
    ``--consumer-config`` (so one file with the SASL settings is enough), without client-specific keys."""
    option = connection_option(args)
    kind = "consumer" if option == "--consumer-config" else "producer"
    config = client_config(args, kind, servers)
    for key in list(config):
        if key.startswith(_PRODUCER_ONLY + _CONSUMER_ONLY):
            del config[key]
    return config


# -- clients --------------------------------------------------------------------------------

def new_admin(config: Mapping[str, Any], option: str | None) -> Any:
    """An ``AdminClient``; settings librdkafka refuses are a :class:`CliError` naming ``option``."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    try:
        return AdminClient({**config, "log_level": 0})
    except (KafkaException, TypeError, ValueError) as exc:
        raise CliError(f"{option or 'the client settings'}: {kafka_text(exc)}", EXIT_USAGE) from None


def new_consumer(config: Mapping[str, Any]) -> Any:
    """A ``Consumer``; a setting librdkafka refuses is a :class:`CliError` naming ``--consumer-config``."""
    from confluent_kafka import Consumer, KafkaException

    try:
        return Consumer(dict(config))
    except (KafkaException, TypeError, ValueError) as exc:
        raise CliError(f"--consumer-config: {kafka_text(exc)}", EXIT_USAGE) from None


def list_topics(client: Any, servers: str, timeout: float) -> Any:
    """The cluster's metadata, of all topics (asking for one may auto-create it); a cluster that does not
    answer within ``timeout`` seconds is a :class:`CliError`."""
    from confluent_kafka import KafkaException

    try:
        return client.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise unreachable(servers, kafka_text(exc)) from None


def check_reachable(config: Mapping[str, Any], timeout: float = 10.0, option: str | None = None) -> None:
    """Ask the cluster for its metadata; raise :class:`CliError` when it does not answer in ``timeout`` s.

    Settings librdkafka refuses are an error naming ``option`` (the file they came from).
    """
    admin = new_admin(config, option or "the client settings were refused")
    list_topics(admin, str(config.get("bootstrap.servers")), timeout)


def connection_options() -> argparse.ArgumentParser:
    """The options every subcommand takes."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection")
    group.add_argument("--bootstrap-servers", "-b", metavar="HOST:PORT[,...]",
                       help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS)")
    group.add_argument("--producer-config", metavar="FILE",
                       help="librdkafka producer settings (TLS, SASL, ...): a JSON object or key=value lines; "
                            "also used to create topics and to query the cluster")
    group.add_argument("--consumer-config", metavar="FILE",
                       help="librdkafka consumer settings (TLS, SASL, ...): a JSON object or key=value lines; "
                            "without --producer-config, its connection settings serve topic creation, "
                            "cluster queries and sending too")
    return common
