"""``logkafka replay [SPOOL_DIR]``: send the records of a disk spool now.

Deletes each segment once every one of its records is acknowledged; otherwise
the acknowledged ones are removed from it (see :mod:`~logkafka._cli.replay_segment`):
a later replay never sends them again, also after Ctrl-C. A record the cluster refuses for good (too large, unknown
topic, not authorised) stays in the spool and is reported; the other segments
are still sent. Only a cluster that stops answering ends the run. The spool
records only a hash of the cluster address it was written for, so records go to
the cluster given by ``--bootstrap-servers`` (or ``KAFKA_BOOTSTRAP_SERVERS``); a
mismatch with that hash is reported.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Producer

from logkafka._cli.common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CliError,
    Interrupts,
    kafka_text,
    seconds,
)
from logkafka._cli.connection import (
    admin_config,
    bootstrap_servers,
    check_reachable,
    connection_option,
    producer_config,
)
from logkafka._cli.replay_segment import Progress, Replay, ReplayTotals, replay_segment
from logkafka._producer_config import PRODUCER_DEFAULTS
from logkafka._spool import Segment, Spool, default_spool_dir, settled_offset

#: How the spool ends the name of a segment file.
_SEG_SUFFIX = ".seg"
#: What ``logkafka replay`` lets librdkafka hold: at most 100,000 records, 64 MiB of values.
_REPLAY_BUFFER = {"queue.buffering.max.messages": 100_000, "queue.buffering.max.kbytes": 65_536}


# -- the spool's segments -----------------------------------------------------------------------

def _segments_in(directory: str) -> list[str]:
    """The segment files of a destination directory, oldest first (their names sort by age)."""
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
    try:
        with open(path, "rb") as f:
            f.seek(settled_offset(path))
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return 0


def _claim(path: str) -> Segment | None:
    """The segment at ``path``, locked for this replay; None while a running process holds it."""
    return Spool(os.path.dirname(path), max_bytes=1 << 62, fsync="never").claim_path(path)


# -- the command --------------------------------------------------------------------------------

def run_replay(args: argparse.Namespace) -> int:
    """``logkafka replay [SPOOL_DIR]``."""
    spool_dir = _spool_dir(args)
    if not os.path.isdir(spool_dir):
        if args.spool_dir is not None:
            raise CliError(f"{spool_dir}: no such directory", EXIT_USAGE)
        print(f"nothing to replay: no spool at {spool_dir}")
        return 0
    destinations = _destinations(spool_dir)
    paths = [p for d in destinations for p in _segments_in(d)]
    if args.dry_run:
        return _dry_run(paths, spool_dir)
    if not paths:
        print(f"nothing to replay in {spool_dir}")
        return 0
    total = sum(_count_lines(p) for p in paths)
    servers = bootstrap_servers(args)
    option = connection_option(args)
    config = {**PRODUCER_DEFAULTS, **_REPLAY_BUFFER, "message.timeout.ms": int(args.timeout * 1000),
              "client.id": "logkafka-replay", "log_level": 0, **producer_config(args, servers)}
    try:
        producer = Producer(config)
    except Exception as exc:
        raise CliError(f"{option or 'the producer settings'}: {kafka_text(exc)}", EXIT_USAGE) from None
    admin = admin_config(args, servers)
    check_reachable(admin, timeout=min(args.timeout, 15.0), option=option)
    _note_other_clusters(destinations, servers)
    with Interrupts() as stop:
        replay = Replay(producer, servers, admin, option, args.timeout, _settle_limit(config, args.timeout), stop,
                         Progress(total, sys.stderr))
        try:
            _replay_all(replay, destinations)
        finally:
            replay.progress.finish()
    return _replay_report(replay, total, spool_dir, paths)


def _spool_dir(args: argparse.Namespace) -> str:
    """SPOOL_DIR, else ``$LOGKAFKA_SPOOL_DIR`` (unless it turns the spool off), else the handler's default."""
    if args.spool_dir is not None:
        return str(args.spool_dir)
    env = os.environ.get("LOGKAFKA_SPOOL_DIR")
    return env if env and env.strip().lower() not in ("0", "false", "no", "off") else default_spool_dir()


def _dry_run(paths: list[str], spool_dir: str) -> int:
    """``--dry-run``: count the records of the segments no running process holds; send nothing."""
    totals = ReplayTotals()
    for path in paths:
        seg = _claim(path)
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


def _note_other_clusters(destinations: list[str], servers: str) -> None:
    """Say which destinations were spooled for another cluster address: their records go to ``servers``."""
    # the handler names a destination by a hash of its (stripped) servers: compare the same way
    digest = hashlib.sha1(servers.strip().encode(), usedforsecurity=False).hexdigest()[:10]
    for d in destinations:
        name = os.path.basename(os.path.normpath(d))
        if "-" in name and name.rsplit("-", 1)[1] != digest:
            print(f"logkafka replay: note: {name} was spooled for another cluster address than {servers}; "
                  f"sending its records to {servers}", file=sys.stderr)


def _settle_limit(config: Mapping[str, Any], timeout: float) -> float:
    """How long to wait for the reports of messages in flight: ``message.timeout.ms`` and a margin."""
    try:
        ms = float(config.get("message.timeout.ms", timeout * 1000))
    except (TypeError, ValueError):
        ms = timeout * 1000
    return (ms / 1000 if ms > 0 else timeout) + 10.0


def _replay_all(replay: Replay, destinations: list[str]) -> None:
    """Send every destination's segments in order. After a failure that may pass (not a refusal for good), a
    destination's later segments wait, so that its records keep their order; a cluster gone ends the run."""
    totals = replay.totals
    for directory in destinations:
        for path in _segments_in(directory):
            if replay.stop.count or totals.stopped:
                break
            seg = _claim(path)
            if seg is None:
                totals.held += 1
                continue
            transient = sum(totals.transient.values())
            if replay_segment(replay, seg):
                continue
            if replay.stop.count or sum(totals.transient.values()) == transient:
                continue  # only records that can never go as they are: the next segment may
            try:  # records that may go later: is it the cluster, or this destination?
                check_reachable(replay.admin, timeout=min(replay.timeout, 10.0), option=replay.option)
            except CliError as exc:
                totals.stopped = str(exc)
                break
            totals.skipped.append(directory)  # its later segments wait, so that its records keep their order
            break


# -- the report ---------------------------------------------------------------------------------

def _replay_report(replay: Replay, total: int, spool_dir: str, paths: list[str]) -> int:
    """What was sent and what remains, and why; the exit status (a :class:`CliError` when records remain)."""
    totals = replay.totals
    interrupted = bool(replay.stop.count)
    held = f"; {totals.held} segments skipped (held by a running process)" if totals.held else ""
    torn = f"; {totals.torn} unreadable lines skipped" if totals.torn else ""
    if not (totals.failed or totals.kept or totals.stopped or interrupted):
        print(f"replayed {totals.records} records from {totals.segments} segments to {replay.servers}{held}{torn}")
        return 0
    _print_reasons(totals)
    left = sum(_count_lines(p) for p in paths if os.path.exists(p))
    summary = (f"sent {totals.records} of {total} records to {replay.servers}; {left} records remain in "
               f"{spool_dir}{held}")
    if interrupted:
        print(f"logkafka replay: interrupted: {summary}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if totals.stopped:
        raise CliError(f"{summary}: stopped: {totals.stopped}", EXIT_USAGE)
    raise CliError(summary, EXIT_FAILURE)


def _print_reasons(totals: ReplayTotals) -> None:
    """Why records stay in the spool, on stderr: each reason once, with how many records it kept."""
    for reason, n in sorted(totals.permanent.items()):
        print(f"logkafka replay: {n} records can never be delivered as they are: {reason} "
              "(they stay in the spool; fix the cause, e.g. the topic or message.max.bytes, and replay again)",
              file=sys.stderr)
    for reason, n in sorted(totals.transient.items()):
        print(f"logkafka replay: {n} records not delivered now: {reason} (they stay in the spool)", file=sys.stderr)
    if totals.unsure:
        print(f"logkafka replay: {totals.unsure} records were stopped in flight: they stay in the spool and may "
              "arrive twice (consumers drop duplicates by event_id)", file=sys.stderr)
    for directory in totals.skipped:
        print(f"logkafka replay: {directory}: its later segments wait for the next replay (to keep their order)",
              file=sys.stderr)
    for text in totals.errors:
        print(f"logkafka replay: {text}", file=sys.stderr)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add ``replay`` to ``sub``."""
    r = sub.add_parser(
        "replay", parents=[common], help="send a disk spool's records now",
        description="""Send the records waiting in a spool directory to Kafka now, each to its topic with its key,
            timestamp and headers. A segment is deleted once all its records are acknowledged; otherwise the
            acknowledged ones are removed from it before the command goes on or ends (Ctrl-C included), so a later
            replay does not send them again. Records whose delivery cannot be confirmed (a second Ctrl-C while they
            are in flight) stay and may arrive twice; consumers drop duplicates by event_id. Segments held by a
            running handler are skipped. Records the cluster refuses for good (too large, unknown topic, not
            authorised) stay in the spool and are reported, and the other segments are still sent; a cluster that
            stops answering ends the run. Exit status: 0 when everything was sent, 1 when records remain, 2 when the
            cluster cannot be reached, 130 on Ctrl-C. The records go to the cluster of --bootstrap-servers /
            KAFKA_BOOTSTRAP_SERVERS (the spool keeps only a hash of the address it was written for; a mismatch is
            reported). Sending uses --producer-config, else the connection settings of --consumer-config.""",
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
