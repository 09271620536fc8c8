"""JsonFormatter: the JSON object of a record, its two encoders, and what it leaves alone."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import decimal
import enum
import inspect
import io
import json
import logging
import logging.config
import math
import os
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from typing import Any

import orjson
import pytest
from _support import ListHandler
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

import logkafka
from logkafka import JsonFormatter
from logkafka._record import CORE_FIELDS, EID, capture
from logkafka._render import Collision

IDENTITY_ENV = ("OTEL_SERVICE_NAME", "SERVICE_NAME", "ENVIRONMENT", "APP_VERSION", "SERVICE_INSTANCE_ID")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UTC = datetime.timezone.utc
# 2026-11-23T09:30:13.000Z as a POSIX timestamp (a whole number: exact as a float)
T0 = datetime.datetime(2026, 11, 23, 9, 30, 13, tzinfo=UTC).timestamp()


class OrderError(Exception):
    """An exception class that is not a builtin."""


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    tags: list[str]


class Unprintable:
    """An object whose __str__ raises."""

    def __str__(self) -> str:
        raise RuntimeError("no text for you")



@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No identity from the environment, no bound context, before and after every test."""
    for name in IDENTITY_ENV:
        monkeypatch.delenv(name, raising=False)
    logkafka.clear_context()
    yield
    logkafka.clear_context()


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, ListHandler]]:
    """A logger of its own (DEBUG, not propagating) and the handler keeping its records."""
    lg = logging.getLogger(f"test.formatter.{uuid.uuid4().hex[:8]}")
    lg.setLevel(logging.DEBUG)
    lg.propagate = False
    handler = ListHandler()
    lg.addHandler(handler)
    yield lg, handler
    lg.removeHandler(handler)


@pytest.fixture(scope="module")
def tracer() -> Iterator[trace.Tracer]:
    """A tracer of an SDK TracerProvider of its own (the global provider is left alone)."""
    provider = TracerProvider(shutdown_on_exit=False)
    yield provider.get_tracer("t")
    provider.shutdown()


def make_record(
    msg: Any = "hello",
    args: Any = None,
    *,
    level: int = logging.INFO,
    name: str = "app.orders",
    extra: dict[str, Any] | None = None,
    exc_info: Any = None,
    stack_info: str | None = None,
    func: str | None = "place_order",
    lineno: int = 42,
) -> logging.LogRecord:
    """A record as Logger.makeRecord makes it for a call in /srv/app/orders.py."""
    record = logging.getLogger(name).makeRecord(
        name, level, "/srv/app/orders.py", lineno, msg, args, exc_info, func=func, extra=extra, sinfo=stack_info,
    )
    return record


def exc_info_of(exc: BaseException) -> Any:
    """The exc_info tuple of ``exc`` after raising it."""
    try:
        raise exc
    except BaseException:
        return sys.exc_info()


def out(formatter: JsonFormatter, record: logging.LogRecord) -> dict[str, Any]:
    """The object format() writes for ``record``, checked to be one line of JSON."""
    line = formatter.format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert isinstance(data, dict)
    return data


def general(formatter: JsonFormatter, record: logging.LogRecord) -> bytes:
    """What the general path gives: to_dict, serialized by orjson."""
    return orjson.dumps(formatter.to_dict(record), option=orjson.OPT_NON_STR_KEYS)


def depth(value: Any) -> int:
    """How many containers are nested in ``value``."""
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


class TestFields:
    def test_one_json_object_per_record(self) -> None:
        """format() gives one line holding one JSON object, encode() the same as UTF-8 bytes."""
        f = JsonFormatter()
        record = make_record()
        line = f.format(record)
        assert "\n" not in line
        assert isinstance(json.loads(line), dict)
        assert f.encode(record) == line.encode("utf-8")

    def test_record_fields(self, logged: tuple[logging.Logger, ListHandler]) -> None:
        """level, logger, message, process, thread, module, function and line describe the call."""
        lg, handler = logged
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        lg.warning("Order %s placed for %d items", "A-17", 3)
        data = out(JsonFormatter(), handler.records[0])
        assert data["level"] == "WARNING"
        assert data["logger"] == lg.name
        assert data["message"] == "Order A-17 placed for 3 items"
        assert data["process"] == os.getpid()
        assert data["thread"] == threading.current_thread().name
        assert data["module"] == "test_formatter"
        assert data["function"] == "test_record_fields"
        assert data["line"] == line

    def test_identity_and_host(self) -> None:
        """service, environment, version, instance_id come from the formatter; host is the host name."""
        f = JsonFormatter(service_name="checkout", environment="prod", version="1.4.2", instance_id="pod-7")
        data = out(f, make_record())
        assert (data["service"], data["environment"], data["version"], data["instance_id"]) == (
            "checkout", "prod", "1.4.2", "pod-7")
        assert data["host"] == socket.gethostname()

    def test_code_only_when_given(self) -> None:
        """code is the extra of that name, and absent from records without it."""
        f = JsonFormatter()
        assert out(f, make_record(extra={"code": "ORDER_PLACED"}))["code"] == "ORDER_PLACED"
        assert "code" not in out(f, make_record())

    def test_other_extras_at_top_level(self) -> None:
        """Every other extra key is a top-level member with its value."""
        data = out(JsonFormatter(), make_record(extra={"amount": 99.5, "order_id": "A-17", "paid": True, "n": None}))
        assert data["amount"] == 99.5
        assert data["order_id"] == "A-17"
        assert data["paid"] is True
        assert data["n"] is None

    def test_colliding_extras_are_prefixed(self) -> None:
        """An extra named like a formatter field ships as extra.<name>; the field keeps its value."""
        colliding = {"level": "custom", "service": "other", "line": -1, "trace_id": "t", "timestamp": "now"}
        data = out(JsonFormatter(service_name="checkout"), make_record(extra=colliding))
        for key, value in colliding.items():
            assert key in CORE_FIELDS
            assert data[f"extra.{key}"] == value
        assert data["level"] == "INFO"
        assert data["service"] == "checkout"
        assert data["line"] == 42
        assert "trace_id" not in data
        assert TS_RE.match(data["timestamp"])

    def test_dict_message(self) -> None:
        """A dict logged as the message gives its "message" item as message and its other items as fields."""
        data = out(JsonFormatter(), make_record({"message": "checked out", "cart": [1, 2], "level": "x"}))
        assert data["message"] == "checked out"
        assert data["cart"] == [1, 2]
        assert data["extra.level"] == "x"
        assert data["level"] == "INFO"


class TestTimestamp:
    @pytest.mark.parametrize(
        ("offset", "expected"),
        [
            (0.5, "2026-11-23T09:30:13.500Z"),
            (0.0, "2026-11-23T09:30:13.000Z"),
            (0.25, "2026-11-23T09:30:13.250Z"),
            (-0.75, "2026-11-23T09:30:12.250Z"),
            (86400 * 40 + 0.125, "2027-01-02T09:30:13.125Z"),
        ],
    )
    def test_rfc3339_utc_milliseconds(self, offset: float, expected: str) -> None:
        """timestamp is record.created as RFC 3339 in UTC with milliseconds and a Z."""
        record = make_record()
        record.created = T0 + offset
        assert out(JsonFormatter(), record)["timestamp"] == expected

    def test_milliseconds_truncated(self) -> None:
        """Milliseconds are truncated, as logging's own msecs are (62.5 ms is .062)."""
        record = make_record()
        record.created = T0 + 0.0625
        assert out(JsonFormatter(), record)["timestamp"] == "2026-11-23T09:30:13.062Z"

    def test_live_record(self, logged: tuple[logging.Logger, ListHandler]) -> None:
        """A logged record's timestamp is its creation time, to the millisecond."""
        lg, handler = logged
        lg.info("now")
        record = handler.records[0]
        ts = out(JsonFormatter(), record)["timestamp"]
        assert TS_RE.match(ts)
        parsed = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert abs(parsed.timestamp() - record.created) < 0.001

    def test_seconds_change_between_records(self) -> None:
        """One formatter gives each record its own second, going forwards or backwards in time."""
        f = JsonFormatter()
        for offset, expected in [(1.5, "2026-11-23T09:30:14.500Z"), (0.25, "2026-11-23T09:30:13.250Z"),
                                 (3600.0, "2026-11-23T10:30:13.000Z"), (1.75, "2026-11-23T09:30:14.750Z")]:
            record = make_record()
            record.created = T0 + offset
            assert json.loads(f.encode(record))["timestamp"] == expected
            assert f.to_dict(record)["timestamp"] == expected


class TestEventId:
    def test_uuid_text(self) -> None:
        """event_id is an RFC 9562 version 8 UUID in canonical lower-case text."""
        eid = out(JsonFormatter(), make_record())["event_id"]
        parsed = uuid.UUID(eid)
        assert parsed.version == 8
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == eid

    def test_increasing_within_a_process(self) -> None:
        """Ids share this process's random prefix and then increase, by the order of the calls."""
        f = JsonFormatter()
        records = [make_record() for _ in range(50)]
        for record in records:
            capture(record)
        ids = [out(f, record)["event_id"] for record in reversed(records)][::-1]
        assert len({i[:24] for i in ids}) == 1
        assert ids == sorted(ids) and len(set(ids)) == 50

    def test_rendered_elsewhere(self) -> None:
        """A record whose id came from another prefix (another process) renders the same on both paths."""
        record = make_record()
        capture(record)
        record.__dict__[EID] ^= 1 << 100  # as if drawn by another process
        f = JsonFormatter()
        expected = str(uuid.UUID(int=record.__dict__[EID]))
        assert out(f, record)["event_id"] == expected
        assert f.to_dict(record)["event_id"] == expected

    def test_copy_made_without_fork_hooks_draws_a_new_prefix(self) -> None:
        """A record showing another process id (a worker copied without Python's fork hooks,
        as uWSGI does by default) gets ids from a new random prefix, not the copied one."""
        f = JsonFormatter()
        before = out(f, make_record())["event_id"]
        copied = make_record()
        copied.process = os.getpid() + 1
        other = out(f, copied)["event_id"]
        assert other[:24] != before[:24]
        assert uuid.UUID(other).version == 8

    def test_forked_child_draws_its_own_prefix(self) -> None:
        """A forked child's ids never repeat the parent's: the child draws a new random prefix."""
        f = JsonFormatter()
        parent = out(f, make_record())["event_id"]
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report an id and leave at once
            try:
                os.write(write, out(f, make_record())["event_id"].encode())
            finally:
                os._exit(0)
        os.close(write)
        child = os.read(read, 100).decode()
        os.close(read)
        os.waitpid(pid, 0)
        assert uuid.UUID(child).version == 8
        assert child[:24] != parent[:24]
        assert out(f, make_record())["event_id"][:24] == parent[:24]  # the parent keeps its prefix

    def test_same_record_same_id(self) -> None:
        """The same record formatted twice, or by two formatters, has one event_id."""
        record = make_record()
        first = out(JsonFormatter(), record)["event_id"]
        assert out(JsonFormatter(), record)["event_id"] == first
        f = JsonFormatter(service_name="other")
        assert json.loads(f.encode(record))["event_id"] == first
        assert f.to_dict(record)["event_id"] == first

    def test_records_differ(self) -> None:
        """Different records get different event ids."""
        f = JsonFormatter()
        ids = {out(f, make_record())["event_id"] for _ in range(200)}
        assert len(ids) == 200

    def test_extra_wins(self) -> None:
        """extra={"event_id": ...} is the event_id, and is not repeated as an extra."""
        data = out(JsonFormatter(), make_record(extra={"event_id": "evt-123"}))
        assert data["event_id"] == "evt-123"
        assert "extra.event_id" not in data

    @pytest.mark.parametrize("eid", ['say "hi"', "back\\slash", "line\nbreak", "tab\there", "Grüße ✓"])
    def test_extra_needing_escapes(self, eid: str) -> None:
        """An event_id from extra with quotes, backslashes or control characters still gives valid JSON."""
        f = JsonFormatter()
        record = make_record(extra={"event_id": eid})
        assert json.loads(f.encode(record))["event_id"] == eid
        assert json.loads(f.format(record))["event_id"] == eid


class TestContextFields:
    def test_bound_keys_at_top_level(self) -> None:
        """Every key of the bound context is a top-level member."""
        logkafka.bind(correlation_id="c-1", tenant_id="acme")
        with logkafka.bound(user_id=7):
            data = out(JsonFormatter(), make_record())
        assert (data["correlation_id"], data["tenant_id"], data["user_id"]) == ("c-1", "acme", 7)

    def test_colliding_context_keys_are_prefixed(self) -> None:
        """A context key named like a formatter field ships as extra.<name>."""
        logkafka.bind(message="ctx message", host="elsewhere", event_id="ctx-id")
        data = out(JsonFormatter(), make_record("real message"))
        assert data["message"] == "real message"
        assert data["extra.message"] == "ctx message"
        assert data["host"] == socket.gethostname()
        assert data["extra.host"] == "elsewhere"
        assert data["extra.event_id"] == "ctx-id"
        assert uuid.UUID(data["event_id"]).version == 8

    def test_context_and_extra_of_one_name(self) -> None:
        """A key both bound and given in extra appears once, with the extra's value."""
        logkafka.bind(order_id="from-context")
        data = out(JsonFormatter(), make_record(extra={"order_id": "from-extra"}))
        assert data["order_id"] == "from-extra"
        raw = JsonFormatter().encode(make_record(extra={"order_id": "x"}))
        assert raw.count(b'"order_id"') == 1

    def test_no_context_no_members(self) -> None:
        """Without bound context the object has only the formatter's fields."""
        data = out(JsonFormatter(), make_record())
        assert set(data) == {"timestamp", "level", "logger", "message", "service", "environment", "version", "host",
                             "instance_id", "process", "thread", "module", "function", "line", "event_id"}


class TestTracing:
    def test_ids_of_active_span(self, tracer: trace.Tracer) -> None:
        """trace_id and span_id are the active span's ids in 32 and 16 lower-case hex digits."""
        with tracer.start_as_current_span("s") as span:
            data = out(JsonFormatter(), make_record())
        ctx = span.get_span_context()
        assert re.fullmatch(r"[0-9a-f]{32}", data["trace_id"])
        assert re.fullmatch(r"[0-9a-f]{16}", data["span_id"])
        assert int(data["trace_id"], 16) == ctx.trace_id
        assert int(data["span_id"], 16) == ctx.span_id

    def test_no_span(self, tracer: trace.Tracer) -> None:
        """Without an active span, or after it ended, there are no trace fields."""
        assert "trace_id" not in out(JsonFormatter(), make_record())
        with tracer.start_as_current_span("s"):
            pass
        data = out(JsonFormatter(), make_record())
        assert "trace_id" not in data
        assert "span_id" not in data

    def test_invalid_span(self) -> None:
        """An invalid span being current gives no trace fields."""
        with trace.use_span(trace.INVALID_SPAN):
            data = out(JsonFormatter(), make_record())
        assert "trace_id" not in data
        assert "span_id" not in data

    def test_span_of_the_call(self, tracer: trace.Tracer) -> None:
        """A record captured inside a span keeps that span's ids when formatted after it ended."""
        with tracer.start_as_current_span("outer") as span:
            captured = capture(make_record())
        with tracer.start_as_current_span("other"):
            data = json.loads(JsonFormatter().encode_captured(captured))
        assert data["trace_id"] == f"{span.get_span_context().trace_id:032x}"
        assert data["span_id"] == f"{span.get_span_context().span_id:016x}"


class TestError:
    def test_builtin_exception(self) -> None:
        """error has the builtin's bare type name, its message and the stack trace."""
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            record = make_record("failed", exc_info=sys.exc_info())
        error = out(JsonFormatter(), record)["error"]
        assert error["type"] == "ZeroDivisionError"
        assert error["message"] == "division by zero"
        assert error["stack_trace"].startswith("Traceback (most recent call last):")
        assert "test_builtin_exception" in error["stack_trace"]
        assert error["stack_trace"].endswith("ZeroDivisionError: division by zero")

    def test_module_qualified_type(self) -> None:
        """A type that is not a builtin is named module.Class."""
        record = make_record(exc_info=exc_info_of(json.JSONDecodeError("bad", "{", 0)))
        assert out(JsonFormatter(), record)["error"]["type"] == "json.decoder.JSONDecodeError"
        record = make_record(exc_info=exc_info_of(OrderError("no stock")))
        error = out(JsonFormatter(), record)["error"]
        assert error["type"] == f"{__name__}.OrderError"
        assert error["message"] == "no stock"

    def test_logger_exception(self, logged: tuple[logging.Logger, ListHandler]) -> None:
        """logger.exception() gives an error member and keeps the message."""
        lg, handler = logged
        try:
            raise KeyError("sku")
        except KeyError:
            lg.exception("lookup failed")
        data = out(JsonFormatter(), handler.records[0])
        assert data["message"] == "lookup failed"
        assert data["level"] == "ERROR"
        assert data["error"]["type"] == "KeyError"
        assert data["error"]["message"] == "'sku'"

    def test_no_exception_no_error(self) -> None:
        """A record without exception info has no error member."""
        assert "error" not in out(JsonFormatter(), make_record())

    def test_unprintable_exception(self) -> None:
        """An exception whose __str__ raises still gives an error member, with text for its message."""

        class Hostile(Exception):
            def __str__(self) -> str:
                raise RuntimeError("no")

        error = out(JsonFormatter(), make_record(exc_info=exc_info_of(Hostile())))["error"]
        assert error["type"].endswith("Hostile")
        assert isinstance(error["message"], str)
        assert "Hostile" in error["message"]


    def test_exc_info_as_make_log_record_lets_it_through(self) -> None:
        """makeLogRecord takes any exc_info: True (the exception being handled), an exception, or junk."""
        f = JsonFormatter()
        try:
            raise OrderError("while handling")
        except OrderError as exc:
            handled = out(f, logging.makeLogRecord({"msg": "m", "exc_info": True}))["error"]
            instance = out(f, logging.makeLogRecord({"msg": "m", "exc_info": exc}))["error"]
        assert handled["type"] == instance["type"] == f"{__name__}.OrderError"
        assert handled["message"] == instance["message"] == "while handling"
        assert "raise OrderError" in handled["stack_trace"] and "raise OrderError" in instance["stack_trace"]
        junk = out(f, logging.makeLogRecord({"msg": "m", "exc_info": "not an exception"}))
        assert junk["error"]["message"] == "not an exception"
        assert junk["message"] == "m" and "logkafka_error" not in junk


class TestUnencodable:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (decimal.Decimal("1.10"), "1.10"),
            (b"ab\xff", "ab\\xff"),
            (bytearray(b"xyz"), "xyz"),
            (datetime.datetime(2026, 11, 23, 9, 30, 13, 500000), "2026-11-23T09:30:13.500000"),
            (datetime.datetime(2026, 11, 23, 9, 30, 13, tzinfo=UTC), "2026-11-23T09:30:13+00:00"),
            (datetime.date(2026, 11, 23), "2026-11-23"),
            (datetime.timedelta(seconds=90), "0:01:30"),
            (math.nan, "nan"),
            (math.inf, "inf"),
            (-math.inf, "-inf"),
            (Color.RED, "red"),
            (Point(1, ["a"]), {"x": 1, "tags": ["a"]}),
            ((1, "two"), [1, "two"]),
            ({"nested": [decimal.Decimal("2"), {b"k": math.nan}]}, {"nested": ["2", {"b'k'": "nan"}]}),
            (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        ],
        ids=["decimal", "bytes", "bytearray", "datetime", "aware-datetime", "date", "timedelta", "nan", "inf",
             "-inf", "enum", "dataclass", "tuple", "nested", "uuid"],
    )
    def test_rendered(self, value: Any, expected: Any) -> None:
        """A value JSON cannot hold as such is rendered as text (containers as JSON containers)."""
        f = JsonFormatter()
        record = make_record(extra={"v": value})
        data = out(f, record)
        assert data["v"] == expected
        assert "logkafka_error" not in data
        assert json.loads(f.encode(record))["v"] == expected

    def test_set(self) -> None:
        """A set becomes a list of its elements."""
        data = out(JsonFormatter(), make_record(extra={"tags": {"b", "a", "c"}, "ids": frozenset({3, 1})}))
        assert sorted(data["tags"]) == ["a", "b", "c"]
        assert sorted(data["ids"]) == [1, 3]

    def test_arbitrary_object(self) -> None:
        """An arbitrary object is its str()."""
        obj = object()
        assert out(JsonFormatter(), make_record(extra={"obj": obj}))["obj"] == str(obj)

    def test_unprintable_object(self) -> None:
        """An object whose __str__ raises still becomes text naming its class."""
        data = out(JsonFormatter(), make_record(extra={"obj": Unprintable()}, msg="m"))
        assert isinstance(data["obj"], str)
        assert "Unprintable object at 0x" in data["obj"]
        assert data["message"] == "m"

    def test_unprintable_message(self) -> None:
        """A message object whose __str__ raises still gives a record with text for its message."""
        data = out(JsonFormatter(), make_record(Unprintable()))
        assert "Unprintable" in data["message"]
        assert data["level"] == "INFO"

    def test_self_referencing(self) -> None:
        """A dict or list that contains itself shows "<cycle>" where it repeats."""
        d: dict[str, Any] = {"name": "d"}
        d["self"] = d
        lst: list[Any] = [1]
        lst.append(lst)
        data = out(JsonFormatter(), make_record(extra={"d": d, "l": lst}))
        assert data["d"] == {"name": "d", "self": "<cycle>"}
        assert data["l"] == [1, "<cycle>"]

    def test_shared_not_a_cycle(self) -> None:
        """The same list twice in one value is not a cycle."""
        shared = [1, 2]
        data = out(JsonFormatter(), make_record(extra={"pair": [shared, shared]}))
        assert data["pair"] == [[1, 2], [1, 2]]

    def test_deep_nesting(self) -> None:
        """Nesting deeper than 10 levels is cut at 10, the rest rendered as text."""
        deep: dict[str, Any] = {}
        inner = deep
        for _ in range(30):
            inner["n"] = {}
            inner = inner["n"]
        inner["leaf"] = "bottom"
        value = out(JsonFormatter(), make_record(extra={"deep": deep}))["deep"]
        assert depth(value) == 10
        for _ in range(9):
            value = value["n"]
        assert isinstance(value["n"], str)
        assert "bottom" in value["n"]

    def test_huge_integer(self) -> None:
        """An integer beyond 64 bits is rendered as its digits, the rest of the record intact."""
        big = 2**70
        f = JsonFormatter()
        logkafka.bind(ctx_big=-(2**80))
        record = make_record(extra={"big": big, "nested": {"big": big}, "order_id": "A-1", "code": big})
        data = out(f, record)
        assert "logkafka_error" not in data
        assert "logkafka_repaired" not in data
        assert data["big"] == str(big)
        assert data["code"] == str(big)
        assert out(f, make_record({"message": "m", "big": big}))["big"] == str(big)
        assert data["nested"] == {"big": str(big)}
        assert data["ctx_big"] == str(-(2**80))
        assert data["order_id"] == "A-1"
        assert data["environment"] == "unknown"

    def test_largest_integers_stay_numbers(self) -> None:
        """Integers JSON encoders handle (64-bit signed and unsigned range) stay numbers."""
        values = {"max_u64": 2**64 - 1, "min_i64": -(2**63), "zero": 0}
        data = out(JsonFormatter(), make_record(extra=values))
        assert {k: data[k] for k in values} == values

    def test_all_at_once(self) -> None:
        """A record holding every kind of awkward value still ships every field."""
        d: dict[str, Any] = {}
        d["d"] = d
        extra = {"o": object(), "b": b"\x00\xff", "s": {1}, "dt": datetime.datetime(2026, 1, 1),
                 "dec": decimal.Decimal("0.1"), "d": d, "nan": math.nan, "bad": Unprintable(),
                 "p": Point(2, []), "e": Color.RED, "code": "MIXED"}
        data = out(JsonFormatter(), make_record("msg %s", (Unprintable(),), extra=extra))
        assert set(extra) <= set(data)
        assert data["code"] == "MIXED"
        assert "logkafka_error" not in data
        assert "Unprintable" in data["message"]


class TestRepair:
    def test_lone_surrogate_in_message(self) -> None:
        """A lone surrogate in the message is replaced and the object marked logkafka_repaired."""
        f = JsonFormatter()
        record = make_record("bad \ud800 text")
        raw = f.encode(record)
        data = json.loads(raw.decode("utf-8"))  # strict: valid UTF-8
        assert data["message"] == "bad ? text"
        assert data["logkafka_repaired"] is True
        assert data["level"] == "INFO"
        assert json.loads(f.format(record))["logkafka_repaired"] is True

    def test_lone_surrogate_in_extra_and_context(self) -> None:
        """Lone surrogates in extras, extra keys and bound context are repaired too."""
        logkafka.bind(ctx="c\udfff")
        data = json.loads(JsonFormatter().encode(
            make_record(extra={"v": ["ok", "x\udc80"], "k\ud800": 1})).decode("utf-8"))
        assert data["v"] == ["ok", "x?"]
        assert data["k?"] == 1
        assert data["ctx"] == "c?"
        assert data["logkafka_repaired"] is True

    def test_valid_text_not_marked(self) -> None:
        """Valid non-ASCII text is kept as is and not marked repaired."""
        data = out(JsonFormatter(), make_record("Grüße ✓ 日本 🎉", extra={"city": "Zürich"}))
        assert data["message"] == "Grüße ✓ 日本 🎉"
        assert data["city"] == "Zürich"
        assert "logkafka_repaired" not in data

    def test_bad_format_string(self) -> None:
        """msg "%d" with args ("x",) still gives a full record whose message has the text."""
        data = out(JsonFormatter(), make_record("count %d", ("x",)))
        assert "count %d" in data["message"]
        assert "x" in data["message"]
        assert data["level"] == "INFO"
        assert data["logger"] == "app.orders"
        assert "logkafka_error" not in data

    def test_too_few_args(self) -> None:
        """A format string wanting more arguments than given still gives the text."""
        data = out(JsonFormatter(), make_record("%s and %s", ("one",)))
        assert "%s and %s" in data["message"]
        assert "one" in data["message"]


def _build(
    msg: Any = "hello",
    args: Any = None,
    *,
    tweak: Callable[[logging.LogRecord], None] | None = None,
    **kwargs: Any,
) -> Callable[[], logging.LogRecord]:
    def build() -> logging.LogRecord:
        record = make_record(msg, args, **kwargs)
        if tweak is not None:
            tweak(record)
        return record
    return build


def _set(**attrs: Any) -> Callable[[logging.LogRecord], None]:
    def tweak(record: logging.LogRecord) -> None:
        record.__dict__.update(attrs)
    return tweak


# (id, record factory, context to bind, with an active span)
CASES: list[tuple[str, Callable[[], logging.LogRecord], dict[str, Any], bool]] = [
    ("plain", _build(), {}, False),
    ("args", _build("Order %s for %d", ("A-1", 3)), {}, False),
    ("code", _build(extra={"code": "ORDER_PLACED"}), {}, False),
    ("code-int", _build(extra={"code": 404}), {}, False),
    ("code-empty", _build(extra={"code": ""}), {}, False),
    ("code-escapes", _build(extra={"code": 'A"B\\C\n'}), {}, False),
    ("context", _build(), {"correlation_id": "c-1", "user_id": 7}, False),
    ("context-colliding", _build(), {"level": "ctx", "service": "ctx", "trace_id": "ctx"}, False),
    ("extras", _build(extra={"amount": 1.5, "items": [1, {"a": None}], "ok": False}), {}, False),
    ("extras-colliding", _build(extra={"service": "x", "line": 0, "error": "e", "host": "h"}), {}, False),
    ("extra-equals-context", _build(extra={"tenant": "extra"}), {"tenant": "ctx", "other": 1}, False),
    ("extra-prefixed-equals-context", _build(extra={"level": "extra"}), {"extra.level": "ctx"}, False),
    ("exception", _build("failed", exc_info=exc_info_of(ZeroDivisionError("x"))), {}, False),
    ("exception-custom", _build(exc_info=exc_info_of(OrderError("é"))), {"c": 1}, False),
    ("exc-text-only", _build(tweak=_set(exc_text="Traceback: old")), {}, False),
    ("stack-info", _build(stack_info="Stack (most recent call last):\n  File x"), {}, False),
    ("span", _build(), {}, True),
    ("span-context-exception", _build(exc_info=exc_info_of(KeyError("k")), extra={"code": "E"}), {"a": 1}, True),
    ("non-ascii", _build("Grüße %s ✓", ("日本",), name="app.ünï", extra={"città": "Zürich 🎉"}), {"ü": "ß"}, False),
    ("control-chars", _build("nul\x00 tab\t nl\n quote\" bs\\"), {}, False),
    ("dict-message", _build({"message": "m", "cart": [1, 2], 5: "five", "level": "x"}), {}, False),
    ("dict-message-no-message", _build({"cart": 1}), {}, False),
    ("dict-message-equals-context", _build({"message": "m", "tenant": "msg"}), {"tenant": "ctx"}, False),
    ("event-id", _build(extra={"event_id": "evt-1"}), {}, False),
    ("event-id-escapes", _build(extra={"event_id": 'ev"1\\'}), {}, False),
    ("event-id-not-str", _build(extra={"event_id": 12}), {}, False),
    ("unencodable", _build(extra={"d": decimal.Decimal("1.5"), "s": {1}, "b": b"\xff", "o": Color.RED}), {}, False),
    ("custom-level", _build(level=25), {}, False),
    ("no-function", _build(func=None), {}, False),
    ("thread-name", _build(tweak=_set(threadName='wörker "1"')), {}, False),
    ("everything", _build("all %s", ("in",), extra={"code": "ALL", "service": "s", "x": [1]},
                          exc_info=exc_info_of(ValueError("v")), stack_info="Stack"), {"tenant": "t"}, True),
]


#: Cases where a member of the record has the name of a context member.
COLLIDING = {"extra-equals-context", "extra-prefixed-equals-context", "dict-message-equals-context"}


class TestTemplateEqualsGeneral:
    @staticmethod
    def _check(f: JsonFormatter, case_id: str, build: Callable[[], logging.LogRecord], ctx: dict[str, Any],
               span: bool, tracer: trace.Tracer) -> None:
        with logkafka.bound(**ctx), (tracer.start_as_current_span("s") if span else nullcontext()):
            record = build()
            expected = general(f, record)
            assert f.encode(record) == expected
            assert f.format(record) == expected.decode("utf-8")
            if case_id not in COLLIDING:  # the template renders these itself
                assert f.render_captured(capture(record)) == expected
        json.loads(expected)

    @pytest.mark.parametrize(("case_id", "build", "ctx", "span"), CASES, ids=[c[0] for c in CASES])
    def test_same_bytes(self, case_id: str, build: Callable[[], logging.LogRecord], ctx: dict[str, Any],
                        span: bool, tracer: trace.Tracer) -> None:
        """encode() gives exactly orjson.dumps(to_dict()) for this kind of record."""
        self._check(JsonFormatter(), case_id, build, ctx, span, tracer)

    def test_same_bytes_one_formatter(self, tracer: trace.Tracer) -> None:
        """One formatter gives the general path's bytes for every kind of record, in turn and again."""
        f = JsonFormatter(service_name="svc")
        assert f.templated
        for _ in range(2):
            for case_id, build, ctx, span in CASES + CASES[::-1]:
                self._check(f, case_id, build, ctx, span, tracer)

    def test_collisions_take_the_general_path(self) -> None:
        """A key both in the context and in the extras is left to the general path by the template."""
        f = JsonFormatter()
        with logkafka.bound(tenant="ctx"):
            record = make_record(extra={"tenant": "extra"})
            with pytest.raises(Collision):
                f.render_captured(capture(record))
            assert json.loads(f.encode(record))["tenant"] == "extra"

    def test_handler_identity(self) -> None:
        """A handler's identity in the captured record wins, in both paths."""
        f = JsonFormatter(service_name="formatter-svc")
        resource = {"service": "handler-svc", "environment": "stage", "version": "2", "instance_id": "i-1"}
        for res in (resource, None, resource):
            captured = capture(make_record(), res)
            expected = orjson.dumps(f.to_dict(logging.makeLogRecord(captured)), option=orjson.OPT_NON_STR_KEYS)
            assert f.encode_captured(captured) == expected
            assert f.render_captured(captured) == expected
            assert json.loads(expected)["service"] == ("handler-svc" if res else "formatter-svc")

    def test_context_changes_between_records(self) -> None:
        """Records of one call site under changing contexts each show their own context."""
        f = JsonFormatter()
        for ctx in ({"a": 1}, {"a": 2}, {}, {"b": "x"}, {"a": 2}):
            with logkafka.bound(**ctx):
                record = make_record()
                data = json.loads(f.encode(record))
                assert f.encode(record) == general(f, record)
            assert {k: data[k] for k in ("a", "b") if k in data} == ctx


class TestOptions:
    def test_process_log_record_override(self) -> None:
        """A subclass's process_log_record changes what encode() and format() give."""

        class Redacting(JsonFormatter):
            def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
                log_data.pop("host", None)
                log_data["card"] = "****"
                return log_data

        f = Redacting()
        record = make_record(extra={"card": "4111 1111 1111 1111"})
        for data in (json.loads(f.encode(record)), json.loads(f.format(record))):
            assert data["card"] == "****"
            assert "host" not in data
            assert data["message"] == "hello"

    def test_rename_fields(self) -> None:
        """rename_fields renames a field, keeping its value."""
        data = out(JsonFormatter(rename_fields={"level": "severity", "message": "msg"}), make_record("hi"))
        assert data["severity"] == "INFO"
        assert data["msg"] == "hi"
        assert "level" not in data
        assert "message" not in data

    def test_static_fields(self) -> None:
        """static_fields are added to every record."""
        f = JsonFormatter(static_fields={"team": "payments", "region": "eu-1"})
        for record in (make_record(), make_record(extra={"x": 1})):
            data = out(f, record)
            assert data["team"] == "payments"
            assert data["region"] == "eu-1"

    def test_defaults(self) -> None:
        """defaults are added, and an extra of the same name replaces the default."""
        f = JsonFormatter(defaults={"region": "eu-1"})
        assert out(f, make_record())["region"] == "eu-1"
        assert out(f, make_record(extra={"region": "us-2"}))["region"] == "us-2"

    def test_prefix(self) -> None:
        """prefix starts every line format() writes; the rest is the JSON object."""
        f = JsonFormatter(prefix="@cee: ")
        line = f.format(make_record("hi"))
        assert line.startswith("@cee: ")
        assert json.loads(line.removeprefix("@cee: "))["message"] == "hi"

    def test_dictconfig(self) -> None:
        """dictConfig builds the formatter with its identity arguments."""
        logging.config.dictConfig({
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"json": {"()": "logkafka.JsonFormatter", "service_name": "svc", "prefix": ">"}},
            "handlers": {"mem": {"class": "logging.StreamHandler", "formatter": "json", "stream": io.StringIO()}},
            "loggers": {"test.dictconfig.formatter": {"handlers": ["mem"], "propagate": False}},
        })
        lg = logging.getLogger("test.dictconfig.formatter")
        handler = lg.handlers[0]
        try:
            assert isinstance(handler.formatter, JsonFormatter)
            line = handler.formatter.format(make_record())
            assert line.startswith(">")
            assert json.loads(line[1:])["service"] == "svc"
        finally:
            lg.removeHandler(handler)
            handler.close()


class TestSharedInstance:
    def test_two_handlers_same_bytes(self, logged: tuple[logging.Logger, ListHandler]) -> None:
        """One formatter on two handlers writes byte-identical lines for a record."""
        lg, _ = logged
        f = JsonFormatter(service_name="checkout")
        streams = [io.StringIO(), io.StringIO()]
        handlers = [logging.StreamHandler(s) for s in streams]
        for h in handlers:
            h.setFormatter(f)
            lg.addHandler(h)
        try:
            logkafka.bind(correlation_id="c-9")
            lg.info("Order %s", "A-1", extra={"code": "ORDER_PLACED", "items": [1, 2]})
            try:
                raise OrderError("late")
            except OrderError:
                lg.exception("failed")
        finally:
            for h in handlers:
                lg.removeHandler(h)
        first, second = streams[0].getvalue(), streams[1].getvalue()
        assert first == second
        lines = first.splitlines()
        assert len(lines) == 2
        assert json.loads(lines[0])["correlation_id"] == "c-9"
        assert json.loads(lines[1])["error"]["message"] == "late"

    def test_two_formatters_same_bytes(self, logged: tuple[logging.Logger, ListHandler]) -> None:
        """Two formatters with the same settings write byte-identical lines for a record."""
        lg, _ = logged
        streams = [io.StringIO(), io.StringIO()]
        handlers = [logging.StreamHandler(s) for s in streams]
        for h in handlers:
            h.setFormatter(JsonFormatter(environment="prod"))
            lg.addHandler(h)
        try:
            lg.warning("low stock", extra={"sku": "X"})
        finally:
            for h in handlers:
                lg.removeHandler(h)
        assert streams[0].getvalue() == streams[1].getvalue()
        assert json.loads(streams[0].getvalue())["sku"] == "X"


class TestCapture:
    def test_mutable_extras_snapshotted(self) -> None:
        """Changing a dict or list passed in extra after capture does not change what ships."""
        items = [1, 2]
        order = {"id": "A-1", "items": items}
        record = make_record(extra={"order": order, "items": items})
        captured = capture(record)
        items.append(3)
        order["id"] = "B-2"
        order["status"] = "changed"
        assert captured["order"] == {"id": "A-1", "items": [1, 2]}
        data = json.loads(JsonFormatter().encode_captured(captured))
        assert data["order"] == {"id": "A-1", "items": [1, 2]}
        assert data["items"] == [1, 2]

    def test_message_rendered_at_capture(self) -> None:
        """The message is rendered from the arguments as they were at capture."""
        cart = ["apple"]
        captured = capture(make_record("cart %s", (cart,)))
        cart.append("pear")
        assert json.loads(JsonFormatter().encode_captured(captured))["message"] == "cart ['apple']"

    def test_context_at_capture(self) -> None:
        """The bound context is the one at capture, whatever is bound later."""
        logkafka.bind(step="before")
        captured = capture(make_record())
        logkafka.bind(step="after", late=True)
        data = json.loads(JsonFormatter().encode_captured(captured))
        assert data["step"] == "before"
        assert "late" not in data

    def test_exception_at_capture(self) -> None:
        """The exception's type, message and trace are those at capture."""
        exc = OrderError("original")
        captured = capture(make_record(exc_info=exc_info_of(exc)))
        exc.args = ("changed",)
        error = json.loads(JsonFormatter().encode_captured(captured))["error"]
        assert error["message"] == "original"
        assert "original" in error["stack_trace"]
        assert "changed" not in error["stack_trace"]

    def test_event_id_shared_with_record(self) -> None:
        """The captured record and the original record give the same event_id."""
        f = JsonFormatter()
        record = make_record()
        captured = capture(record)
        assert json.loads(f.encode_captured(captured))["event_id"] == out(f, record)["event_id"]


STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__)


def _records_for_untouched() -> list[logging.LogRecord]:
    d: dict[str, Any] = {"k": [1, {"x": decimal.Decimal("1")}]}
    d["self"] = d
    return [
        make_record(),
        make_record("Order %s %s", ("A", [1, 2])),
        make_record({"message": "m", "cart": [1], 5: "x"}),
        make_record(extra={"code": "C", "items": [1, 2], "nested": {"a": {1, 2}}, "level": "x"}),
        make_record(extra={"cyclic": d, "when": datetime.datetime(2026, 1, 1), "b": b"\xff"}),
        make_record("fail", exc_info=exc_info_of(OrderError("boom")), stack_info="Stack"),
        make_record("bad %d", ("x",)),
        make_record("bad \ud800", extra={"s": "\udc80"}),
    ]


class TestRecordUntouched:
    @pytest.mark.parametrize("index", range(len(_records_for_untouched())))
    @pytest.mark.parametrize("how", ["format", "encode", "to_dict"])
    def test_only_event_id_added(self, index: int, how: str) -> None:
        """Formatting adds only the private _lk_eid to the record and changes none of its values."""
        logkafka.bind(tenant="t")
        record = _records_for_untouched()[index]
        before = dict(record.__dict__)
        own = [k for k in before if k in ("msg", "args") or k not in STANDARD_ATTRS]  # what the caller passed
        deep_before = {k: repr(copy.deepcopy(before[k])) for k in own}
        getattr(JsonFormatter(), how)(record)
        after = dict(record.__dict__)
        assert isinstance(after.pop(EID), int)
        assert list(after) == list(before)
        for key, value in before.items():
            assert after[key] is value, key
        for key in own:
            assert repr(after[key]) == deep_before[key], key

    def test_formatted_twice_same_bytes(self) -> None:
        """Two formatters, one after the other, give a record the same bytes: everything comes from the record
        as captured (its time, its event id), nothing from the moment or the formatter it is formatted by."""
        record = make_record(extra={"items": [1]}, exc_info=exc_info_of(OrderError("x")))
        first = JsonFormatter().encode(record)
        time.sleep(0.002)
        assert JsonFormatter().encode(record) == first


class TestIdentity:
    def test_defaults_without_environment(self) -> None:
        """With no setting and no environment: unknown_service:python, unknown, unknown, the host name."""
        assert JsonFormatter().identity == {
            "service": "unknown_service:python", "environment": "unknown", "version": "unknown",
            "instance_id": socket.gethostname(),
        }

    def test_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """SERVICE_NAME, ENVIRONMENT, APP_VERSION and SERVICE_INSTANCE_ID give the identity."""
        monkeypatch.setenv("SERVICE_NAME", "env-svc")
        monkeypatch.setenv("ENVIRONMENT", "staging")
        monkeypatch.setenv("APP_VERSION", "9.9")
        monkeypatch.setenv("SERVICE_INSTANCE_ID", "pod-3")
        data = out(JsonFormatter(), make_record())
        assert (data["service"], data["environment"], data["version"], data["instance_id"]) == (
            "env-svc", "staging", "9.9", "pod-3")

    def test_otel_service_name_wins(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_SERVICE_NAME wins over SERVICE_NAME."""
        monkeypatch.setenv("SERVICE_NAME", "plain")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "otel")
        assert out(JsonFormatter(), make_record())["service"] == "otel"

    def test_arguments_win(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Explicit arguments win over the environment."""
        for name in IDENTITY_ENV:
            monkeypatch.setenv(name, f"env-{name}")
        f = JsonFormatter(service_name="s", environment="e", version="v", instance_id="i")
        assert f.identity == {"service": "s", "environment": "e", "version": "v", "instance_id": "i"}
        assert out(f, make_record())["service"] == "s"

    def test_partial_arguments(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Settings not given still come from the environment."""
        monkeypatch.setenv("ENVIRONMENT", "prod")
        f = JsonFormatter(service_name="s")
        assert (f.identity["service"], f.identity["environment"]) == ("s", "prod")

    @pytest.mark.parametrize("setting", ["service_name", "environment", "version", "instance_id"])
    @pytest.mark.parametrize("bad", ["", 5, b"svc", ["svc"]])
    def test_bad_value(self, setting: str, bad: Any) -> None:
        """An empty or non-string identity value raises ValueError naming the setting."""
        with pytest.raises(ValueError, match=f"^{setting}:"):
            JsonFormatter(**{setting: bad})
