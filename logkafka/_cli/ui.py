"""``logkafka ui``: a live web viewer of the application, audit and security streams.

Serves the page of :mod:`logkafka._ui` on ``--host`` (default 127.0.0.1) and ``--port`` (default
``DEFAULT_PORT``; 0 picks a free one), reading the same topics ``tail`` reads, with the same
connection options. A non-loopback ``--host`` needs ``--token``. Needs the ``ui`` extra.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import socket
import sys
from typing import Any

from logkafka._cli.common import EXIT_USAGE, CliError, add_namespace, positive_int, stream_topic_names
from logkafka._cli.reader import consumer_settings, wait_for_cluster
from logkafka._cli.tail import topics_to_read

DEFAULT_PORT = 8765
DEFAULT_BACKFILL = 500
DEFAULT_BUFFER = 10_000


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _token(args: argparse.Namespace) -> str | None:
    token = args.token if args.token is not None else os.environ.get("LOGKAFKA_UI_TOKEN")
    if token == "generate":
        return secrets.token_urlsafe(24)
    if token is not None and len(token) < 16:
        raise CliError("--token: use at least 16 characters (or --token generate for a random one)", EXIT_USAGE)
    return token or None


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one); a usage error when it cannot be had."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise CliError(f"--port: cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_USAGE) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(config: dict[str, Any], topic_streams: dict[str, str], *, host: str, port: int, token: str | None,
          backfill: int, buffer: int, export: bool, announce: Any = None) -> int:
    """Read the topics and serve the viewer until interrupted; ``announce`` is told the address."""
    try:
        import uvicorn

        from logkafka._ui.app import Viewer, make_app
    except ImportError as exc:
        raise CliError(f"logkafka ui needs the 'ui' extra ({exc.name} is missing): pip install 'logkafka[ui]'",
                       EXIT_USAGE) from None
    from logkafka._ui.history import RangeReader
    from logkafka._ui.store import Store
    from logkafka._ui.tailer import Tailer

    sock = _bind(host, port)
    store = Store(per_stream=buffer)
    tailer = Tailer(config, topic_streams, store, backfill=backfill).start()
    viewer = Viewer(store, RangeReader(config, topic_streams), token=token, export=export,
                    loopback_only=is_loopback(host))
    shown = f"[{host.strip('[]')}]" if ":" in host.strip("[]") else host
    url = f"http://{shown}:{sock.getsockname()[1]}/" + (f"?token={token}" if token else "")
    (announce or (lambda text: print(text, flush=True)))(url)
    server = uvicorn.Server(uvicorn.Config(make_app(viewer), log_level="warning", lifespan="off",
                                           access_log=False, timeout_graceful_shutdown=2))
    try:
        server.run(sockets=[sock])
    finally:
        tailer.stop()
        sock.close()
    return 0


def run_ui(args: argparse.Namespace) -> int:
    """``logkafka ui``."""
    host = args.host
    token = _token(args)
    if not is_loopback(host) and token is None:
        raise CliError(f"--host {host}: refusing to serve audit and security logs beyond this machine without a "
                       "token: add --token <secret> (or --token generate), or keep the default --host 127.0.0.1",
                       EXIT_USAGE)
    topics = topics_to_read(args)
    _, audit, security = stream_topic_names(args)
    topic_streams = {t: "audit" if t == audit else "security" if t == security else "application" for t in topics}
    config = consumer_settings(args)
    config["client.id"] = "logkafka-ui"
    wait_for_cluster(config)
    print(f"logkafka ui: reading {', '.join(topics)} at {config['bootstrap.servers']} (Ctrl-C stops)",
          file=sys.stderr, flush=True)
    return serve(config, topic_streams, host=host, port=args.port, token=token, backfill=args.backfill,
                 buffer=args.buffer, export=not args.no_export,
                 announce=lambda url: print(f"logkafka ui: open {url}", flush=True))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add ``ui`` to ``sub``."""
    ui = sub.add_parser(
        "ui", parents=[common], help="a live web viewer of the log streams",
        description=f"""Serve a web page showing the newest records of the application, audit and security topics
            (the topics tail reads: named ones, else the three streams' from --namespace or the environment),
            live, merged in time order, with filters kept in the address, one request's records across the streams,
            audit and security tables, and reading back from any time. It reads only: no consumer group is joined,
            no offset is committed, nothing is written. It serves on 127.0.0.1:{DEFAULT_PORT} by default; any other
            address needs --token. Needs the ui extra (pip install 'logkafka[ui]').""",
        epilog="""Exit status: 0 when stopped (Ctrl-C); 2 for a usage error, a cluster that does not answer, or a
            non-loopback --host without --token.""",
    )
    ui.add_argument("topics", nargs="*", metavar="TOPIC", help="topics to read (default: the three streams')")
    add_namespace(ui)
    ui.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")
    ui.add_argument("--port", type=int, default=DEFAULT_PORT,
                    help=f"port to serve on (default {DEFAULT_PORT}; 0 picks a free one)")
    ui.add_argument("--token", metavar="SECRET",
                    help="require this token (at least 16 characters; 'generate' makes one): a bearer header, or "
                         "?token= on first load (default $LOGKAFKA_UI_TOKEN); needed beyond 127.0.0.1")
    ui.add_argument("--backfill", type=positive_int, default=DEFAULT_BACKFILL, metavar="N",
                    help=f"records of each partition read at start (default {DEFAULT_BACKFILL})")
    ui.add_argument("--buffer", type=positive_int, default=DEFAULT_BUFFER, metavar="N",
                    help=f"records kept in memory per stream (default {DEFAULT_BUFFER}); older ones are read back "
                         "from Kafka by time")
    ui.add_argument("--no-export", action="store_true", help="turn off downloading records from the page")
    ui.set_defaults(run=run_ui)
