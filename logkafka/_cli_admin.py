"""``logkafka check``, ``logkafka topics ensure`` and ``logkafka replay``.

``check CONFIG``
    Loads a ``logging.config.dictConfig`` from a JSON, YAML or Python file (or a
    module's ``LOGGING``), builds it, and for every ``KafkaLogHandler`` in it prints
    the effective settings (secrets masked), connects to its cluster, sends a probe
    record through the handler and reads it back. The probe goes to a topic of its
    own, ``<application topic>.check`` (created if missing), never to the
    application's topic unless ``--probe-topic`` names it. The configuration is
    linted for what loses records or their context without a word (``logkafka._cli.lint``);
    ``--strict`` makes a warning fail the check (exit 3).

    Servers follow the handler's own rule: a ``bootstrap_servers`` (or
    ``producer_config["bootstrap.servers"]``) in the file wins; otherwise
    ``--bootstrap-servers``, else ``KAFKA_BOOTSTRAP_SERVERS``, else ``localhost:9092``.
    ``--bootstrap-servers`` therefore never overrides a file that names its cluster:
    it is exported as ``KAFKA_BOOTSTRAP_SERVERS`` before the configuration is built.

``topics ensure``
    Creates the application, audit and security topics that do not exist yet, with
    partitions and retention; existing topics are reported, never changed.

``replay [SPOOL_DIR]``
    Sends the records of a disk spool now and deletes each segment once every one of
    its records is acknowledged. Before a segment is given back, every one of its
    records has a definite delivery report (what is still queued locally is purged,
    what is in flight is awaited), and the acknowledged ones are removed from it: a
    later replay never sends them again, also after Ctrl-C. A record the cluster
    refuses for good (too large, unknown topic, not authorised) stays in the spool and
    is reported; the other segments are still sent. Only a cluster that stops
    answering ends the run. The spool records only a hash of the cluster address it
    was written for, so records go to the cluster given by ``--bootstrap-servers``
    (or ``KAFKA_BOOTSTRAP_SERVERS``); a mismatch with that hash is reported.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import importlib
import json
import logging
import logging.config
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, NamedTuple

from logkafka._cli.common import EXIT_FAILURE, EXIT_USAGE, CliError, cause_chain, positive_int, seconds, unreachable
from logkafka._cli.connection import (
    admin_config,
    bootstrap_servers,
    check_reachable,
    connection_option,
    load_client_config,
    masked,
    new_admin,
    producer_config,
)
from logkafka._topics import Status, TopicSpec, create_topics, wait_for_partitions, wait_for_topics

#: Logger name of the probe record: not ``logkafka...``, whose records a handler drops.
PROBE_LOGGER = "lkcheck"
PROBE_CODE = "LOGKAFKA_CHECK"
#: The probe's own topic is the application topic's name with this suffix.
PROBE_SUFFIX = ".check"
#: Retention of a probe topic the check creates: one day.
PROBE_RETENTION_MS = 86_400_000
#: Exit status of ``check --strict`` when the probes passed but there are warnings.
EXIT_WARNINGS = 3
#: Client settings a consumer needs to reach the same cluster as a handler's producer.
_SECURITY_PREFIXES = ("security.protocol", "ssl.", "ssl_", "sasl.", "enable.ssl", "enable.sasl", "oauthbearer",
                      "oauth_cb", "broker.address", "client.dns", "socket.", "api.version", "broker.version",
                      "client.rack", "resolve_cb", "bootstrap.servers")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add ``check``, ``topics`` (``topics ensure``) and ``replay`` to ``sub``."""
    p = sub.add_parser(
        "check", parents=[common], help="check a logging configuration end to end",
        description="Load a logging dictConfig (JSON, YAML, a Python file's LOGGING, or module.path[:ATTR]), "
                    "build it, and for every KafkaLogHandler in it: print its effective settings (secrets "
                    "masked), connect to its cluster, send a probe record through the handler and read it back. "
                    f"The probe goes to a topic of its own, <application topic>{PROBE_SUFFIX} (created if "
                    "missing: 1 partition, kept 1 day), never to the application topic; --probe-topic sends it "
                    "to a topic that exists, e.g. the application topic itself. "
                    "The configuration is also linted for what loses records, or their context, without a word: "
                    "loggers dictConfig disables, logger and handler levels that keep INFO records from Kafka, "
                    "\"propagate\": false above no KafkaLogHandler, a QueueHandler or MemoryHandler in front of "
                    "one, handler and formatter naming different services, a spool directory that cannot be "
                    "written, ext:// left inside producer_config. Each warning names the logger or handler, the "
                    "fix, and its code for --ignore. "
                    "The file's own bootstrap servers win; --bootstrap-servers / KAFKA_BOOTSTRAP_SERVERS apply "
                    "to handlers that name none (as in the application). The probe is read back with the "
                    "handler's security settings plus --consumer-config; --producer-config is not used: the "
                    "handler's own producer_config is what is checked.",
        epilog="Exit status: 0 when every probe came back (warnings are printed but pass, unless --strict); "
               "1 when a probe was not delivered or read back, or a handler is disabled; 2 when the "
               "configuration cannot be loaded or built, an option is wrong, or the cluster cannot be reached "
               "or refuses the probe topic; 3 with --strict when the probes passed (or --no-probe) but there "
               "are warnings.",
    )
    p.add_argument("config", metavar="CONFIG",
                   help="a .json, .yaml/.yml or .py file, or module.path / module.path:ATTR (default ATTR: LOGGING)")
    p.add_argument("--timeout", type=seconds, default=30.0, metavar="SECONDS",
                   help="how long to wait for the probe to come back (default: 30)")
    p.add_argument("--strict", action="store_true", help="fail (exit 3) when there is any warning")
    p.add_argument("--ignore", action="append", default=[], type=_ignore_spec, metavar="CODE[:NAME]",
                   help="do not report warnings with this code (shown in brackets), or only the one about the "
                        "logger, handler or formatter NAME; may be repeated. Codes: " + ", ".join(_lint_codes()))
    p.add_argument("--no-probe", action="store_true",
                   help="connect to nothing: print the settings and the warnings only (for CI without a cluster)")
    p.add_argument("--probe-topic", type=_topic_arg, metavar="TOPIC",
                   help=f"send the probe to TOPIC, which must exist (default: <application topic>{PROBE_SUFFIX}, "
                        "created if missing); naming the application topic puts a probe record among the "
                        "application's records")
    p.set_defaults(run=run_check)

    topics = sub.add_parser("topics", help="set up the log topics",
                            description="Manage the application, audit and security topics.")
    tsub = topics.add_subparsers(dest="topics_command", metavar="ACTION", required=True)
    e = tsub.add_parser(
        "ensure", parents=[common], help="create the three log topics if missing, and report them",
        description="Create the application, audit and security topics that do not exist yet, with the given "
                    "partitions and retention; existing topics are reported (with any difference from what was "
                    "asked), never changed. Topic names as the handler makes them: --namespace (default "
                    "$LOGKAFKA_NAMESPACE), LOGKAFKA_TOPIC / LOGKAFKA_AUDIT_TOPIC / LOGKAFKA_SECURITY_TOPIC, "
                    "else logs.<stream>.v1. Durations: milliseconds, or a number with ms, s, m, h, d or w; "
                    "-1 or 'unlimited' for no time limit. The admin requests use --producer-config, else "
                    "--consumer-config (one file with the TLS / SASL settings is enough).",
    )
    e.add_argument("--namespace", metavar="NS", help="topic namespace: NS.logging.<stream>.v1")
    e.add_argument("--topic", metavar="NAME", help="application topic name")
    e.add_argument("--audit-topic", metavar="NAME", help="audit topic name")
    e.add_argument("--security-topic", metavar="NAME", help="security topic name")
    e.add_argument("--partitions", type=positive_int, default=6, metavar="N",
                   help="partitions of each new topic (default: 6)")
    e.add_argument("--replication-factor", type=_replication, default=-1, metavar="N",
                   help="replicas of each new topic (default: the broker's default)")
    for stream, default in RETENTION_DEFAULTS.items():
        e.add_argument(f"--retention-{stream}", type=parse_duration_arg, default=None, metavar="DURATION",
                       help=f"retention of the {stream} topic (default: {format_duration(default)})")
    e.add_argument("--timeout", type=seconds, default=30.0, metavar="SECONDS",
                   help="how long to wait for the cluster (default: 30)")
    e.set_defaults(run=run_topics_ensure)

    r = sub.add_parser(
        "replay", parents=[common], help="send a disk spool's records now",
        description="Send the records waiting in a spool directory to Kafka now, each to its topic with its "
                    "key, timestamp and headers. A segment is deleted once all its records are acknowledged; "
                    "otherwise the acknowledged ones are removed from it before the command goes on or ends "
                    "(Ctrl-C included), so a later replay does not send them again. Records whose delivery "
                    "cannot be confirmed (a second Ctrl-C while they are in flight) stay and may arrive twice; "
                    "consumers drop duplicates by event_id. Segments held by a running handler are skipped. "
                    "Records the cluster refuses for good (too large, unknown topic, not authorised) stay in the "
                    "spool and are reported, and the other segments are still sent; a cluster that stops "
                    "answering ends the run. Exit status: 0 when everything was sent, 1 when records remain, "
                    "2 when the cluster cannot be reached, 130 on Ctrl-C. The records go to the cluster of "
                    "--bootstrap-servers / KAFKA_BOOTSTRAP_SERVERS (the spool keeps only a hash of the address "
                    "it was written for; a mismatch is reported). Sending uses --producer-config, else the "
                    "connection settings of --consumer-config.",
    )
    r.add_argument("spool_dir", nargs="?", metavar="SPOOL_DIR",
                   help="the spool directory, or one destination directory in it "
                        "(default: $LOGKAFKA_SPOOL_DIR, else the handler's default)")
    r.add_argument("--dry-run", action="store_true", help="count the records, send nothing")
    r.add_argument("--timeout", type=seconds, default=60.0, metavar="SECONDS",
                   help="how long to send a segment and wait for its acknowledgements (default: 60; also the "
                        "default message.timeout.ms); then what is not sent yet stays in the spool, and what is in "
                        "flight gets its delivery report first")
    r.set_defaults(run=run_replay)


# -- argument types -----------------------------------------------------------------------------
def _lint_codes() -> list[str]:
    from logkafka._cli.lint import CODES

    return list(CODES)


def _ignore_spec(text: str) -> str:
    code = text.partition(":")[0]
    if code not in _lint_codes():
        raise argparse.ArgumentTypeError(f"unknown warning code {code!r}; the codes are: {', '.join(_lint_codes())}")
    return text


def _topic_arg(text: str) -> str:
    from logkafka._settings import check_topic

    try:
        return check_topic("topic", text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None



def _replication(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or -1, got {text!r}") from None
    if n == 0 or n < -1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or -1, got {text!r}")
    return n




_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$", re.IGNORECASE)
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_UNLIMITED = ("-1", "unlimited", "infinite", "forever", "none")
RETENTION_DEFAULTS = {"application": 7 * 86_400_000, "audit": -1, "security": 90 * 86_400_000}


def parse_duration(text: str) -> int:
    """Milliseconds from ``"604800000"``, ``"7d"``, ``"12h"``, ``"30m"``, ``"90s"``, ``"2w"``; -1 for unlimited.

    Raises ``ValueError`` with the accepted forms.
    """
    if text.strip().lower() in _UNLIMITED:
        return -1
    m = _DURATION_RE.match(text)
    ms = 0 if m is None else round(float(m.group(1)) * _UNIT_MS[(m.group(2) or "ms").lower()])
    if ms <= 0:
        raise ValueError(f"invalid duration {text!r}: expected a positive number of milliseconds, or one with "
                         "ms, s, m, h, d or w (e.g. 14d, 12h), or -1 / unlimited")
    return ms


def parse_duration_arg(text: str) -> int:
    """:func:`parse_duration` for argparse."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def format_duration(ms: int | None) -> str:
    """``7d``, ``36h``, ``unlimited``: the shortest exact form of a retention in milliseconds."""
    if ms is None:
        return "?"
    if ms < 0:
        return "unlimited"
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_MS[unit]
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


# -- check --------------------------------------------------------------------------------------
def load_logging_config(spec: str) -> dict[str, Any]:
    """The dictConfig named by ``spec``: a JSON / YAML / Python file, or ``module.path[:ATTR]``.

    Raises :class:`CliError` with the cause when it cannot be read.
    """
    path, _, attr = spec.partition(":") if not os.path.exists(spec) else (spec, "", "")
    attr = attr or "LOGGING"
    lower = path.lower()
    if lower.endswith(".json"):
        data = _parse_file(path, lambda f: json.load(f), "JSON")
    elif lower.endswith((".yaml", ".yml")):
        try:
            yaml: Any = importlib.import_module("yaml")
        except ImportError:
            raise CliError(f"{path}: reading YAML needs PyYAML: pip install pyyaml", EXIT_USAGE) from None
        data = _parse_file(path, yaml.safe_load, "YAML")
    elif lower.endswith(".py") or os.sep in path:
        if not os.path.isfile(path):
            raise CliError(f"{path}: no such file", EXIT_USAGE)
        import runpy

        try:
            namespace = runpy.run_path(path, run_name="__logkafka_check__")
        except BaseException as exc:  # the file's own code failed (SystemExit included)
            raise CliError(f"{path}: running the file failed: {type(exc).__name__}: {exc}", EXIT_USAGE) from None
        if attr not in namespace:
            raise CliError(f"{path}: defines no {attr} (the logging dictConfig)", EXIT_USAGE)
        data = namespace[attr]
    else:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(path)
        except ModuleNotFoundError as exc:
            if exc.name and path.startswith(exc.name):
                raise CliError(f"{spec}: no such file or module", EXIT_USAGE) from None
            raise CliError(f"{spec}: importing the module failed: {exc}", EXIT_USAGE) from None
        except BaseException as exc:
            raise CliError(f"{spec}: importing the module failed: {type(exc).__name__}: {exc}", EXIT_USAGE) from None
        if not hasattr(module, attr):
            raise CliError(f"{spec}: module {path} has no {attr} (the logging dictConfig)", EXIT_USAGE)
        data = getattr(module, attr)
    if not isinstance(data, dict):
        raise CliError(f"{spec}: the logging configuration must be a mapping (a dictConfig), "
                       f"got {type(data).__name__}", EXIT_USAGE)
    return data


def _parse_file(path: str, parse: Callable[[IO[str]], Any], kind: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return parse(f)
    except OSError as exc:
        raise CliError(f"{path}: cannot read: {exc.strerror or exc}", EXIT_USAGE) from None
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError
        detail = " ".join(str(exc).split())
        raise CliError(f"{path}: not valid {kind}: {detail}", EXIT_USAGE) from None


@dataclass
class _Found:
    """One KafkaLogHandler of the configuration."""

    name: str
    handler: Any
    loggers: list[str] = field(default_factory=list)
    servers_source: str = "default"


def _find_handlers(config: Mapping[str, Any], servers_option: str | None = None) -> list[_Found]:
    """Every KafkaLogHandler dictConfig made, with the loggers it is attached to."""
    from logkafka import KafkaLogHandler

    named: Mapping[str, logging.Handler] = getattr(logging, "_handlers", {})
    found: dict[int, _Found] = {}
    for name, handler in list(named.items()):
        if isinstance(handler, KafkaLogHandler):
            found[id(handler)] = _Found(str(name), handler)
    loggers: list[tuple[str, logging.Logger]] = [("root", logging.getLogger())]
    loggers += [(n, lg) for n, lg in sorted(logging.Logger.manager.loggerDict.items())
                if isinstance(lg, logging.Logger)]
    for lname, lg in loggers:
        for handler in lg.handlers:
            if isinstance(handler, KafkaLogHandler):
                entry = found.setdefault(id(handler), _Found(handler.get_name() or "?", handler))
                entry.loggers.append(lname)
    handler_configs = config.get("handlers") or {}
    for entry in found.values():
        spec = handler_configs.get(entry.name) if isinstance(handler_configs, Mapping) else None
        producer = spec.get("producer_config") if isinstance(spec, Mapping) else None
        if isinstance(spec, Mapping) and (spec.get("bootstrap_servers")
                                          or (isinstance(producer, Mapping) and producer.get("bootstrap.servers"))):
            entry.servers_source = "the configuration"
        elif servers_option:
            entry.servers_source = "--bootstrap-servers"
        elif os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            entry.servers_source = "KAFKA_BOOTSTRAP_SERVERS"
    return sorted(found.values(), key=lambda e: e.name)


def _print_settings(entry: _Found, out: IO[str], own_spool: str | None = None, check_spool: str = "") -> None:
    st = entry.handler.settings
    spool_dir = own_spool if st.spool_dir is not None and st.spool_dir == check_spool else st.spool_dir
    attached = ", ".join(entry.loggers) if entry.loggers else "no logger"
    print(f"handler {entry.name!r} (KafkaLogHandler on {attached})", file=out)
    rows = [
        ("enabled", "yes" if st.enabled else "no"),
        ("bootstrap servers", f"{st.bootstrap_servers} (from {entry.servers_source})"),
        ("application topic", st.topic),
        ("audit topic", st.audit_topic),
        ("security topic", st.security_topic),
        ("namespace", st.namespace or "-"),
        ("format", f"{st.format}, fields {st.fields}"),
        ("key", st.key or "-"),
        ("identity", ", ".join(f"{k}={v}" for k, v in st.identity.items())),
        ("durability", f"{st.durability}, overflow {st.overflow}"),
        ("queue size", str(st.queue_size)),
        ("flush timeout", f"{st.flush_timeout:g} s"),
        ("spool", "off" if spool_dir is None else
         f"{spool_dir} (max {st.spool_max_bytes} bytes, fsync {st.spool_fsync})"
         + ("; the check's own records spool to a temporary directory" if spool_dir != st.spool_dir else "")),
    ]
    for label, value in rows:
        print(f"  {label + ':':<19}{value}", file=out)
    print("  producer config:", file=out)
    for key, value in sorted(masked(st.producer_config).items()):
        shown = value if isinstance(value, (str, int, float, bool)) else f"<{type(value).__name__}>"
        if isinstance(shown, bool):
            shown = "true" if shown else "false"
        print(f"    {key} = {shown}", file=out)


def _consumer_config(producer_config: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """A consumer for the handler's cluster: its connection and security settings, then ``extra``."""
    config = {k: v for k, v in producer_config.items() if k.startswith(_SECURITY_PREFIXES)}
    config.update({
        "group.id": f"logkafka-check-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "log_level": 0,
    })
    config.update(extra)
    config["bootstrap.servers"] = producer_config["bootstrap.servers"]
    return config


def _kafka_text(exc: BaseException) -> str:
    """The text of a client error: ``KafkaError.str()`` rather than its repr."""
    err = exc.args[0] if exc.args else None
    text = getattr(err, "str", None)
    return str(text()) if callable(text) else str(exc)


def new_consumer(config: Mapping[str, Any]) -> Any:
    """A consumer; a setting librdkafka refuses is a :class:`CliError` naming ``--consumer-config``."""
    from confluent_kafka import Consumer, KafkaException

    try:
        return Consumer(dict(config))
    except (KafkaException, TypeError, ValueError) as exc:
        raise CliError(f"--consumer-config: {_kafka_text(exc)}", EXIT_USAGE) from None


def read_back(consumer: Any, topic: str, needle: bytes, since_ms: int, timeout: float) -> bool:
    """Whether a message containing ``needle`` shows up in ``topic`` within ``timeout`` seconds; closes ``consumer``.

    Starts each partition at the first offset whose timestamp is at least ``since_ms``
    (a broker that does not index timestamps answers with the beginning: still correct).
    """
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaException, TopicPartition

    deadline = time.monotonic() + timeout
    try:
        partitions = wait_for_partitions(consumer, topic, deadline, pause=0.2)
        if not partitions:
            return False
        try:
            starts = consumer.offsets_for_times([TopicPartition(topic, p, since_ms) for p in partitions],
                                                timeout=max(0.1, min(10.0, deadline - time.monotonic())))
            assignment = [TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END)
                          for tp in starts]
        except KafkaException:
            assignment = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
        consumer.assign(assignment)
        while time.monotonic() < deadline:
            for m in consumer.consume(1000, min(0.5, max(0.01, deadline - time.monotonic()))):
                if m.error() is None and needle in (m.value() or b""):
                    return True
        return False
    finally:
        consumer.close()


def _probe(entry: _Found, consumer_extra: Mapping[str, Any], args: argparse.Namespace, out: IO[str],
           findings: list[Any]) -> None:
    """Send a probe through the handler to the probe topic and read it back; raise :class:`CliError` on failure.

    A missing application topic is added to ``findings``: the probe does not go there.
    """
    from logkafka._cli.lint_tree import Finding

    handler = entry.handler
    timeout = args.timeout
    st = handler.settings
    check_reachable(st.producer_config, timeout=min(timeout, 15.0))
    print("  connect:           OK", file=out)
    admin = new_admin(st.producer_config, "the handler's producer_config")
    topics = _topics_of(admin, st.bootstrap_servers, timeout)
    if st.topic not in topics and st.topic != args.probe_topic:
        findings.append(Finding(
            "missing-topic", entry.name,
            f"handler {entry.name!r}: its application topic {st.topic!r} does not exist on {st.bootstrap_servers}: "
            "its records are delivered only if the cluster creates topics on first use "
            "(auto.create.topics.enable), and otherwise wait in the spool",
            f"create it: logkafka topics ensure --topic {st.topic} (with the cluster's connection options)",
        ))
    topic = args.probe_topic or f"{st.topic}{PROBE_SUFFIX}"
    status = _ensure_probe_topic(admin, topic, st.bootstrap_servers, create=not args.probe_topic, timeout=timeout)
    print(f"  probe topic:       {topic} ({status})", file=out)
    out.flush()
    _aim_at(handler, topic)
    consumer = new_consumer(_consumer_config(st.producer_config, consumer_extra))
    probe_id = f"lkcheck-{uuid.uuid4().hex[:16]}"
    lg = logging.getLogger(PROBE_LOGGER)
    record = lg.makeRecord(PROBE_LOGGER, logging.INFO, __file__, 0, "logkafka check probe %s", (probe_id,), None,
                           extra={"code": PROBE_CODE, "probe_id": probe_id})
    since_ms = int(record.created * 1000) - 60_000  # clocks of client and broker may differ a little
    started = time.monotonic()
    handler.emit(record)  # past the handler's level and filters: this checks the delivery path
    try:
        _await_probe(entry, timeout)
    except BaseException:
        consumer.close()
        raise
    remaining = max(1.0, timeout - (time.monotonic() - started))
    if not read_back(consumer, topic, probe_id.encode(), since_ms, remaining):
        raise CliError(f"handler {entry.name!r}: the probe {probe_id} was acknowledged but not read back "
                       f"from {topic} within {timeout:g} s")
    elapsed = time.monotonic() - started
    print(f"  probe:             OK: {probe_id} sent to {topic} and read back in {elapsed * 1000:.0f} ms",
          file=out)


def _aim_at(handler: Any, topic: str) -> None:
    """Point the handler's application records at ``topic``, before anything was logged through it.

    The same settings, formatter, producer configuration and worker code: only the
    destination differs, so the probe checks the application's delivery path without
    landing among its records.
    """
    import dataclasses

    old = handler._worker
    handler.settings = dataclasses.replace(handler.settings, topic=topic)
    handler._worker = handler._new_worker()
    if old.running:  # durability "disk" starts the worker at construction: nothing of ours is in it
        old.stop(time.monotonic() + 1.0)
        old.join(5.0)


def _list_topics(admin: Any, servers: str, timeout: float) -> Any:
    """The cluster's metadata, of all topics (asking for one may auto-create it); a cluster that does not answer
    is a :class:`CliError`."""
    from confluent_kafka import KafkaException

    try:
        return admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise unreachable(servers, _kafka_text(exc)) from None


def _topics_of(admin: Any, servers: str, timeout: float) -> set[str]:
    """The topics the cluster has (with partitions)."""
    md = _list_topics(admin, servers, min(timeout, 15.0))
    return {name for name, t in md.topics.items() if t.error is None and t.partitions}


def _ensure_probe_topic(admin: Any, topic: str, servers: str, *, create: bool, timeout: float) -> str:
    """How the probe topic came to be there: ``"exists"``, or ``"created: ..."`` by the check.

    A topic named by ``--probe-topic`` is never created: a missing one is a :class:`CliError`.
    """
    if topic in _topics_of(admin, servers, timeout):
        return "exists" if create else "exists, from --probe-topic"
    if not create:
        raise CliError(f"--probe-topic: no topic {topic!r} on {servers} (the check creates only its own "
                       f"<application topic>{PROBE_SUFFIX}; create this one first, e.g. with logkafka topics "
                       "ensure)", EXIT_USAGE)
    spec = TopicSpec(topic, 1, {"retention.ms": str(PROBE_RETENTION_MS)})
    outcome = create_topics(admin, [spec], timeout=timeout)[topic]
    if outcome.status is Status.UNANSWERED:
        raise CliError(f"creating the probe topic {topic!r}: no answer from {servers} within "
                       f"{timeout + 5:g} s", EXIT_USAGE)
    if outcome.status is Status.EXISTS:
        return "exists"  # made meanwhile, by another check
    if outcome.status is Status.REFUSED:
        raise CliError(f"cannot create the probe topic {topic!r} on {servers}: {outcome.text} (create it with one "
                       "partition, or pass --probe-topic TOPIC naming a topic this client may write to)",
                       EXIT_USAGE)
    if not wait_for_topics(admin, [topic], time.monotonic() + timeout):
        raise CliError(f"the probe topic {topic!r} was created but is not visible after {timeout:g} s",
                       EXIT_USAGE)
    return "created by the check: 1 partition, kept 1 day"


def _await_probe(entry: _Found, timeout: float) -> None:
    """Wait until the handler has the probe acknowledged; raise :class:`CliError` when it does not."""
    handler = entry.handler
    st = handler.settings
    if not handler.flush(timeout):
        stats = handler.stats()
        why = stats.get("last_error") or ("spooled to disk" if stats.get("spooling") else "no acknowledgement")
        raise CliError(f"handler {entry.name!r}: the probe was not acknowledged by {st.bootstrap_servers} "
                       f"within {timeout:g} s ({why})")
    stats = handler.stats()
    if stats.get("spooling") and not stats.get("delivered"):
        raise CliError(f"handler {entry.name!r}: the probe went to the disk spool, not to Kafka "
                       f"({stats.get('last_error') or 'broker unreachable'})")


def _private_spool(config: dict[str, Any], spool: str) -> tuple[dict[str, Any], dict[str, str | None]]:
    """A copy of ``config`` whose KafkaLogHandlers spool to ``spool``, and each handler's own spool directory.

    A probe that is not acknowledged is spooled by ``handler.close()``; in the application's spool it
    would later be replayed into the topic. So the check's handlers spool to a directory of the
    check's own, removed afterwards (and they leave the application's spool alone: replaying it is
    the application's business, or ``logkafka replay``'s). A handler whose spool is off stays off.
    ``LOGKAFKA_SPOOL_DIR`` is pointed there too, for handlers that name no ``spool_dir``.
    """
    from logkafka._settings import check_spool_dir

    own: dict[str, str | None] = {}
    handlers = config.get("handlers")
    if isinstance(handlers, Mapping):
        copied: dict[Any, Any] = {}
        for name, spec in handlers.items():
            if isinstance(spec, Mapping) and spec.get("spool_dir") not in (None, False, ""):
                try:
                    own[str(name)] = check_spool_dir(spec["spool_dir"])
                except ValueError:  # dictConfig reports it, naming the handler
                    copied[name] = spec
                    continue
                spec = {**spec, "spool_dir": spool}
            copied[name] = spec
        config = {**config, "handlers": copied}
    own[""] = check_spool_dir(None)  # where a handler naming none spools: LOGKAFKA_SPOOL_DIR, else the default
    if own[""] is not None:
        os.environ["LOGKAFKA_SPOOL_DIR"] = spool
    return config, own


def run_check(args: argparse.Namespace) -> int:
    """``logkafka check CONFIG``."""
    from logkafka._cli.lint import enabled_loggers

    out = sys.stdout
    libraries = enabled_loggers()  # before the configuration's own imports: what logkafka and its libraries made
    if args.bootstrap_servers:  # the handler's own fallback: used only where the file names no cluster
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = args.bootstrap_servers
    consumer_extra = {}
    if args.consumer_config and not args.no_probe:
        consumer_extra = load_client_config(args.consumer_config, "--consumer-config")
    if args.producer_config:
        print("logkafka check: note: --producer-config is not used: the handler's own producer_config is checked",
              file=sys.stderr)
    config = load_logging_config(args.config)
    env_spool = os.environ.get("LOGKAFKA_SPOOL_DIR")
    spool = tempfile.mkdtemp(prefix="logkafka-check-spool-")
    try:
        built, own_spools = _private_spool(config, spool)
        chosen_by = "LOGKAFKA_SPOOL_DIR" if env_spool is not None else "the default"
        return _check(args, config, built, own_spools, spool, consumer_extra, out, chosen_by, libraries)
    finally:
        shutil.rmtree(spool, ignore_errors=True)  # with any probe that was not acknowledged
        atexit.register(shutil.rmtree, spool, True)  # again once a handler's thread that was late has ended


def _targets(found: list[_Found], own_spools: Mapping[str, str | None], chosen_by: str) -> list[Any]:
    """The lint's view of each handler: where the application (not this check) would spool its records."""
    from logkafka._cli.lint_tree import Target

    targets = []
    for entry in found:
        if entry.handler.settings.spool_dir is None:  # the spool is off
            spool_dir, setting = None, "spool_dir"
        elif entry.name in own_spools:
            spool_dir, setting = own_spools[entry.name], "spool_dir"
        else:
            spool_dir, setting = own_spools[""], chosen_by
        targets.append(Target(entry.name, entry.handler, spool_dir, setting))
    return targets


def _check(args: argparse.Namespace, config: dict[str, Any], built: dict[str, Any],
           own_spools: dict[str, str | None], spool: str, consumer_extra: Mapping[str, Any], out: IO[str],
           chosen_by: str, libraries: frozenset[str]) -> int:
    """Build the configuration, lint it, and check each handler; ``chosen_by`` names the default spool's source,
    ``libraries`` the loggers that existed before the configuration was loaded."""
    from logkafka._cli import lint as _lint

    enabled_before = _lint.enabled_loggers()
    try:
        logging.config.dictConfig(built)
    except Exception as exc:
        raise CliError(f"{args.config}: the logging configuration failed: {cause_chain(exc)}", EXIT_USAGE) from None
    found = _find_handlers(config, args.bootstrap_servers)
    try:
        if not found:
            raise CliError(f"{args.config}: no logkafka.KafkaLogHandler in the configuration", EXIT_USAGE)
        findings = _lint.lint(config, _targets(found, own_spools, chosen_by), enabled_before=enabled_before,
                               libraries=libraries)
        try:
            for n, entry in enumerate(found):
                if n:
                    print(file=out)
                _print_settings(entry, out, own_spools.get(entry.name, own_spools[""]), spool)
                out.flush()
                if not entry.handler.settings.enabled:
                    raise CliError(f"handler {entry.name!r} is disabled (enabled / LOGKAFKA_ENABLED): "
                                   "it ships nothing to Kafka")
                if not args.no_probe:
                    _probe(entry, consumer_extra, args, out, findings)
        finally:  # the warnings are shown also when a probe failed
            shown = [f for f in findings if not any(f.matches(spec) for spec in args.ignore)]
            _print_findings(shown, len(findings) - len(shown), out)
        checked = f"{len(found)} KafkaLogHandler{'s' if len(found) != 1 else ''} checked"
        if args.no_probe:
            checked += " without connecting (--no-probe)"
        count = f"{len(shown)} warning{'s' if len(shown) != 1 else ''}"
        if shown and args.strict:
            raise CliError(f"{checked}, but {count} (--strict)", EXIT_WARNINGS)
        print(f"\nOK: {checked}, {count if shown else 'no warnings'}", file=out)
        return 0
    finally:
        for entry in found:
            entry.handler.close()


def _print_findings(findings: list[Any], ignored: int, out: IO[str]) -> None:
    if findings:
        print(file=out)
        for finding in findings:
            print(finding, file=out)
    if ignored:
        print(f"\n({ignored} warning{'s' if ignored != 1 else ''} not shown: --ignore)", file=out)
    out.flush()


# -- topics ensure ------------------------------------------------------------------------------
class _Wanted(NamedTuple):
    """One of the three topics as asked: its stream, name and retention."""

    stream: str
    name: str
    retention_ms: int


@dataclass
class _TopicState:
    name: str
    stream: str
    partitions: int | None = None
    retention_ms: int | None = None
    status: str = ""
    notes: list[str] = field(default_factory=list)


def _describe_retention(admin: Any, topics: list[str], timeout: float) -> dict[str, int | None]:
    """``retention.ms`` of each topic, None where the broker does not say."""
    from confluent_kafka.admin import ConfigResource, ResourceType  # type: ignore[attr-defined]

    out: dict[str, int | None] = dict.fromkeys(topics)
    try:
        futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, t) for t in topics],
                                         request_timeout=timeout)
    except Exception:
        return out
    for resource, future in futures.items():
        try:
            entries = future.result(timeout)
            value = entries["retention.ms"].value if "retention.ms" in entries else None
            out[resource.name] = int(value) if value not in (None, "") else None
        except Exception:
            pass
    return out


def _wanted_topics(args: argparse.Namespace) -> list[_Wanted]:
    """The three topics as the handler names them, each with the retention asked (or its stream's default)."""
    from logkafka._settings import check_namespace, stream_topics

    try:
        namespace = check_namespace(args.namespace if args.namespace is not None
                                    else os.environ.get("LOGKAFKA_NAMESPACE"))
        names = stream_topics(namespace, args.topic, args.audit_topic, args.security_topic)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    wanted = []
    for stream, name in zip(("application", "audit", "security"), names, strict=True):
        asked = getattr(args, f"retention_{stream}")
        wanted.append(_Wanted(stream, name, RETENTION_DEFAULTS[stream] if asked is None else int(asked)))
    return wanted


def run_topics_ensure(args: argparse.Namespace) -> int:
    """``logkafka topics ensure``."""
    wanted = _wanted_topics(args)
    config = admin_config(args)
    admin = new_admin(config, connection_option(args))
    check_reachable(config, timeout=min(args.timeout, 15.0), option=connection_option(args))
    states = {w.stream: _TopicState(w.name, w.stream) for w in wanted}
    _create_missing(admin, args, str(config["bootstrap.servers"]), wanted, states)
    # wait until every topic is visible, then report what exists
    visible = wait_for_topics(admin, [w.name for w in wanted], time.monotonic() + args.timeout)
    retention = _describe_retention(admin, [w.name for w in wanted], args.timeout)
    failed = []
    for w in wanted:
        if w.name not in visible:
            failed.append(w.name)
            states[w.stream].status += ", not visible yet"
            continue
        _compare(states[w.stream], w, len(visible[w.name]), retention.get(w.name), args.partitions)
    _print_topics(list(states.values()))
    if failed:
        raise CliError(f"topics not visible after {args.timeout:g} s: {', '.join(failed)}")
    return 0


def _create_missing(admin: Any, args: argparse.Namespace, servers: str, wanted: list[_Wanted],
                    states: dict[str, _TopicState]) -> None:
    """Create the wanted topics the cluster does not have; mark each state ``created`` or ``exists``."""
    md = _list_topics(admin, servers, args.timeout)
    missing = [w for w in wanted if w.name not in md.topics or md.topics[w.name].error is not None]
    specs = [TopicSpec(w.name, args.partitions, {"retention.ms": str(w.retention_ms)}) for w in missing]
    outcomes = create_topics(admin, specs, replication=args.replication_factor, timeout=args.timeout)
    for w in missing:
        outcome = outcomes[w.name]
        if outcome.status is Status.UNANSWERED:
            raise CliError(f"creating topic {w.name!r}: no answer from {servers} within {args.timeout + 5:g} s")
        if outcome.status is Status.REFUSED:
            raise CliError(f"creating topic {w.name!r} failed: {outcome.text}")
        states[w.stream].status = outcome.status.value  # "exists": made meanwhile by someone else
    for state in states.values():
        if not state.status:
            state.status = "exists"


def _compare(state: _TopicState, wanted: _Wanted, partitions: int, retention_ms: int | None, asked: int) -> None:
    """Note on ``state`` how a visible topic differs from what was asked (an existing one is never changed)."""
    state.partitions = partitions
    state.retention_ms = retention_ms
    if state.status == "exists":
        if state.partitions != asked:
            state.notes.append(f"has {state.partitions} partitions, asked {asked}: not changed")
        if state.retention_ms is None:
            state.notes.append("retention not reported by the broker")
        elif state.retention_ms != wanted.retention_ms:
            state.notes.append(f"retention {format_duration(state.retention_ms)}, asked "
                               f"{format_duration(wanted.retention_ms)}: not changed")
    elif state.retention_ms is None:
        state.notes.append(f"asked retention {format_duration(wanted.retention_ms)}; the broker does not report it")


def _print_topics(states: list[_TopicState]) -> None:
    """The table of ``topics ensure``: stream, topic, partitions, retention, status and notes."""
    width = max(len(st.name) for st in states)
    print(f"{'STREAM':<12}{'TOPIC':<{width + 2}}{'PARTITIONS':>10}  {'RETENTION':<10} STATUS")
    for state in states:
        parts = "?" if state.partitions is None else str(state.partitions)
        note = "".join(f"; {n}" for n in state.notes)
        print(f"{state.stream:<12}{state.name:<{width + 2}}{parts:>10}  "
              f"{format_duration(state.retention_ms):<10} {state.status}{note}")


# -- replay -------------------------------------------------------------------------------------
_SEG_SUFFIX = ".seg"


def _segments_in(directory: str) -> list[str]:
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(_SEG_SUFFIX))
    except OSError:
        return []
    return [os.path.join(directory, n) for n in names]


def _destinations(spool_dir: str) -> list[str]:
    """The destination directories under ``spool_dir`` (or ``spool_dir`` itself when it holds segments)."""
    if _segments_in(spool_dir):
        return [spool_dir]
    try:
        entries = sorted(os.scandir(spool_dir), key=lambda e: e.name)
    except OSError:
        return []
    return [e.path for e in entries if e.is_dir() and _segments_in(e.path)]


def _count_lines(path: str) -> int:
    """Records of a segment not settled yet (after the progress a replay committed)."""
    from logkafka._spool import settled_offset

    try:
        with open(path, "rb") as f:
            f.seek(settled_offset(path))
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return 0


class _Progress:
    """A one-line progress bar on stderr, redrawn at most ten times a second (only on a terminal)."""

    def __init__(self, total: int, stream: IO[str]) -> None:
        self.total = max(total, 0)
        self.done = 0
        self.stream = stream
        self.enabled = stream.isatty()
        self._drawn = 0.0

    def advance(self, n: int) -> None:
        self.done += n
        if self.enabled and time.monotonic() - self._drawn >= 0.1:
            self.draw()

    def draw(self) -> None:
        self._drawn = time.monotonic()
        total = max(self.total, self.done, 1)
        width = 30
        filled = int(width * self.done / total)
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(f"\rreplay [{bar}] {self.done}/{total} records ({100 * self.done // total}%)")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.draw()
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class _ReplayTotals:
    records: int = 0  # sent and acknowledged (or counted, in a dry run)
    segments: int = 0  # deleted (or counted)
    held: int = 0  # segments a running process holds: skipped
    torn: int = 0  # unreadable lines skipped
    failed: int = 0  # records not acknowledged (kept in the spool)
    permanent: dict[str, int] = field(default_factory=dict)  # reason -> records that cannot go as they are
    transient: dict[str, int] = field(default_factory=dict)  # reason -> records to try again later
    unsure: int = 0  # purged while in flight (a second Ctrl-C): kept, may arrive twice
    kept: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the spool could not be rewritten, and such
    stopped: str | None = None  # why the run ended early (cluster unreachable)


class _Interrupts:
    """SIGINT and SIGTERM counted, not raised, while replay runs: a segment's bookkeeping always finishes."""

    def __init__(self) -> None:
        self.count = 0
        self._saved: dict[signal.Signals, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.count += 1

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._saved.items():
            signal.signal(sig, previous)


def _rewrite(segment: Any, records: list[Any]) -> None:
    """Replace a claimed segment's content with ``records`` (the ones not acknowledged), atomically."""
    from logkafka._spool import clear_progress, line_of

    tmp = f"{segment.path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(b"".join(line_of(r.topic, r.key, r.value, r.timestamp_ms, r.headers) for r in records))
        f.flush()
        os.fsync(f.fileno())
    clear_progress(segment.path)  # first: a crash in between replays the old file whole (duplicates, no gap)
    os.replace(tmp, segment.path)


def _settle(producer: Any, stop: _Interrupts, limit: float) -> None:
    """Make every message of ``producer`` reach a definite delivery report, so none is delivered later.

    Messages still in librdkafka's queue are purged (never sent: they stay in the spool). Messages
    in flight may already be written by the broker, so their reports are awaited (``message.timeout.ms``
    bounds that; ``limit`` seconds at most). A second Ctrl-C, or ``limit``, purges them too: they count
    as not acknowledged, stay in the spool, and may arrive twice.
    """
    producer.purge(in_queue=True, in_flight=False, blocking=True)
    producer.poll(0)
    until = time.monotonic() + limit
    told = False
    while len(producer):
        if stop.count >= 2 or time.monotonic() >= until:
            producer.purge(in_queue=True, in_flight=True, blocking=True)
            end = time.monotonic() + 5.0
            while len(producer) and time.monotonic() < end:
                producer.poll(0.1)
            return
        if stop.count and not told:
            told = True
            print(f"\nlogkafka replay: interrupted: waiting for {len(producer)} records in flight "
                  "(Ctrl-C again stops now: they stay in the spool and may arrive twice)", file=sys.stderr,
                  flush=True)
        producer.poll(0.1)


def _replay_segment(producer: Any, segment: Any, timeout: float, settle_limit: float, totals: _ReplayTotals,
                    progress: _Progress, stop: _Interrupts) -> bool:
    """Send one claimed segment, then settle every record's fate; True when all were acknowledged.

    The segment is deleted when all its records are acknowledged; otherwise the acknowledged ones are
    removed from it (atomic rewrite) before anything else happens, so no record is sent twice by a later
    replay. Only after every delivery report is in: none can arrive after the rewrite.
    """
    from confluent_kafka import KafkaError, KafkaException

    records = list(segment.records())
    totals.torn += segment.torn
    outcome: list[Any] = [None] * len(records)  # True: acknowledged; a KafkaError or text: why not; None: unsent

    def report(index: int) -> Callable[[Any, Any], None]:
        def on_delivery(err: Any, msg: Any) -> None:
            outcome[index] = True if err is None else err
            if err is None:
                progress.advance(1)
        return on_delivery

    deadline = time.monotonic() + timeout
    try:
        for i, rec in enumerate(records):
            if stop.count or time.monotonic() >= deadline:
                break
            while True:
                try:
                    producer.produce(rec.topic, rec.value, rec.key, timestamp=rec.timestamp_ms,
                                     headers=rec.headers, on_delivery=report(i))
                    break
                except BufferError:  # librdkafka's queue is full: serve reports until there is room
                    producer.poll(0.1)
                    if stop.count or time.monotonic() >= deadline:
                        break
                except KafkaException as exc:  # refused at once, e.g. larger than message.max.bytes
                    outcome[i] = exc.args[0] if exc.args else str(exc)
                    break
                except (TypeError, ValueError) as exc:
                    outcome[i] = f"invalid record: {exc}"
                    break
            producer.poll(0)
        while len(producer) and not stop.count and time.monotonic() < deadline:
            producer.poll(min(0.2, max(0.0, deadline - time.monotonic())))
    finally:
        _settle(producer, stop, settle_limit)
    from logkafka._delivery import NO_TOPIC, PERMANENT

    permanent = PERMANENT | NO_TOPIC
    unsent = "interrupted before it was sent" if stop.count else f"not sent within {timeout:g} s"
    left = []
    for rec, result in zip(records, outcome, strict=True):
        if result is True:
            continue
        left.append(rec)
        if isinstance(result, KafkaError):
            reason = result.str()
            if result.code() in permanent:
                totals.permanent[reason] = totals.permanent.get(reason, 0) + 1
                continue
            if result.code() == KafkaError._PURGE_INFLIGHT:
                totals.unsure += 1
            elif result.code() == KafkaError._PURGE_QUEUE:
                reason = unsent
        elif isinstance(result, str):  # not a Kafka error: the record itself is bad
            totals.permanent[result] = totals.permanent.get(result, 0) + 1
            continue
        else:
            reason = unsent
        totals.transient[reason] = totals.transient.get(reason, 0) + 1
    sent = len(records) - len(left)
    totals.records += sent
    if not left:
        segment.delete()
        totals.segments += 1
        return True
    totals.failed += len(left)
    try:
        if sent:
            _rewrite(segment, left)  # acknowledged records are not sent twice
    except OSError as exc:
        totals.errors.append(f"could not rewrite {segment.path} ({exc}): its {sent} acknowledged records "
                             "will be sent again by the next replay")
    segment.release()
    totals.kept.append(segment.path)
    return False


def _settle_limit(config: Mapping[str, Any], timeout: float) -> float:
    """How long to wait for the reports of messages in flight: ``message.timeout.ms`` and a margin."""
    try:
        ms = float(config.get("message.timeout.ms", timeout * 1000))
    except (TypeError, ValueError):
        ms = timeout * 1000
    return (ms / 1000 if ms > 0 else timeout) + 10.0


#: What ``logkafka replay`` lets librdkafka hold: at most 100,000 records, 64 MiB of values.
_REPLAY_BUFFER = {"queue.buffering.max.messages": 100_000, "queue.buffering.max.kbytes": 65_536}


def run_replay(args: argparse.Namespace) -> int:
    """``logkafka replay [SPOOL_DIR]``."""
    from logkafka._settings import PRODUCER_DEFAULTS
    from logkafka._spool import Spool, default_spool_dir

    spool_dir = args.spool_dir
    explicit = spool_dir is not None
    if spool_dir is None:
        env = os.environ.get("LOGKAFKA_SPOOL_DIR")
        spool_dir = env if env and env.strip().lower() not in ("0", "false", "no", "off") else default_spool_dir()
    if not os.path.isdir(spool_dir):
        if explicit:
            raise CliError(f"{spool_dir}: no such directory", EXIT_USAGE)
        print(f"nothing to replay: no spool at {spool_dir}")
        return 0
    destinations = _destinations(spool_dir)
    paths = [(d, p) for d in destinations for p in _segments_in(d)]
    total = sum(_count_lines(p) for _, p in paths)
    totals = _ReplayTotals()
    if args.dry_run:
        for _, path in paths:
            seg = Spool(os.path.dirname(path), max_bytes=1 << 62, fsync="never").claim_path(path)
            if seg is None:
                totals.held += 1
                continue
            totals.records += sum(1 for _ in seg.records())
            totals.torn += seg.torn
            totals.segments += 1
            seg.release()
        held = f"; {totals.held} segments held by a running process" if totals.held else ""
        torn = f"; {totals.torn} unreadable lines" if totals.torn else ""
        print(f"dry run: {totals.records} records in {totals.segments} segments in {spool_dir}{held}{torn}")
        return 0
    if not paths:
        print(f"nothing to replay in {spool_dir}")
        return 0
    servers = bootstrap_servers(args)
    from confluent_kafka import Producer

    option = connection_option(args)
    user = producer_config(args, servers)
    config = {**PRODUCER_DEFAULTS, **_REPLAY_BUFFER, "message.timeout.ms": int(args.timeout * 1000),
              "client.id": "logkafka-replay", "log_level": 0, **user}
    try:
        producer = Producer(config)
    except Exception as exc:
        raise CliError(f"{option or 'the producer settings'}: {_kafka_text(exc)}", EXIT_USAGE) from None
    admin = admin_config(args, servers)
    check_reachable(admin, timeout=min(args.timeout, 15.0), option=option)
    # the handler names a destination by a hash of its (stripped) servers: compare the same way
    digest = hashlib.sha1(servers.strip().encode(), usedforsecurity=False).hexdigest()[:10]
    for d in destinations:
        name = os.path.basename(os.path.normpath(d))
        if "-" in name and name.rsplit("-", 1)[1] != digest:
            print(f"logkafka replay: note: {name} was spooled for another cluster address than {servers}; "
                  f"sending its records to {servers}", file=sys.stderr)
    progress = _Progress(total, sys.stderr)
    settle_limit = _settle_limit(config, args.timeout)
    skipped: list[str] = []  # destinations whose later segments wait (order kept after a transient failure)
    with _Interrupts() as stop:
        try:
            for directory in destinations:
                for path in _segments_in(directory):
                    if stop.count or totals.stopped:
                        break
                    seg = Spool(directory, max_bytes=1 << 62, fsync="never").claim_path(path)
                    if seg is None:
                        totals.held += 1
                        continue
                    transient = sum(totals.transient.values())
                    if _replay_segment(producer, seg, args.timeout, settle_limit, totals, progress, stop):
                        continue
                    if stop.count or sum(totals.transient.values()) == transient:
                        continue  # only records that can never go as they are: the next segment may
                    try:  # records that may go later: is it the cluster, or this destination?
                        check_reachable(admin, timeout=min(args.timeout, 10.0), option=option)
                    except CliError as exc:
                        totals.stopped = str(exc)
                        break
                    skipped.append(directory)  # its later segments wait, so that its records keep their order
                    break
        finally:
            progress.finish()
    return _replay_report(totals, total, servers, spool_dir, paths, skipped, interrupted=bool(stop.count))


def _replay_report(totals: _ReplayTotals, total: int, servers: str, spool_dir: str,
                   paths: list[tuple[str, str]], skipped: list[str], *, interrupted: bool) -> int:
    held = f"; {totals.held} segments skipped (held by a running process)" if totals.held else ""
    torn = f"; {totals.torn} unreadable lines skipped" if totals.torn else ""
    if not (totals.failed or totals.kept or totals.stopped or interrupted):
        print(f"replayed {totals.records} records from {totals.segments} segments to {servers}{held}{torn}")
        return 0
    for reason, n in sorted(totals.permanent.items()):
        print(f"logkafka replay: {n} records can never be delivered as they are: {reason} "
              "(they stay in the spool; fix the cause, e.g. the topic or message.max.bytes, and replay again)",
              file=sys.stderr)
    for reason, n in sorted(totals.transient.items()):
        print(f"logkafka replay: {n} records not delivered now: {reason} (they stay in the spool)", file=sys.stderr)
    if totals.unsure:
        print(f"logkafka replay: {totals.unsure} records were stopped in flight: they stay in the spool and may "
              "arrive twice (consumers drop duplicates by event_id)", file=sys.stderr)
    for directory in skipped:
        print(f"logkafka replay: {directory}: its later segments wait for the next replay (to keep their order)",
              file=sys.stderr)
    for text in totals.errors:
        print(f"logkafka replay: {text}", file=sys.stderr)
    left = sum(_count_lines(p) for _, p in paths if os.path.exists(p))
    summary = f"sent {totals.records} of {total} records to {servers}; {left} records remain in {spool_dir}{held}"
    if interrupted:
        print(f"logkafka replay: interrupted: {summary}", file=sys.stderr)
        return 130
    if totals.stopped:
        raise CliError(f"{summary}: stopped: {totals.stopped}", EXIT_USAGE)
    raise CliError(summary, EXIT_FAILURE)
