"""``logkafka tail [TOPIC ...]``: print log records from Kafka as readable lines.

Reads log topics (by default the application, audit and security topics, named
as a ``KafkaLogHandler`` names them: ``$LOGKAFKA_TOPIC``... or from
``--namespace``) and prints one readable line per record, or the raw value
(``--json``). Records in the ``flat`` or ``envelope`` format and in every field
preset (``default``, ``ecs``, ``datadog``, ``otel``) are understood; a value
that is not JSON is printed as it is, marked. The consumer assigns partitions
itself: it joins no group and commits nothing.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from collections.abc import Sequence

from logkafka._cli.common import (
    EXIT_USAGE,
    CliError,
    Interrupts,
    add_namespace,
    number_type,
    positive_int,
    seconds,
    stream_topic_names,
    warner,
)
from logkafka._cli.merge import MAX_HELD_BYTES, MAX_HELD_RECORDS
from logkafka._cli.reader import DEFAULT_IDLE, EXPECT_GRACE, ORDER_WINDOW, consumer_settings, read
from logkafka._cli.records import Filters, level_number, parse
from logkafka._cli.render import add_colour, clean, json_line, render, use_colour
from logkafka._settings import check_topic

_LEVEL_NAMES = {5: "TRACE", 10: "DEBUG", 20: "INFO", 25: "NOTICE", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}


def topics_to_read(args: argparse.Namespace) -> list[str]:
    """The topics named on the command line, else the three streams' (each once)."""
    if getattr(args, "topics", None):
        try:
            return [check_topic("TOPIC", t) for t in args.topics]
        except ValueError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
    return list(dict.fromkeys(stream_topic_names(args)))


def _filters(args: argparse.Namespace) -> Filters:
    """The filters of the command line."""
    grep = None
    if args.grep is not None:
        try:
            grep = re.compile(args.grep)
        except re.error as exc:
            raise CliError(f"--grep: not a regular expression: {exc}", EXIT_USAGE) from None
    return Filters(
        min_level=args.level,
        services=frozenset(args.service or ()),
        correlation_ids=frozenset(args.correlation_id or ()),
        codes=frozenset(args.code or ()),
        grep=grep,
    )


def run_tail(args: argparse.Namespace) -> int:
    """``logkafka tail``."""
    filters = _filters(args)
    topics = topics_to_read(args)
    config = consumer_settings(args)
    colour = use_colour(args.color, sys.stdout)
    shown = seen = 0
    names: list[str] = []
    out = sys.stdout
    with Interrupts() as stop:
        def stopping() -> bool:
            return stop.is_set() or (args.max is not None and shown >= args.max)

        def announce(read_names: Sequence[str]) -> None:
            names[:] = read_names
            if args.follow:
                print(f"logkafka tail: following {', '.join(names)} at {config['bootstrap.servers']} "
                      "(Ctrl-C stops)", file=sys.stderr, flush=True)

        for m in read(config, topics, from_beginning=args.from_beginning, follow=args.follow, idle=args.idle,
                      stopping=stopping, warn=warner("tail"), ready=announce, order_window=args.order_window):
            seen += 1
            line = parse(m.topic, m.partition, m.offset, m.value)
            if not filters(line):
                continue
            if args.json:
                if line.data is None:
                    print(f"logkafka tail: {m.topic}[{m.partition}]@{m.offset} is not JSON: {clean(line.raw)}",
                          file=sys.stderr)
                    continue
                out.write(json_line(line.raw) + "\n")
            else:
                out.write(render(line, colour) + "\n")
            out.flush()
            shown += 1
    if shown == 0 and seen and filters.active:  # exit 0 all the same: nothing failed (see the epilog)
        print(f"logkafka tail: read {seen} record{'s' if seen != 1 else ''} from {', '.join(names)}; "
              f"none matched the filters {' '.join(_filter_options(args))}", file=sys.stderr)
    elif seen == 0 and not args.follow and not stop.is_set():
        print(f"logkafka tail: {', '.join(names)} hold{'s' if len(names) == 1 else ''} no records"
              if args.from_beginning else
              "logkafka tail: no new records (--from-beginning shows earlier ones, --follow waits for more)",
              file=sys.stderr)
    return 0


def _filter_options(args: argparse.Namespace) -> list[str]:
    """The filters given, as options to paste back: ``--service billing --grep 'lost|late'``."""
    def option(name: str, value: str) -> str:
        return f"{name} {clean(shlex.quote(value))}"

    words = [] if args.level is None else [option("--level", _LEVEL_NAMES.get(args.level, str(args.level)))]
    for name, values in (("--service", args.service), ("--correlation-id", args.correlation_id),
                         ("--code", args.code), ("--grep", [args.grep] if args.grep is not None else None)):
        words += [option(name, v) for v in values or ()]
    return words


def _level_arg(text: str) -> int:
    number = level_number(text)
    if number is None:
        raise argparse.ArgumentTypeError(f"unknown level {text!r} (DEBUG, INFO, WARNING, ERROR, CRITICAL or a number)")
    return number


_window = number_type(float, lambda n: 0 <= n <= 3600, "a number of seconds from 0 to 3600")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add ``tail`` to ``sub``."""
    tail = sub.add_parser(
        "tail", parents=[common], help="print log records from Kafka as readable lines",
        description=f"""Read log topics and print one line per record: time, level, service, logger, message, code,
            correlation id. By default the application, audit and security topics ($LOGKAFKA_TOPIC,
            $LOGKAFKA_AUDIT_TOPIC, $LOGKAFKA_SECURITY_TOPIC, else from --namespace, else logs.application.v1,
            logs.audit.v1, logs.security.v1). Flat and envelope records, in any field preset (default, ecs, datadog,
            otel), are understood. No consumer group is joined and no offset is committed. Records of every topic
            and partition are printed merged in time order (their Kafka timestamps: when they were logged). A record
            waits until every other partition has shown a later one or reached its end: up to --order-window seconds
            for a partition at its end or silent, up to {EXPECT_GRACE:g} s for one still sending; a partition far
            ahead of the others is paused. At most {MAX_HELD_RECORDS} records ({MAX_HELD_BYTES >> 20} MiB) are held;
            past that the earliest is printed. When filters matched none of the records read, stderr says so.""",
        epilog="""Exit status: 0 when it ran to its end or was stopped (Ctrl-C), also when no record matched the
            filters; 1 when it failed (no such topic, the consumer failed); 2 for a usage error or a cluster that
            does not answer.""",
    )
    tail.add_argument("topics", nargs="*", metavar="TOPIC", help="topics to read (default: the three streams')")
    add_namespace(tail)
    tail.add_argument("--from-beginning", action="store_true",
                      help="start at the oldest record (default: only records logged from now on)")
    tail.add_argument("-f", "--follow", action="store_true",
                      help="keep waiting for new records (default: stop once caught up)")
    tail.add_argument("-n", "--max", type=positive_int, metavar="N", help="stop after N records")
    tail.add_argument("--idle", type=seconds, default=DEFAULT_IDLE, metavar="SECONDS",
                      help=f"without --follow, also stop after SECONDS without a record (default {DEFAULT_IDLE:g})")
    tail.add_argument("--order-window", type=_window, default=ORDER_WINDOW, metavar="SECONDS",
                      help="how long a record waits for earlier records of partitions at their end or silent "
                           f"(default {ORDER_WINDOW:g}; with --follow, how late a new record may show; 0: no "
                           "waiting)")
    tail.add_argument("--json", action="store_true", help="print each record's JSON value as it is")
    add_colour(tail)
    group = tail.add_argument_group("filters (combined: every one given must match; a repeated one: any value)")
    group.add_argument("-l", "--level", type=_level_arg, metavar="LEVEL",
                       help="records at or above LEVEL (DEBUG, INFO, WARNING, ERROR, CRITICAL, or a number)")
    group.add_argument("--service", action="append", metavar="NAME", help="records of this service")
    group.add_argument("--correlation-id", action="append", metavar="ID", help="records with this correlation id")
    group.add_argument("--code", action="append", metavar="CODE", help="records with this code")
    group.add_argument("--grep", metavar="REGEX", help="records whose message matches REGEX (Python syntax)")
    tail.set_defaults(run=run_tail)
