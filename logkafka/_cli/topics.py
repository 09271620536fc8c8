"""``logkafka topics ensure``: create the application, audit and security topics that do not exist yet.

New topics get the partitions and retention asked; existing topics are reported
(with any difference from what was asked), never changed.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from logkafka._cli.common import (
    CliError,
    format_duration,
    number_type,
    parse_duration_arg,
    positive_int,
    seconds,
    stream_topic_names,
)
from logkafka._cli.connection import admin_config, check_reachable, connection_option, list_topics, new_admin
from logkafka._topics import Status, TopicSpec, create_topics, wait_for_topics

#: Retention of each stream's new topic unless asked: a week, unlimited, 90 days.
RETENTION_DEFAULTS = {"application": 7 * 86_400_000, "audit": -1, "security": 90 * 86_400_000}


class _Wanted(NamedTuple):
    """One of the three topics as asked: its stream, name and retention."""

    stream: str
    name: str
    retention_ms: int


@dataclass
class _TopicState:
    """One topic as ``topics ensure`` reports it."""

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
    names = stream_topic_names(args, args.topic, args.audit_topic, args.security_topic)
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
    md = list_topics(admin, servers, args.timeout)
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


_replication = number_type(int, lambda n: n > 0 or n == -1, "a positive integer or -1")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add ``topics`` (``topics ensure``) to ``sub``."""
    topics = sub.add_parser("topics", help="set up the log topics",
                            description="Manage the application, audit and security topics.")
    tsub = topics.add_subparsers(dest="topics_command", metavar="ACTION", required=True)
    e = tsub.add_parser(
        "ensure", parents=[common], help="create the three log topics if missing, and report them",
        description="""Create the application, audit and security topics that do not exist yet, with the given
            partitions and retention; existing topics are reported (with any difference from what was asked), never
            changed. Topic names as the handler makes them: --namespace (default $LOGKAFKA_NAMESPACE),
            LOGKAFKA_TOPIC / LOGKAFKA_AUDIT_TOPIC / LOGKAFKA_SECURITY_TOPIC, else logs.<stream>.v1. Durations:
            milliseconds, or a number with ms, s, m, h, d or w; -1 or 'unlimited' for no time limit. The admin
            requests use --producer-config, else --consumer-config (one file with the TLS / SASL settings is
            enough).""",
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
