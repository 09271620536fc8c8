"""The ``logkafka`` command: read logs back, check a configuration, set up topics.

Subcommands are registered by their modules (``_cli_tail``: tail, demo, broker;
``_cli_admin``: check, topics, replay). Every subcommand shares the connection
options below: ``--bootstrap-servers`` (default ``KAFKA_BOOTSTRAP_SERVERS``) and
``--producer-config`` / ``--consumer-config`` for TLS and SASL settings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

#: Exit status for a usage or configuration error, and for an unreachable broker.
EXIT_USAGE = 2
EXIT_FAILURE = 1


class CliError(Exception):
    """A failure to report as one clear line on stderr, then exit with ``status``."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


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
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CliError(f"{option}: {path!r} is not valid JSON: {exc}", EXIT_USAGE) from None
        if not isinstance(data, dict):
            raise CliError(f"{option}: {path!r} must hold a JSON object of settings", EXIT_USAGE)
        return {str(k): _setting_text(v) for k, v in data.items()}
    out: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise CliError(f"{option}: {path}:{n}: expected key=value, got {line!r}", EXIT_USAGE)
        out[key.strip()] = value.strip()
    return out


def _setting_text(value: Any) -> str:
    """A JSON value as librdkafka wants it: text (``true``/``false`` for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def bootstrap_servers(args: argparse.Namespace, *, required: bool = True) -> str | None:
    """``--bootstrap-servers``, else ``KAFKA_BOOTSTRAP_SERVERS``, else the config files' ``bootstrap.servers``."""
    servers = (args.bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "").strip() or None
    if not servers:
        for option in ("producer_config", "consumer_config"):
            path = getattr(args, option, None)
            if path:
                servers = load_client_config(path, "--" + option.replace("_", "-")).get("bootstrap.servers")
                servers = servers.strip() if servers else None
                if servers:
                    break
    if required and not servers:
        raise CliError("no Kafka cluster given: pass --bootstrap-servers or set KAFKA_BOOTSTRAP_SERVERS", EXIT_USAGE)
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


def cause_chain(exc: BaseException) -> str:
    """``Unable to configure handler 'kafka': producer_config: ...``: an exception and its causes, one line."""
    parts: list[str] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = str(cur) or type(cur).__name__
        if not parts or text not in parts[-1]:
            parts.append(text)
        cur = cur.__cause__ or cur.__context__
    return ": ".join(parts)


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


def new_admin(config: Mapping[str, Any], option: str | None) -> Any:
    """An ``AdminClient``; settings librdkafka refuses are a :class:`CliError` naming ``option``."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    try:
        return AdminClient({**config, "log_level": 0})
    except (KafkaException, TypeError, ValueError) as exc:
        raise CliError(f"{option or 'the client settings'}: {kafka_text(exc)}", EXIT_USAGE) from None


def unreachable(servers: str, detail: object) -> CliError:
    """The error for a cluster that does not answer."""
    return CliError(f"cannot reach Kafka at {servers}: {detail}", EXIT_USAGE)


def check_reachable(config: Mapping[str, Any], timeout: float = 10.0, option: str | None = None) -> None:
    """Ask the cluster for its metadata; raise :class:`CliError` when it does not answer in ``timeout`` s.

    Settings librdkafka refuses are an error naming ``option`` (the file they came from).
    """
    from confluent_kafka import KafkaException

    servers = str(config.get("bootstrap.servers"))
    admin = new_admin(config, option or "the client settings were refused")
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise unreachable(servers, kafka_text(exc)) from None


def kafka_text(exc: BaseException) -> str:
    """The message of a confluent-kafka exception (its KafkaError's text), else ``str(exc)``."""
    err = exc.args[0] if exc.args else None
    text = getattr(err, "str", None)
    return str(text()) if callable(text) else str(exc)


def positive_int(text: str) -> int:
    """An argument type: an integer above 0."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def seconds(text: str) -> float:
    """An argument type: a number of seconds above 0."""
    try:
        n = float(text)
    except ValueError:
        n = 0.0
    if not n > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return n


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


Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]", argparse.ArgumentParser], None]


def build_parser() -> argparse.ArgumentParser:
    """The ``logkafka`` argument parser with every subcommand."""
    from logkafka import __version__, _cli_admin, _cli_tail

    parser = argparse.ArgumentParser(
        prog="logkafka",
        description="Read logs back from Kafka, check a logging configuration, set up topics, "
                    "replay a spool, run a local broker or the demo.",
    )
    parser.add_argument("--version", action="version", version=f"logkafka {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = connection_options()
    registrations: Sequence[Register] = (_cli_tail.register, _cli_admin.register)
    for register in registrations:
        register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``logkafka`` console script; returns the exit status.

    Every failure is one line on stderr (``logkafka <command>: error: ...``), never a
    traceback, unless ``LOGKAFKA_DEBUG=1``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except CliError as exc:
        print(f"logkafka {args.command}: error: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:  # `logkafka tail | head`
        try:
            sys.stdout = open(os.devnull, "w")  # silence the interpreter's final flush
        except OSError:
            pass
        return 0
    except Exception as exc:  # a failure without its own message: one line, the traceback on demand
        if os.environ.get("LOGKAFKA_DEBUG", "").strip() == "1":
            traceback.print_exc()
        detail = " ".join(kafka_text(exc).split()) or "(no message)"
        print(f"logkafka {args.command}: error: {type(exc).__name__}: {detail}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
