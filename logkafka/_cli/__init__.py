"""The ``logkafka`` command: read logs back, check a configuration, set up topics.

Each subcommand lives in a module of its own, which registers its parser: ``tail``, ``demo``, ``broker``,
``check``, ``topics`` (``topics ensure``) and ``replay``. What they share is in ``common`` (errors,
argument types, Ctrl-C) and ``connection`` (the connection options and clients); the reading side of
``tail`` (``records``, ``reader``, ``merge``, ``render``) serves every reader of log topics.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from logkafka import __version__
from logkafka._cli import broker, check, compliance, demo, replay, tail, topics, ui
from logkafka._cli.common import EXIT_FAILURE, EXIT_INTERRUPTED, CliError, kafka_text
from logkafka._cli.connection import connection_options

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]", argparse.ArgumentParser], None]

#: The subcommands, in the order ``logkafka --help`` lists them.
COMMANDS: Sequence[Register] = (tail.register, ui.register, compliance.register, demo.register, broker.register,
                                check.register, topics.register, replay.register)


def build_parser() -> argparse.ArgumentParser:
    """The ``logkafka`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="logkafka",
        description="Read logs back from Kafka, check a logging configuration, set up topics, "
                    "replay a spool, run a local broker or the demo.",
    )
    parser.add_argument("--version", action="version", version=f"logkafka {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = connection_options()
    for register in COMMANDS:
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
        return EXIT_INTERRUPTED
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
