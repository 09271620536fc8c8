"""``logkafka check CONFIG``: check a logging configuration end to end.

Loads a ``logging.config.dictConfig`` from a JSON, YAML or Python file (or a
module's ``LOGGING``), builds it, and for every ``KafkaLogHandler`` in it prints
the effective settings (secrets masked), connects to its cluster, sends a probe
record through the handler and reads it back (:mod:`~logkafka._cli.probe`). The
configuration is linted for what loses records or their context without a word
(:mod:`~logkafka._cli.lint`); ``--strict`` makes a warning fail the check (exit 3).

``--bootstrap-servers`` never overrides a file that names its cluster: it is
exported as ``KAFKA_BOOTSTRAP_SERVERS`` before the configuration is built, the
handler's own fallback (see :mod:`~logkafka._cli.dictconfig`).
"""

from __future__ import annotations

import argparse
import atexit
import logging
import logging.config
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from typing import IO, Any

from logkafka._cli.common import EXIT_USAGE, CliError, cause_chain, seconds
from logkafka._cli.connection import load_client_config, masked
from logkafka._cli.dictconfig import Found, Prepared, find_handlers, load_logging_config, prepare
from logkafka._cli.lint import CODES, enabled_loggers, lint
from logkafka._cli.lint_tree import Finding, Target
from logkafka._cli.probe import PROBE_SUFFIX, probe
from logkafka._settings import check_topic

#: Exit status of ``check --strict`` when the probes passed but there are warnings.
EXIT_WARNINGS = 3


def run_check(args: argparse.Namespace) -> int:
    """``logkafka check CONFIG``."""
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
    spool = tempfile.mkdtemp(prefix="logkafka-check-spool-")
    try:
        return _check(args, prepare(config, spool), consumer_extra, out, libraries)
    finally:
        shutil.rmtree(spool, ignore_errors=True)  # with any probe that was not acknowledged
        atexit.register(shutil.rmtree, spool, True)  # again once a handler's thread that was late has ended


def _targets(found: list[Found], prepared: Prepared) -> list[Target]:
    """The lint's view of each handler: where the application (not this check) would spool its records."""
    targets = []
    for entry in found:
        if entry.handler.settings.spool_dir is None:  # the spool is off
            spool_dir, setting = None, "spool_dir"
        elif entry.name in prepared.own_spools:
            spool_dir, setting = prepared.own_spools[entry.name], "spool_dir"
        else:
            spool_dir, setting = prepared.own_spools[""], prepared.chosen_by
        targets.append(Target(entry.name, entry.handler, spool_dir, setting))
    return targets


def _check(args: argparse.Namespace, prepared: Prepared, consumer_extra: Mapping[str, Any], out: IO[str],
           libraries: frozenset[str]) -> int:
    """Build the configuration, lint it, and check each handler; ``libraries``: the loggers that existed
    before the configuration was loaded."""
    enabled_before = enabled_loggers()
    try:
        logging.config.dictConfig(prepared.built)
    except Exception as exc:
        raise CliError(f"{args.config}: the logging configuration failed: {cause_chain(exc)}", EXIT_USAGE) from None
    found = find_handlers(prepared.config, args.bootstrap_servers)
    try:
        if not found:
            raise CliError(f"{args.config}: no logkafka.KafkaLogHandler in the configuration", EXIT_USAGE)
        findings = lint(prepared.config, _targets(found, prepared), enabled_before=enabled_before,
                        libraries=libraries)
        try:
            for n, entry in enumerate(found):
                if n:
                    print(file=out)
                _print_settings(entry, prepared, out)
                out.flush()
                if not entry.handler.settings.enabled:
                    raise CliError(f"handler {entry.name!r} is disabled (enabled / LOGKAFKA_ENABLED): "
                                   "it ships nothing to Kafka")
                if not args.no_probe:
                    probe(entry, consumer_extra, args, out, findings)
        finally:  # the warnings are shown also when a probe failed
            shown = [f for f in findings if not any(f.matches(spec) for spec in args.ignore)]
            _print_findings(shown, len(findings) - len(shown), out)
        return _verdict(args, len(found), len(shown), out)
    finally:
        for entry in found:
            entry.handler.close()


def _verdict(args: argparse.Namespace, checked_handlers: int, warnings: int, out: IO[str]) -> int:
    """The last line: OK, or with ``--strict`` and warnings a :class:`CliError` (exit 3)."""
    checked = f"{checked_handlers} KafkaLogHandler{'s' if checked_handlers != 1 else ''} checked"
    if args.no_probe:
        checked += " without connecting (--no-probe)"
    count = f"{warnings} warning{'s' if warnings != 1 else ''}"
    if warnings and args.strict:
        raise CliError(f"{checked}, but {count} (--strict)", EXIT_WARNINGS)
    print(f"\nOK: {checked}, {count if warnings else 'no warnings'}", file=out)
    return 0


def _print_findings(findings: list[Finding], ignored: int, out: IO[str]) -> None:
    """The warnings to show, and how many ``--ignore`` hid."""
    if findings:
        print(file=out)
        for finding in findings:
            print(finding, file=out)
    if ignored:
        print(f"\n({ignored} warning{'s' if ignored != 1 else ''} not shown: --ignore)", file=out)
    out.flush()


def _print_settings(entry: Found, prepared: Prepared, out: IO[str]) -> None:
    """A handler's effective settings, secrets masked; its spool as the application (not this check) has it."""
    st = entry.handler.settings
    own = st.spool_dir is not None and st.spool_dir == prepared.spool
    spool_dir = prepared.application_spool(entry.name) if own else st.spool_dir
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


def _ignore_spec(text: str) -> str:
    code = text.partition(":")[0]
    if code not in CODES:
        raise argparse.ArgumentTypeError(f"unknown warning code {code!r}; the codes are: {', '.join(CODES)}")
    return text


def _topic_arg(text: str) -> str:
    try:
        return check_topic("topic", text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add ``check`` to ``sub``."""
    p = sub.add_parser(
        "check", parents=[common], help="check a logging configuration end to end",
        description=f"""Load a logging dictConfig (JSON, YAML, a Python file's LOGGING, or module.path[:ATTR]),
            build it, and for every KafkaLogHandler in it: print its effective settings (secrets masked), connect to
            its cluster, send a probe record through the handler and read it back. The probe goes to a topic of its
            own, <application topic>{PROBE_SUFFIX} (created if missing: 1 partition, kept 1 day), never to the
            application topic; --probe-topic sends it to a topic that exists, e.g. the application topic itself. The
            configuration is also linted for what loses records, or their context, without a word: loggers
            dictConfig disables, logger and handler levels that keep INFO records from Kafka, "propagate": false
            above no KafkaLogHandler, a QueueHandler or MemoryHandler in front of one, handler and formatter naming
            different services, a spool directory that cannot be written, ext:// left inside producer_config. Each
            warning names the logger or handler, the fix, and its code for --ignore. The file's own bootstrap
            servers win; --bootstrap-servers / KAFKA_BOOTSTRAP_SERVERS apply to handlers that name none (as in the
            application). The probe is read back with the handler's security settings plus --consumer-config;
            --producer-config is not used: the handler's own producer_config is what is checked.""",
        epilog="""Exit status: 0 when every probe came back (warnings are printed but pass, unless --strict); 1
            when a probe was not delivered or read back, or a handler is disabled; 2 when the configuration cannot
            be loaded or built, an option is wrong, or the cluster cannot be reached or refuses the probe topic; 3
            with --strict when the probes passed (or --no-probe) but there are warnings.""",
    )
    p.add_argument("config", metavar="CONFIG",
                   help="a .json, .yaml/.yml or .py file, or module.path / module.path:ATTR (default ATTR: LOGGING)")
    p.add_argument("--timeout", type=seconds, default=30.0, metavar="SECONDS",
                   help="how long to wait for the probe to come back (default: 30)")
    p.add_argument("--strict", action="store_true", help="fail (exit 3) when there is any warning")
    p.add_argument("--ignore", action="append", default=[], type=_ignore_spec, metavar="CODE[:NAME]",
                   help="do not report warnings with this code (shown in brackets), or only the one about the "
                        "logger, handler or formatter NAME; may be repeated. Codes: " + ", ".join(list(CODES)))
    p.add_argument("--no-probe", action="store_true",
                   help="connect to nothing: print the settings and the warnings only (for CI without a cluster)")
    p.add_argument("--probe-topic", type=_topic_arg, metavar="TOPIC",
                   help=f"send the probe to TOPIC, which must exist (default: <application topic>{PROBE_SUFFIX}, "
                        "created if missing); naming the application topic puts a probe record among the "
                        "application's records")
    p.set_defaults(run=run_check)
