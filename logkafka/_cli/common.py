"""What every ``logkafka`` subcommand shares: its errors and their words, argument types, Ctrl-C, topic names."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from logkafka._settings import check_namespace, stream_topics

#: Exit status for a usage or configuration error, and for an unreachable broker.
EXIT_USAGE = 2
EXIT_FAILURE = 1
#: Exit status of a command stopped by Ctrl-C (128 + SIGINT), as a shell reports it.
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure to report as one clear line on stderr, then exit with ``status``."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


# -- errors in words ------------------------------------------------------------------------

def kafka_text(exc: BaseException) -> str:
    """The message of a confluent-kafka exception (its KafkaError's text), else ``str(exc)``."""
    err = exc.args[0] if exc.args else None
    text = getattr(err, "str", None)
    return str(text()) if callable(text) else str(exc)


def cause_chain(exc: BaseException) -> str:
    """``Unable to configure handler 'kafka': producer_config: ...``: an exception and its causes, one line."""
    parts: list[str] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = str(cur) or type(cur).__name__
        if not parts or text not in parts[-1]:
            parts.append(text)
        cur = cur.__cause__ or cur.__context__
    return ": ".join(parts)


def unreachable(servers: str, detail: object) -> CliError:
    """The error for a cluster that does not answer."""
    return CliError(f"cannot reach Kafka at {servers}: {detail}", EXIT_USAGE)


def warner(command: str) -> Callable[[str], None]:
    """A function printing ``logkafka <command>: <text>`` on stderr at once: a warning that does not stop it."""
    def warn(text: str) -> None:
        print(f"logkafka {command}: {text}", file=sys.stderr, flush=True)
    return warn


# -- argument types -------------------------------------------------------------------------

N = TypeVar("N", int, float)


def number_type(convert: Callable[[str], N], accept: Callable[[N], bool], expected: str) -> Callable[[str], N]:
    """An argument type: ``convert(text)`` where ``accept`` takes it, else the usage error
    ``expected <expected>, got '<text>'``."""
    def parse(text: str) -> N:
        try:
            n = convert(text)
        except ValueError:
            n = None
        if n is None or not accept(n):  # NaN fails every comparison: refused too
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return n
    return parse


#: An argument type: an integer above 0.
positive_int = number_type(int, lambda n: n > 0, "a positive integer")
#: An argument type: a number of seconds above 0.
seconds = number_type(float, lambda n: n > 0, "a positive number of seconds")


# -- Ctrl-C ---------------------------------------------------------------------------------

class Interrupts:
    """SIGINT and SIGTERM counted, not raised, while the block runs, so that a command ends its work in order.

    Outside the main thread no signal is caught (and none is counted).
    """

    def __init__(self) -> None:
        self.count = 0
        self._event = threading.Event()
        self._saved: dict[signal.Signals, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.count += 1
        self._event.set()

    def is_set(self) -> bool:
        """Whether a signal came."""
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a signal; whether one came."""
        return self._event.wait(timeout)

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._saved.items():
            signal.signal(sig, previous)


# -- topic names ----------------------------------------------------------------------------

def stream_topic_names(args: argparse.Namespace, topic: str | None = None, audit_topic: str | None = None,
                       security_topic: str | None = None) -> tuple[str, str, str]:
    """The application, audit and security topics, named as a ``KafkaLogHandler`` names them: the names given,
    else ``$LOGKAFKA_TOPIC``..., else from ``--namespace`` (default ``$LOGKAFKA_NAMESPACE``)."""
    try:
        namespace = check_namespace(args.namespace if args.namespace is not None
                                    else os.environ.get("LOGKAFKA_NAMESPACE"))
        return stream_topics(namespace, topic, audit_topic, security_topic)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def add_namespace(p: argparse.ArgumentParser) -> None:
    """The ``--namespace`` option of the commands that read or create the three streams' topics."""
    p.add_argument("--namespace", metavar="NAME",
                   help="topic namespace: <NAME>.logging.<stream>.v1 (default: $LOGKAFKA_NAMESPACE)")
