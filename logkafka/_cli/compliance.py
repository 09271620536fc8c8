"""``logkafka report`` and ``logkafka verify``: a period's audit and security records, read by timestamp.

``report`` prints the period's figures and checks as one JSON object (its schema:
``logkafka/schemas/report.v1.json``) or writes them as one self-contained HTML page; ``verify`` checks
the hash chains alone. Both exit 0 when the checks pass, 1 when they do not, 2 for a usage error or a
cluster that does not answer. See the README's "Compliance".
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

from logkafka._cli.common import EXIT_FAILURE, EXIT_USAGE, CliError, Interrupts, add_namespace, stream_topic_names
from logkafka._cli.reader import consumer_settings, wait_for_cluster
from logkafka._compliance.chains import Verifier
from logkafka._compliance.period import Period, PeriodError, Raw, period_of, read_period
from logkafka._settings import chain_key


class _Progress:
    """A line on stderr while reading (only on a terminal): records read, their rate, how far into the period."""

    def __init__(self, period: Period, stream: IO[str], command: str) -> None:
        self._period, self._stream, self._command = period, stream, command
        self.enabled = stream.isatty()
        self._started = self._drawn = time.monotonic()
        self.latest = period.start_ms

    def __call__(self, read: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._drawn < 0.2:
            return
        self._drawn = now
        span = max(1, self._period.end_ms - self._period.start_ms)
        share = min(1.0, max(0.0, (self.latest - self._period.start_ms) / span))
        bar = "#" * int(30 * share) + "." * (30 - int(30 * share))
        rate = read / max(1e-6, now - self._started)
        self._stream.write(f"\rlogkafka {self._command} [{bar}] {read:,} records read ({rate:,.0f}/s)")
        self._stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self._stream.write("\n")


def _records(args: argparse.Namespace, command: str) -> tuple[Period, dict[str, str], Iterator[Raw], _Progress]:
    """The period, the topics (by stream) and the records of ``args``."""
    try:
        period = period_of(args.month, args.since, args.until)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    _, audit, security = stream_topic_names(args, None, args.audit_topic, args.security_topic)
    topics = {audit: "audit", security: "security"}
    config = consumer_settings(args)
    config["client.id"] = f"logkafka-{command}"
    wait_for_cluster(config)
    progress = _Progress(period, sys.stderr, command)
    missing: list[str] = []

    def records() -> Iterator[Raw]:
        with Interrupts() as stop:
            try:
                for raw in read_period(config, list(topics), period, progress=progress, stopping=stop.is_set,
                                       missing=missing.append):
                    progress.latest = max(progress.latest, raw.ts_ms)
                    yield raw
            except PeriodError as exc:
                raise CliError(str(exc)) from None
            finally:
                progress.finish()
            if stop.is_set():
                raise CliError("interrupted: the period was not read to its end", EXIT_FAILURE)
        for name in missing:
            print(f"logkafka {command}: topic {name} does not exist: read as empty", file=sys.stderr)
    return period, topics, records(), progress


def _key(args: argparse.Namespace) -> bytes | None:
    try:
        return chain_key(args.chain_key)
    except ValueError as exc:
        raise CliError(str(exc).replace("audit_chain_key", "--chain-key"), EXIT_USAGE) from None


def run_report(args: argparse.Namespace) -> int:
    """``logkafka report``."""
    try:
        import fastjsonschema  # noqa: F401
    except ImportError:
        raise CliError("logkafka report needs the 'compliance' extra (fastjsonschema is missing): "
                       "pip install 'logkafka[compliance]'", EXIT_USAGE) from None
    from logkafka._compliance.figures import Report
    from logkafka._compliance.secrets import checker

    if args.format == "html" and not args.output:
        raise CliError("--format html: give the file to write with -o FILE", EXIT_USAGE)
    key = _key(args)
    period, topics, records, _ = _records(args, "report")
    # The chains are verified by a second process reading the same period beside this one: on two cores the
    # report then reads about as fast as one of them alone (each check costs some microseconds a record).
    verifying = _verify_beside(args, period, key)
    report = Report(period, topics, checker(), Verifier(key) if verifying is None else None)
    for raw in records:
        report.feed(raw)
    result = report.result(int(time.time() * 1000), _verified(verifying))
    _write(args, result)
    return 0 if result["passed"] else EXIT_FAILURE


def _verify_beside(args: argparse.Namespace, period: Period, key: bytes | None) -> subprocess.Popen[str] | None:
    """``logkafka verify --json`` of the same period and topics, started now; None when it cannot start."""
    command = [sys.executable, "-m", "logkafka", "verify", "--json", "--since", str(period.start_ms),
               "--until", str(period.end_ms)]
    for option in ("bootstrap_servers", "producer_config", "consumer_config", "namespace", "audit_topic",
                   "security_topic"):
        value = getattr(args, option, None)
        if value:
            command += ["--" + option.replace("_", "-"), value]
    if key is not None:  # in a file of this user's only, never on a command line others can read
        fd, path = tempfile.mkstemp(prefix="logkafka-key-")
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        atexit.register(os.unlink, path)
        command += ["--chain-key", "@" + path]
    try:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError:
        return None


def _verified(process: subprocess.Popen[str] | None) -> dict[str, Any] | None:
    """The verification the second process made (None when there was none)."""
    if process is None:
        return None
    out, err = process.communicate()
    try:
        result: dict[str, Any] = json.loads(out)
    except ValueError:
        raise CliError(f"verifying the chains failed: {(err or out).strip()[-500:]}") from None
    return result


def _write(args: argparse.Namespace, result: dict[str, Any]) -> None:
    if args.format == "html":
        from logkafka._compliance.html import render

        text = render(result)
    else:
        text = json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            raise CliError(f"-o: cannot write {args.output!r}: {exc.strerror or exc}", EXIT_USAGE) from None
        verdict = "checks passed" if result["passed"] else "checks FAILED"
        print(f"logkafka report: {result['total_events']:,} audit records, {verdict}; written to {args.output}",
              file=sys.stderr)
    else:
        sys.stdout.write(text)


def run_verify(args: argparse.Namespace) -> int:
    """``logkafka verify``."""
    verifier = Verifier(_key(args))
    _, _, records, _ = _records(args, "verify")
    for raw in records:
        verifier.feed(raw)
    result = verifier.result()
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        _say(result, print)
    return 0 if result["intact"] else EXIT_FAILURE


def _say(result: dict[str, Any], out: Callable[[str], None]) -> None:
    """The verification in lines: a verdict, each writer, each problem with where it is."""
    out(f"{'intact' if result['intact'] else 'NOT INTACT'}: {result['records']:,} records, "
        f"{result['chained']:,} chained, {len(result['writers'])} writers"
        + ("" if result["keyed"] or not result["unverified"] else
           f"; {result['unverified']:,} keyed records not checked (no --chain-key)"))
    for w in result["writers"]:
        counts = ", ".join(f"{k} {w[k]}" for k in ("gaps", "missing", "mismatches", "conflicts", "reordered",
                                                    "broken_links", "duplicates") if w[k])
        after = f" (follows {w['follows']})" if w["follows"] else " (a restart: its predecessor is not in the " \
            "period)" if w["restart"] else ""
        out(f"  {w['writer']}: records {w['first_seq']}..{w['last_seq']} ({w['records']:,} read){after}"
            + (f": {counts}" if counts else ""))
    if result["unchained"]:
        out(f"  {result['unchained']:,} records carry no chain (not written by a logkafka handler)")
    for p in result["problems"]:
        where = f"{p.get('topic')}[{p.get('partition')}]@{p.get('offset')}"
        out(f"  {p['kind']}: {where} event_id={p.get('event_id')}: {p['detail']}")
    if result["problem_count"] > len(result["problems"]):
        out(f"  ... and {result['problem_count'] - len(result['problems']):,} more problems")


def _common(p: argparse.ArgumentParser) -> None:
    add_namespace(p)
    p.add_argument("--audit-topic", metavar="TOPIC", help="the audit topic (default: $LOGKAFKA_AUDIT_TOPIC, else "
                   "from --namespace)")
    p.add_argument("--security-topic", metavar="TOPIC", help="the security topic (default: "
                   "$LOGKAFKA_SECURITY_TOPIC, else from --namespace)")
    period = p.add_argument_group("period (UTC; default: the 30 days up to now)")
    period.add_argument("--month", metavar="YYYY-MM", help="a calendar month")
    period.add_argument("--since", metavar="WHEN", help="from this ISO 8601 date or time on")
    period.add_argument("--until", metavar="WHEN", help="up to (not including) this ISO 8601 date or time")
    p.add_argument("--chain-key", metavar="KEY", help="the chains' HMAC key (audit_chain_key; @/path reads a "
                   "file; default $LOGKAFKA_AUDIT_CHAIN_KEY): without it, keyed chains are not checked")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add ``report`` and ``verify`` to ``sub``."""
    report = sub.add_parser(
        "report", parents=[common], help="a period's audit and security report (JSON or HTML), checks included",
        description="""Read the audit and security topics for a period (offsets found by timestamp) and report: the
            audited operations by action and outcome, the failure rate, tenants, top actors and resources, security
            allows and denies, and the checks: records holding what redaction would have removed (where, and which
            rule; never the value), records that do not match the shipped JSON Schemas, repeated event ids, and the
            hash chains (see logkafka verify). Needs the compliance extra.""",
        epilog="""Exit status: 0 when the checks pass; 1 when a secret was found, a record fails its schema or a
            chain is broken; 2 for a usage error or a cluster that does not answer. Schedule it (cron, CI) with
            --month for last month.""",
    )
    _common(report)
    report.add_argument("--format", choices=("json", "html"), default="json", help="json (default) or html")
    report.add_argument("-o", "--output", metavar="FILE", help="write to FILE (needed for html)")
    report.set_defaults(run=run_report)
    verify = sub.add_parser(
        "verify", parents=[common], help="check the audit and security hash chains for a period",
        description="""Read the audit and security topics for a period and check every writer's hash chain: gaps
            (missing records), records whose hash does not verify (edited, or forged), two records claiming one place,
            records out of order in their partition, duplicates, and records with no chain (written by something
            else). Each problem is located: topic, partition, offset, event id.""",
        epilog="Exit status: 0 when intact; 1 otherwise; 2 for a usage error or a cluster that does not answer.",
    )
    _common(verify)
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.set_defaults(run=run_verify)
