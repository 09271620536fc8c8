"""``logkafka check``.

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
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import json
import logging
import logging.config
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from logkafka._cli.common import EXIT_USAGE, CliError, cause_chain, seconds, unreachable
from logkafka._cli.connection import (
    check_reachable,
    load_client_config,
    masked,
    new_admin,
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
    """Add ``check`` to ``sub``."""
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
