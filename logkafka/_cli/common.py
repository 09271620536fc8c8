"""What the ``logkafka`` subcommands share: errors and their words, argument types (numbers, durations), Ctrl-C,
the three streams' topic names."""

from __future__ import annotations

import argparse
import os
import re
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


#: Durations: milliseconds, or a number with a unit; -1 (or one of its words) for no limit.
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$", re.IGNORECASE)
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_UNLIMITED = ("-1", "unlimited", "infinite", "forever", "none")


def parse_duration(text: str) -> int:
    """Milliseconds from ``"604800000"``, ``"7d"``, ``"12h"``, ``"30m"``, ``"90s"``, ``"2w"``; -1 for unlimited.

    Raises ``ValueError`` with the accepted forms.
    """
    if text.strip().lower() in _UNLIMITED:
        return -1
    m = _DURATION_RE.match(text)
    ms = 0 if m is None else round(float(m.group(1)) * _UNIT_MS[(m.group(2) or "ms").lower()])
    if ms <= 0:
        raise ValueError(f"invalid duration {text!r}: expected a positive number of milliseconds, or one with "
                         "ms, s, m, h, d or w (e.g. 14d, 12h), or -1 / unlimited")
    return ms


def parse_duration_arg(text: str) -> int:
    """:func:`parse_duration` for argparse."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def format_duration(ms: int | None) -> str:
    """``7d``, ``36h``, ``unlimited``: the shortest exact form of a retention in milliseconds."""
    if ms is None:
        return "?"
    if ms < 0:
        return "unlimited"
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_MS[unit]
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


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
