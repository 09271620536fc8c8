"""Field-name presets (``fields``): the formatter's record renamed for ECS, Datadog, OpenTelemetry (pure logic)."""

from __future__ import annotations

import copy
import datetime
import logging
import sys
from typing import Any

import orjson
import pytest

from logkafka import JsonFormatter
from logkafka import _presets as presets_module
from logkafka._presets import ECS_VERSION, PRESETS, apply_preset, check_preset, severity_number
from logkafka._record import CORE_FIELDS

TS = "2026-11-23T09:45:02.781Z"
TS_NANO = 1_795_427_102_781_000_000  # TS as nanoseconds since the epoch
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
DD_TRACE = "11803532876627986230"  # 0xa3ce929d0e0e4736, TRACE's lower 64 bits
DD_SPAN = "67667974448284343"  # 0x00f067aa0ba902b7
EID = "0193a1b2-c3d4-8e5f-a6b7-000000000042"
STACK = 'Traceback (most recent call last):\n  File "orders.py", line 87\npayments.CardDeclined: card declined'
STACK_INFO = 'Stack (most recent call last):\n  File "orders.py", line 86, in place_order'

# An application record as JsonFormatter renders it: its own fields, the bound context,
# the trace, the error, then the extras.
APP: dict[str, Any] = {
    "timestamp": TS,
    "level": "ERROR",
    "logger": "checkout.orders",
    "message": "Payment for order 42 failed",
    "code": "PAYMENT_FAILED",
    "service": "checkout",
    "environment": "production",
    "version": "1.4.2",
    "host": "web-7",
    "instance_id": "web-7-a",
    "process": 4242,
    "thread": "MainThread",
    "module": "orders",
    "function": "place_order",
    "line": 87,
    "event_id": EID,
    "correlation_id": "req-1",
    "tenant_id": "acme",
    "user_id": "u-17",
    "trace_id": TRACE,
    "span_id": SPAN,
    "error": {"type": "payments.CardDeclined", "message": "card declined", "stack_trace": STACK},
    "stack_info": STACK_INFO,
    "http.method": "POST",
    "http.status_code": 402,
    "http.path": "/orders/42/pay",
    "http.user_agent": "curl/8.5.0",
    "client.ip": "203.0.113.7",
    "duration": 0.0123,
    "amount": 99.5,
    "logkafka_repaired": True,
}

# An audit record: the formatter's own fields, then the audit members.
AUDIT: dict[str, Any] = {
    "timestamp": "2026-11-23T09:45:03.000Z",
    "level": "INFO",
    "logger": "logkafka.audit",
    "message": "role admin granted to u-99",
    "service": "checkout",
    "environment": "production",
    "version": "1.4.2",
    "host": "web-7",
    "instance_id": "web-7-a",
    "process": 4242,
    "thread": "MainThread",
    "module": "admin",
    "function": "grant",
    "line": 12,
    "event_id": EID,
    "stream": "audit",
    "event_type": "authorization",
    "action": "role.grant",
    "actor": {"type": "user", "id": "u-17"},
    "resource": {"type": "role", "id": "admin"},
    "outcome": "success",
    "decision": "allow",
    "tenant_id": "acme",
    "user_id": "u-17",
    "ip_address": "198.51.100.4",
    "user_agent": "Mozilla/5.0",
    "diff": {"roles": {"added": ["admin"]}},
    "context": {"ticket": "SEC-7"},
}

ECS_APP = {
    "@timestamp": TS,
    "log.level": "ERROR",
    "message": "Payment for order 42 failed",
    "ecs.version": "8.11.0",
    "log.logger": "checkout.orders",
    "event.code": "PAYMENT_FAILED",
    "service.name": "checkout",
    "event.dataset": "checkout.log",
    "service.environment": "production",
    "service.version": "1.4.2",
    "host.hostname": "web-7",
    "service.node.name": "web-7-a",
    "process.pid": 4242,
    "process.thread.name": "MainThread",
    "log.origin.file.name": "orders",
    "log.origin.function": "place_order",
    "log.origin.file.line": 87,
    "event.id": EID,
    "correlation_id": "req-1",
    "organization.id": "acme",
    "user.id": "u-17",
    "trace.id": TRACE,
    "span.id": SPAN,
    "error.type": "payments.CardDeclined",
    "error.message": "card declined",
    "error.stack_trace": STACK,
    "stack_info": STACK_INFO,
    "http.request.method": "POST",
    "http.response.status_code": 402,
    "url.path": "/orders/42/pay",
    "user_agent.original": "curl/8.5.0",
    "client.ip": "203.0.113.7",
    "event.duration": 12_300_000,
    "amount": 99.5,
    "logkafka_repaired": True,
}

ECS_AUDIT = {
    "@timestamp": "2026-11-23T09:45:03.000Z",
    "log.level": "INFO",
    "message": "role admin granted to u-99",
    "ecs.version": "8.11.0",
    "log.logger": "logkafka.audit",
    "service.name": "checkout",
    "event.dataset": "checkout.log",
    "service.environment": "production",
    "service.version": "1.4.2",
    "host.hostname": "web-7",
    "service.node.name": "web-7-a",
    "process.pid": 4242,
    "process.thread.name": "MainThread",
    "log.origin.file.name": "admin",
    "log.origin.function": "grant",
    "log.origin.file.line": 12,
    "event.id": EID,
    "stream": "audit",
    "event_type": "authorization",
    "event.action": "role.grant",
    "actor": {"type": "user", "id": "u-17"},
    "resource": {"type": "role", "id": "admin"},
    "event.outcome": "success",
    "decision": "allow",
    "organization.id": "acme",
    "user.id": "u-17",
    "client.ip": "198.51.100.4",
    "user_agent.original": "Mozilla/5.0",
    "diff": {"roles": {"added": ["admin"]}},
    "context": {"ticket": "SEC-7"},
}

DATADOG_APP = {
    "timestamp": TS,
    "status": "error",
    "logger.name": "checkout.orders",
    "message": "Payment for order 42 failed",
    "code": "PAYMENT_FAILED",
    "service": "checkout",
    "env": "production",
    "version": "1.4.2",
    "host": "web-7",
    "instance_id": "web-7-a",
    "process": 4242,
    "logger.thread_name": "MainThread",
    "module": "orders",
    "logger.method_name": "place_order",
    "line": 87,
    "event_id": EID,
    "correlation_id": "req-1",
    "tenant_id": "acme",
    "usr.id": "u-17",
    "trace_id": TRACE,
    "dd.trace_id": DD_TRACE,
    "span_id": SPAN,
    "dd.span_id": DD_SPAN,
    "error.kind": "payments.CardDeclined",
    "error.message": "card declined",
    "error.stack": STACK,
    "stack_info": STACK_INFO,
    "http.method": "POST",
    "http.status_code": 402,
    "http.url_details.path": "/orders/42/pay",
    "http.useragent": "curl/8.5.0",
    "network.client.ip": "203.0.113.7",
    "duration": 12_300_000,
    "amount": 99.5,
    "logkafka_repaired": True,
}

DATADOG_AUDIT = {
    "timestamp": "2026-11-23T09:45:03.000Z",
    "status": "info",
    "logger.name": "logkafka.audit",
    "message": "role admin granted to u-99",
    "service": "checkout",
    "env": "production",
    "version": "1.4.2",
    "host": "web-7",
    "instance_id": "web-7-a",
    "process": 4242,
    "logger.thread_name": "MainThread",
    "module": "admin",
    "logger.method_name": "grant",
    "line": 12,
    "event_id": EID,
    "stream": "audit",
    "event_type": "authorization",
    "evt.name": "role.grant",
    "actor": {"type": "user", "id": "u-17"},
    "resource": {"type": "role", "id": "admin"},
    "evt.outcome": "success",
    "decision": "allow",
    "tenant_id": "acme",
    "usr.id": "u-17",
    "network.client.ip": "198.51.100.4",
    "http.useragent": "Mozilla/5.0",
    "diff": {"roles": {"added": ["admin"]}},
    "context": {"ticket": "SEC-7"},
}

OTEL_APP = {
    "timestamp": TS,
    "time_unix_nano": TS_NANO,
    "severity_text": "ERROR",
    "severity_number": 17,
    "body": "Payment for order 42 failed",
    "event_name": "PAYMENT_FAILED",
    "trace_id": TRACE,
    "span_id": SPAN,
    "resource": {
        "service.name": "checkout",
        "deployment.environment.name": "production",
        "service.version": "1.4.2",
        "host.name": "web-7",
        "service.instance.id": "web-7-a",
        "process.pid": 4242,
    },
    "instrumentation_scope": {"name": "checkout.orders"},
    "attributes": {
        "thread.name": "MainThread",
        "code.namespace": "orders",
        "code.function.name": "place_order",
        "code.line.number": 87,
        "log.record.uid": EID,
        "correlation_id": "req-1",
        "tenant_id": "acme",
        "user.id": "u-17",
        "exception.type": "payments.CardDeclined",
        "exception.message": "card declined",
        "exception.stacktrace": STACK,
        "code.stacktrace": STACK_INFO,
        "http.request.method": "POST",
        "http.response.status_code": 402,
        "url.path": "/orders/42/pay",
        "user_agent.original": "curl/8.5.0",
        "client.address": "203.0.113.7",
        "duration": 0.0123,
        "amount": 99.5,
        "logkafka_repaired": True,
    },
}

OTEL_AUDIT = {
    "timestamp": "2026-11-23T09:45:03.000Z",
    "time_unix_nano": 1_795_427_103_000_000_000,
    "severity_text": "INFO",
    "severity_number": 9,
    "body": "role admin granted to u-99",
    "resource": {
        "service.name": "checkout",
        "deployment.environment.name": "production",
        "service.version": "1.4.2",
        "host.name": "web-7",
        "service.instance.id": "web-7-a",
        "process.pid": 4242,
    },
    "instrumentation_scope": {"name": "logkafka.audit"},
    "attributes": {
        "thread.name": "MainThread",
        "code.namespace": "admin",
        "code.function.name": "grant",
        "code.line.number": 12,
        "log.record.uid": EID,
        "stream": "audit",
        "event_type": "authorization",
        "action": "role.grant",
        "actor": {"type": "user", "id": "u-17"},
        "resource": {"type": "role", "id": "admin"},
        "outcome": "success",
        "decision": "allow",
        "tenant_id": "acme",
        "user.id": "u-17",
        "client.address": "198.51.100.4",
        "user_agent.original": "Mozilla/5.0",
        "diff": {"roles": {"added": ["admin"]}},
        "context": {"ticket": "SEC-7"},
    },
}

EXPECTED = {
    ("ecs", "app"): ECS_APP, ("ecs", "audit"): ECS_AUDIT,
    ("datadog", "app"): DATADOG_APP, ("datadog", "audit"): DATADOG_AUDIT,
    ("otel", "app"): OTEL_APP, ("otel", "audit"): OTEL_AUDIT,
}
RECORDS = {"app": APP, "audit": AUDIT}
SHAPED = ("ecs", "datadog", "otel")


def assert_exact(out: dict[str, Any], expected: dict[str, Any]) -> None:
    """Equal, in the same key order (nested dicts too)."""
    assert out == expected
    assert orjson.dumps(out) == orjson.dumps(expected)  # orjson keeps insertion order: same bytes, same order


def plain(preset: str, out: dict[str, Any]) -> dict[str, Any]:
    """The fields of a preset's output as one flat dict (otel's attributes and resource merged in)."""
    if preset != "otel":
        return out
    flat = {k: v for k, v in out.items() if k not in ("attributes", "resource")}
    return {**flat, **out["resource"], **out["attributes"]}


# -- the setting ---------------------------------------------------------------------------

def test_presets_and_check_preset() -> None:
    assert PRESETS == ("default", "ecs", "datadog", "otel")
    for name in PRESETS:
        assert check_preset(name) == name


@pytest.mark.parametrize("bad", ["elk", "ECS", "", " ecs", None, 1, ["ecs"], b"ecs"])
def test_unknown_preset_is_a_value_error_naming_fields(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"^fields: expected one of 'default', 'ecs', 'datadog', 'otel', got "):
        check_preset(bad)


def test_apply_unknown_preset_names_fields() -> None:
    with pytest.raises(ValueError, match=r"^fields: .*got 'elk'$"):
        apply_preset("elk", dict(APP))


# -- whole records -------------------------------------------------------------------------

def test_default_returns_the_same_object_unchanged() -> None:
    d = copy.deepcopy(APP)
    assert apply_preset("default", d) is d
    assert apply_preset("default", d, logging.ERROR) is d
    assert d == APP


@pytest.mark.parametrize("kind", ["app", "audit"])
@pytest.mark.parametrize("preset", SHAPED)
def test_typical_record(preset: str, kind: str) -> None:
    levelno = logging.ERROR if kind == "app" else logging.INFO
    assert_exact(apply_preset(preset, copy.deepcopy(RECORDS[kind]), levelno), EXPECTED[preset, kind])
    # without levelno, the level name gives the same severity number
    assert_exact(apply_preset(preset, copy.deepcopy(RECORDS[kind])), EXPECTED[preset, kind])


def test_expected_ids_and_times_are_right() -> None:
    """The literal values the expected records use, derived another way."""
    assert DD_TRACE == str(int(TRACE, 16) & (2**64 - 1))
    assert DD_SPAN == str(int(SPAN, 16))
    when = datetime.datetime(2026, 11, 23, 9, 45, 2, 781000, tzinfo=datetime.timezone.utc)
    assert TS_NANO == int(when.timestamp()) * 10**9 + 781 * 10**6
    assert TS == when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.mark.parametrize("kind", ["app", "audit"])
@pytest.mark.parametrize("preset", SHAPED)
def test_input_is_never_mutated(preset: str, kind: str) -> None:
    d = copy.deepcopy(RECORDS[kind])
    nested = {k: v for k, v in d.items() if isinstance(v, dict)}
    out = apply_preset(preset, d, logging.INFO)
    assert out is not d
    assert d == RECORDS[kind]
    assert list(d) == list(RECORDS[kind])
    for k, v in nested.items():
        assert d[k] is v
        assert v == RECORDS[kind][k]


@pytest.mark.parametrize("kind", ["app", "audit"])
@pytest.mark.parametrize("preset", PRESETS)
def test_every_output_encodes_with_orjson(preset: str, kind: str) -> None:
    out = apply_preset(preset, copy.deepcopy(RECORDS[kind]), logging.WARNING)
    assert orjson.loads(orjson.dumps(out)) == out


@pytest.mark.parametrize("preset", SHAPED)
def test_no_value_is_lost(preset: str) -> None:
    """Every scalar of the input is somewhere in the output (the error's members included)."""
    for record in RECORDS.values():
        out = plain(preset, apply_preset(preset, copy.deepcopy(record)))
        values = list(out.values())
        values += [member for value in out.values() if isinstance(value, dict) for member in value.values()]
        for key, value in record.items():
            if key == "level" and preset == "datadog":
                value = value.lower()
            if key == "duration":
                continue  # converted: test_duration_*
            if isinstance(value, dict) and key == "error":
                for member in value.values():
                    assert member in values, (preset, key, member)
            else:
                assert value in values, (preset, key, value)


# -- unknown keys and collisions ------------------------------------------------------------

@pytest.mark.parametrize("preset", SHAPED)
def test_unknown_keys_keep_name_and_value(preset: str) -> None:
    order = {"id": 42, "items": [1, 2]}
    d = {"timestamp": TS, "level": "INFO", "message": "m", "order": order, "a.b.c": None, "x": 1.5,
         "extra.level": "kept", "labels": {"k": "v"}, "truncated": True, "original_size": 2_000_000}
    out = plain(preset, apply_preset(preset, d))
    for key in ("order", "a.b.c", "x", "extra.level", "labels", "truncated", "original_size"):
        assert out[key] == d[key]
    assert out["order"] is order


def test_ecs_collisions_keep_both() -> None:
    d = {"event.dataset": "mine", "timestamp": TS, "@timestamp": "theirs", "level": "INFO", "message": "m",
         "user_id": "u-1", "user.id": "their-user", "ecs.version": "1.6.0", "service": "svc",
         "process": 7, "process.pid": 8}
    out = apply_preset("ecs", d)
    assert_exact(out, {"@timestamp": "theirs", "log.level": "INFO", "message": "m", "ecs.version": "1.6.0",
                       "event.dataset": "mine", "timestamp": TS, "user_id": "u-1", "user.id": "their-user",
                       "service.name": "svc", "process": 7, "process.pid": 8})


def test_datadog_collisions_keep_both() -> None:
    d = {"level": "WARNING", "status": "open", "logger": "a", "logger.name": "b", "trace_id": TRACE,
         "dd.trace_id": "123", "span_id": SPAN, "dd.span_id": "456", "environment": "prod", "env": "dev"}
    out = apply_preset("datadog", d)
    assert out == {"level": "WARNING", "status": "open", "logger": "a", "logger.name": "b", "trace_id": TRACE,
                   "dd.trace_id": "123", "span_id": SPAN, "dd.span_id": "456", "environment": "prod",
                   "env": "dev"}


def test_otel_collisions_keep_both() -> None:
    d = {"message": "m", "thread": "T1", "thread.name": "theirs", "user_id": "u", "user.id": "v",
         "body": "an extra called body", "resource": "an extra called resource", "service": "svc"}
    out = apply_preset("otel", d)
    assert out == {"body": "m", "resource": {"service.name": "svc"},
                   "attributes": {"thread": "T1", "thread.name": "theirs", "user_id": "u", "user.id": "v",
                                  "body": "an extra called body", "resource": "an extra called resource"}}


@pytest.mark.parametrize("preset", SHAPED)
def test_error_whole_when_a_member_target_is_taken(preset: str) -> None:
    error = {"type": "E", "message": "m", "stack_trace": "tb"}
    taken = {"ecs": "error.message", "datadog": "error.stack", "otel": "exception.type"}[preset]
    out = plain(preset, apply_preset(preset, {"error": error, taken: "theirs"}))
    assert out["error"] == error
    assert out[taken] == "theirs"


@pytest.mark.parametrize("preset", SHAPED)
def test_error_shapes(preset: str) -> None:
    prefix, stack = {"ecs": ("error.", "error.stack_trace"), "datadog": ("error.", "error.stack"),
                     "otel": ("exception.", "exception.stacktrace")}[preset]
    # members that are None are left out (the formatter's error for a record with exc_text only)
    out = plain(preset, apply_preset(preset, {"error": {"type": None, "message": None, "stack_trace": "tb"}}))
    assert {k: v for k, v in out.items() if k.startswith(prefix)} == {stack: "tb"}
    assert "error" not in out
    # anything but the formatter's error dict stays whole under "error"
    for odd in ("just text", {"type": "E", "code": 3}, ["E"], None):
        out = plain(preset, apply_preset(preset, {"error": odd}))
        assert out["error"] == odd
        assert not [k for k in out if k.startswith(prefix)]


@pytest.mark.parametrize("preset", SHAPED)
@pytest.mark.parametrize(("first", "second"), [("client.ip", "ip_address"), ("http.user_agent", "user_agent")])
def test_two_fields_for_one_name_first_of_pair_wins(preset: str, first: str, second: str) -> None:
    target = {
        ("ecs", "client.ip"): "client.ip", ("datadog", "client.ip"): "network.client.ip",
        ("otel", "client.ip"): "client.address", ("ecs", "http.user_agent"): "user_agent.original",
        ("datadog", "http.user_agent"): "http.useragent", ("otel", "http.user_agent"): "user_agent.original",
    }[preset, first]
    for d in ({first: "A", second: "B"}, {second: "B", first: "A"}):  # in either order
        out = plain(preset, apply_preset(preset, d))
        assert out[target] == "A"
        assert out[second] == "B"
        assert list(out.values()).count("A") == 1 and list(out.values()).count("B") == 1
    out = plain(preset, apply_preset(preset, {second: "B"}))  # alone, the second one takes the name
    assert {k: v for k, v in out.items() if v == "B"} == {target: "B"}


# -- duration --------------------------------------------------------------------------------

@pytest.mark.parametrize(("preset", "target"), [("ecs", "event.duration"), ("datadog", "duration")])
@pytest.mark.parametrize(("key", "value", "ns"), [
    ("duration", 0.0123, 12_300_000),
    ("duration", 2, 2_000_000_000),
    ("duration", 1.1, 1_100_000_000),
    ("duration", 0.0, 0),
    ("duration", -0.5, -500_000_000),
    ("duration", 3e-9, 3),
    ("duration", 0.00013, 130_000),  # 129999.99999999999 as a float product: rounded, not cut
    ("duration_ms", 12.3, 12_300_000),
    ("duration_ms", 5, 5_000_000),
    ("duration_ms", 0.0005, 500),
    ("duration_ms", 1.001, 1_001_000),  # 1000999.9999999999 as a float product
])
def test_duration_to_integer_nanoseconds(preset: str, target: str, key: str, value: Any, ns: int) -> None:
    out = apply_preset(preset, {"message": "m", key: value})
    assert out[target] == ns
    assert type(out[target]) is int
    if key != target:
        assert key not in out


@pytest.mark.parametrize("preset", ["ecs", "datadog"])
@pytest.mark.parametrize("value", [True, "fast", None, float("nan"), float("inf"), 1e300, 10**13, [1], {"s": 1}])
def test_duration_that_cannot_convert_stays_as_is(preset: str, value: Any) -> None:
    for key in ("duration", "duration_ms"):
        out = apply_preset(preset, {key: value})
        assert list(out) == (["ecs.version", key] if preset == "ecs" else [key])
        assert out[key] is value


@pytest.mark.parametrize(("preset", "target"), [("ecs", "event.duration"), ("datadog", "duration")])
def test_duration_wins_over_duration_ms(preset: str, target: str) -> None:
    for d in ({"duration": 0.25, "duration_ms": 250}, {"duration_ms": 250, "duration": 0.25}):
        out = apply_preset(preset, d)
        out.pop("ecs.version", None)
        assert out == {target: 250_000_000, "duration_ms": 250}
    # even when duration itself cannot convert: duration_ms keeps its name
    out = apply_preset(preset, {"duration": "slow", "duration_ms": 250})
    out.pop("ecs.version", None)
    assert out == {"duration": "slow", "duration_ms": 250}


def test_ecs_duration_kept_when_event_duration_is_taken() -> None:
    out = apply_preset("ecs", {"duration": 0.5, "event.duration": 7})
    assert out == {"ecs.version": ECS_VERSION, "duration": 0.5, "event.duration": 7}


def test_otel_keeps_durations_as_attributes() -> None:
    out = apply_preset("otel", {"duration": 0.0123, "duration_ms": 12.3})
    assert out["attributes"] == {"duration": 0.0123, "duration_ms": 12.3}


# -- levels ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("levelno", "number"), [
    (10, 5), (20, 9), (25, 12), (30, 13), (40, 17), (50, 21),
    (0, 0), (-5, 0), (1, 1), (5, 1), (9, 1), (11, 6), (12, 7), (13, 8), (19, 8), (21, 10), (41, 18), (53, 24),
    (54, 24), (100, 24),
])
def test_severity_number_from_levelno(levelno: int, number: int) -> None:
    assert severity_number(levelno) == number
    assert severity_number(levelno, "INFO") == number  # levelno wins over the name
    out = apply_preset("otel", {"level": "whatever", "message": "m"}, levelno)
    assert out["severity_number"] == number
    assert out["severity_text"] == "whatever"


def test_severity_number_matches_the_opentelemetry_sdk_from_debug_up() -> None:
    from opentelemetry.sdk._logs._internal import std_to_otel

    for levelno in range(10, 80):
        assert severity_number(levelno) == std_to_otel(levelno).value, levelno


@pytest.mark.parametrize(("name", "number"), [
    ("DEBUG", 5), ("INFO", 9), ("WARNING", 13), ("WARN", 13), ("ERROR", 17), ("CRITICAL", 21), ("FATAL", 21),
    ("NOTSET", 0), ("Level 25", 12), ("Level 5", 1), ("Level x", 0), ("Level ", 0), ("info", 0), ("NOPE", 0),
    (None, 0), (20, 0),
])
def test_severity_number_from_the_level_name(name: Any, number: int) -> None:
    assert severity_number(None, name) == number


def test_severity_number_of_a_registered_custom_level(monkeypatch: pytest.MonkeyPatch) -> None:
    assert severity_number(None, "NOTICE_PRESETS_TEST") == 0
    monkeypatch.setattr(logging, "_levelToName", dict(logging._levelToName))
    monkeypatch.setattr(logging, "_nameToLevel", dict(logging._nameToLevel))
    logging.addLevelName(35, "NOTICE_PRESETS_TEST")
    assert severity_number(None, "NOTICE_PRESETS_TEST") == 16


def test_otel_severity_number_only_with_a_level() -> None:
    assert "severity_number" not in apply_preset("otel", {"message": "m"})
    assert apply_preset("otel", {"message": "m"}, 30)["severity_number"] == 13


@pytest.mark.parametrize(("level", "status"), [
    ("INFO", "info"), ("WARNING", "warning"), ("CRITICAL", "critical"), ("Level 25", "level 25"), (20, 20),
])
def test_datadog_status_is_lower_case(level: Any, status: Any) -> None:
    assert apply_preset("datadog", {"level": level}) == {"status": status}


def test_ecs_log_level_as_logged() -> None:
    for level in ("INFO", "WARNING", "Level 25"):
        assert apply_preset("ecs", {"level": level})["log.level"] == level


# -- other conversions -----------------------------------------------------------------------

@pytest.mark.parametrize(("ts", "nano"), [
    (TS, TS_NANO),
    ("1970-01-01T00:00:00.000Z", 0),
    ("2026-11-23T09:45:02.999Z", TS_NANO + 218_000_000),
    ("2024-02-29T23:59:59.001Z", int(datetime.datetime(2024, 2, 29, 23, 59, 59, tzinfo=datetime.timezone.utc)
                                     .timestamp()) * 10**9 + 1_000_000),
    ("2026-13-23T09:45:02.781Z", None),  # no 13th month
    ("2026-11-23 09:45:02.781Z", None),
    ("2026-11-23T09:45:02.78Z", None),
    ("2026-11-23T09:45:02.781+", None),
    ("2026-11-23T09:45+01.781Z", None),  # an offset, not seconds
    ("2026-11-23T09:45:02.\uff17\uff18\uff11Z", None),  # full-width digits
    ("yesterday", None),
    (1795427102.781, None),
])
def test_otel_time_unix_nano(ts: Any, nano: int | None) -> None:
    for _ in range(2):  # the second time from the per-second cache
        out = apply_preset("otel", {"timestamp": ts})
        assert out["timestamp"] == ts
        assert out.get("time_unix_nano") == nano
    assert apply_preset("otel", {"timestamp": TS})["time_unix_nano"] == TS_NANO  # the cache moved on


@pytest.mark.parametrize(("trace", "span", "dd"), [
    (TRACE, SPAN, {"dd.trace_id": DD_TRACE, "dd.span_id": DD_SPAN}),
    ("0" * 32, "0" * 16, {"dd.trace_id": "0", "dd.span_id": "0"}),
    ("f" * 32, "F" * 16, {"dd.trace_id": str(2**64 - 1), "dd.span_id": str(2**64 - 1)}),
    ("ab" * 8, "ab" * 4, {}),  # not 32 / 16 digits
    ("0x" + "a" * 30, "0x" + "a" * 14, {}),
    ("g" * 32, " " + "a" * 15, {}),
    (123, None, {}),
])
def test_datadog_decimal_ids(trace: Any, span: Any, dd: dict[str, str]) -> None:
    out = apply_preset("datadog", {"trace_id": trace, "span_id": span})
    assert {k: v for k, v in out.items() if k.startswith("dd.")} == dd
    assert out["trace_id"] == trace and out["span_id"] == span


def test_ecs_outcome_only_for_ecs_values() -> None:
    for value in ("success", "failure", "unknown"):
        assert apply_preset("ecs", {"outcome": value}) == {"ecs.version": ECS_VERSION, "event.outcome": value}
    for other in ("denied", "SUCCESS", True, None):
        assert apply_preset("ecs", {"outcome": other}) == {"ecs.version": ECS_VERSION, "outcome": other}
    assert apply_preset("datadog", {"outcome": "denied"}) == {"evt.outcome": "denied"}


def test_ecs_event_dataset_only_for_a_text_service() -> None:
    assert "event.dataset" not in apply_preset("ecs", {"service": 3})
    assert apply_preset("ecs", {"service": "svc"})["event.dataset"] == "svc.log"


def test_otel_shape_of_a_bare_record() -> None:
    assert apply_preset("otel", {}) == {"resource": {}, "attributes": {}}
    assert apply_preset("ecs", {}) == {"ecs.version": ECS_VERSION}
    assert apply_preset("datadog", {}) == {}


# -- the tables ------------------------------------------------------------------------------

@pytest.mark.parametrize("table", ["_ECS", "_DATADOG", "_OTEL"])
def test_no_rename_target_is_another_fields_source(table: str) -> None:
    """The collision rule (a taken name is one the record has) needs targets that are never renamed away."""
    route = getattr(presets_module, table)
    targets = {r for r in route.values() if isinstance(r, str)}  # otel: the attributes' names
    assert len(targets) > 5
    assert not targets & set(route)


@pytest.mark.parametrize("preset", SHAPED)
def test_formatter_fields_all_have_a_place(preset: str) -> None:
    """A real JsonFormatter record: only the fields each preset keeps deliberately keep their names."""
    formatter = JsonFormatter(service_name="checkout", environment="production", version="1.4.2",
                              instance_id="web-7-a")
    try:
        raise KeyError("k")
    except KeyError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("checkout.orders", logging.ERROR, __file__, 87, "failed %s", ("x",), exc_info,
                               func="place_order", sinfo="Stack (most recent call last):")
    record.__dict__.update({"code": "PAYMENT_FAILED", "http.method": "POST", "duration": 0.5, "user_id": "u"})
    d = formatter.to_dict(record)
    assert set(d) >= CORE_FIELDS - {"trace_id", "span_id"}
    out = apply_preset(preset, d, record.levelno)
    kept = {
        "ecs": {"message", "stack_info"},
        "datadog": {"timestamp", "message", "code", "service", "version", "host", "instance_id", "process",
                    "module", "line", "event_id", "stack_info"},
        "otel": {"timestamp"},
    }[preset]
    assert CORE_FIELDS & set(plain(preset, out)) == kept
    assert orjson.loads(orjson.dumps(out)) == out
