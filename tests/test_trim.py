"""fit(): a rendered record cut to Kafka's size limit (pure logic, no broker)."""

from __future__ import annotations

import random
import re
from typing import Any

import orjson
import pytest

from logkafka._trim import MIN_LIMIT, OVERHEAD, fit, value_limit

LIMIT = 1_000_000 - OVERHEAD
SMALL = {
    "timestamp": "2025-01-02T03:04:05.678Z", "level": "ERROR", "logger": "app.orders", "code": "ORD-17",
    "service": "orders", "event_id": "0194c7a2-5b1e-8f3d-9a10-00000000002a",
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
}
MARK = re.compile("…\\[cut (\\d+) bytes\\]…")


def record(message: str = "hello", **extra: Any) -> dict[str, Any]:
    """A record as JsonFormatter renders it: its own fields first, then the extras."""
    rec: dict[str, Any] = {"timestamp": SMALL["timestamp"], "level": SMALL["level"], "logger": SMALL["logger"],
                           "message": message, "code": SMALL["code"], "service": SMALL["service"],
                           "environment": "prod", "host": "web-1", "process": 4242, "thread": "MainThread",
                           "line": 17, "event_id": SMALL["event_id"], "trace_id": SMALL["trace_id"],
                           "span_id": SMALL["span_id"]}
    rec.update(extra)
    return rec


def fitted(rec: dict[str, Any], limit: int = LIMIT) -> tuple[bytes, dict[str, Any]]:
    """fit() of the record's bytes, checked for what holds for every cut JSON record."""
    value = orjson.dumps(rec)
    assert len(value) > limit, "the test record must be too big"
    out = fit(value, limit)
    assert len(out) <= limit
    obj = orjson.loads(out)  # valid UTF-8 and valid JSON
    assert isinstance(obj, dict)
    keys = list(obj)
    assert keys[-2:] == ["truncated", "original_size"]
    assert obj["truncated"] is True
    assert obj["original_size"] == len(value)
    original = [k for k in rec if k not in ("truncated", "original_size")]
    assert keys[:-2] == [k for k in original if k in obj]  # not reordered
    for key, small in SMALL.items():
        if key in rec:
            assert obj[key] == small, key
    return out, obj


def split(cut: str, original: str) -> tuple[str, str]:
    """Head and tail around the one marker in ``cut``, checked against ``original``."""
    marks = list(MARK.finditer(cut))
    assert len(marks) == 1, cut[:200]
    mark = marks[0]
    head, tail = cut[:mark.start()], cut[mark.end():]
    assert original.startswith(head)
    assert original.endswith(tail)
    removed = len(original.encode()) - len(head.encode()) - len(tail.encode())
    assert int(mark.group(1)) == removed  # the marker tells exactly what is missing
    return head, tail


def test_value_limit() -> None:
    assert value_limit(1_000_000) == 1_000_000 - OVERHEAD
    assert value_limit(1_000_000, key_size=100) == 1_000_000 - OVERHEAD - 100
    assert value_limit(100) == 0


def test_five_megabyte_message() -> None:
    message = "BEGIN " + "lorem ipsum dolor sit amet " * 200_000 + " FINISH"
    assert len(message) > 5_000_000
    out, obj = fitted(record(message, user_id=7, order={"id": 12, "items": 3}))
    head, tail = split(obj["message"], message)
    assert head.startswith("BEGIN lorem")
    assert tail.endswith("sit amet  FINISH")
    assert len(head) > 100_000 and len(tail) > 100_000
    assert obj["user_id"] == 7 and obj["order"] == {"id": 12, "items": 3}
    assert len(out) > LIMIT - 4096  # the room is used, not wasted


def test_three_megabyte_stack_trace() -> None:
    frames = "".join(f'  File "/srv/app/mod{i}.py", line {i}, in f{i}\n    call(x)\n' for i in range(50_000))
    trace = "Traceback (most recent call last):\n" + frames + "ValueError: bad order 17"
    assert len(trace) > 3_000_000
    rec = record("could not place order", error={"type": "ValueError", "message": "bad order 17",
                                                  "stack_trace": trace})
    _, obj = fitted(rec)
    assert obj["message"] == "could not place order"
    assert obj["error"]["type"] == "ValueError"
    assert obj["error"]["message"] == "bad order 17"
    head, tail = split(obj["error"]["stack_trace"], trace)
    assert head.startswith("Traceback (most recent call last):\n")
    assert tail.endswith("ValueError: bad order 17")


def test_message_and_stack_trace_share_the_room() -> None:
    message = "m" * 2_000_000
    trace = "t" * 2_000_000
    rec = record(message, error={"type": "E", "message": "x", "stack_trace": trace}, stack_info="s" * 30_000)
    _, obj = fitted(rec)
    assert obj["stack_info"] == "s" * 30_000  # under the first pass's floor: kept whole
    sizes = len(obj["message"]), len(obj["error"]["stack_trace"])
    assert min(sizes) > 400_000 and abs(sizes[0] - sizes[1]) < 100  # cut to a common size, biggest first


def test_big_message_cut_before_a_medium_extra() -> None:
    payload = "p" * 40_000
    _, obj = fitted(record("x" * 2_000_000, payload=payload))
    assert obj["payload"] == payload
    split(obj["message"], "x" * 2_000_000)


def test_message_keeps_its_share_when_an_extra_is_huge() -> None:
    message = "M" * 200_000
    payload = "P" * 3_000_000
    out, obj = fitted(record(message, payload=payload))
    head, tail = split(obj["message"], message)
    assert len(head) + len(tail) > LIMIT // 16 - 100  # the first pass stops at limit // 16
    split(obj["payload"], payload)
    assert len(obj["payload"]) > LIMIT // 2
    assert len(out) > LIMIT - 4096


def test_many_medium_extras() -> None:
    extras = {f"field_{i:03d}": f"<{i}>" + "v" * 5_000 + f"</{i}>" for i in range(300)}
    rec = record("short message", user_id="u-1", **extras)
    _, obj = fitted(rec)
    assert obj["message"] == "short message"
    assert obj["user_id"] == "u-1"
    for key, text in extras.items():  # every extra is kept, each cut around the middle
        head, tail = split(obj[key], text)
        assert head.startswith(text[:5]) and tail.endswith(text[-6:])


def test_huge_list_in_extra() -> None:
    items = list(range(600_000))
    rec = record("batch done", items=items, batch={"size": 600_000, "ok": True}, tags=["a", "b"])
    _, obj = fitted(rec)
    assert obj["message"] == "batch done"
    assert obj["batch"] == {"size": 600_000, "ok": True}
    assert obj["tags"] == ["a", "b"]
    preview = obj["items"]
    assert isinstance(preview, str)
    head, tail = split(preview, orjson.dumps(items).decode())
    assert head.startswith("[0,1,2,3,") and tail.endswith(",599999]")


def test_huge_dict_in_extra() -> None:
    table = {f"k{i}": {"v": i, "name": f"n{i}"} for i in range(60_000)}
    _, obj = fitted(record("done", table=table), limit=500_000)
    head, _ = split(obj["table"], orjson.dumps(table).decode())
    assert head.startswith('{"k0":{"v":0,"name":"n0"}')


@pytest.mark.parametrize("limit", range(4_000, 4_040))
def test_multibyte_characters_at_the_cut(limit: int) -> None:
    message = "😀中文ß" * 5_000  # 4, 3, 3 and 2 UTF-8 bytes: every limit cuts somewhere else
    _, obj = fitted(record(message, note="漢字" * 3_000), limit=limit)
    split(obj["message"], message)
    split(obj["note"], "漢字" * 3_000)


def test_escapes_are_counted() -> None:
    message = 'a "quoted"\n\tline\x01\x02' * 200_000  # serialized, many characters take 2 or 6 bytes
    _, obj = fitted(record(message), limit=100_000)
    split(obj["message"], message)


def test_many_tiny_extras_are_dropped_not_the_formatters_fields() -> None:
    rec = record("hello", **{f"x{i}": i for i in range(100_000)})
    out, obj = fitted(rec, limit=50_000)
    assert obj["message"] == "hello"
    assert "x0" in obj or "x99999" in obj  # fields are dropped, not all of them
    assert len(out) > 40_000


def test_pretty_printed_json_is_compacted_without_loss() -> None:
    rec = record("hello", data=list(range(300)), truncated="user's own", original_size=3)
    value = orjson.dumps(rec, option=orjson.OPT_INDENT_2)
    limit = len(orjson.dumps(rec))
    assert len(value) > limit
    out = fit(value, limit)
    assert orjson.loads(out) == rec


def test_existing_marks_move_to_the_end() -> None:
    rec = {"truncated": False, "original_size": 3, **record("y" * 10_000)}
    _, obj = fitted(rec, limit=2_000)
    split(obj["message"], "y" * 10_000)


def test_text_input() -> None:
    text = ("2025-01-02 ERROR app: début " + "données 😀 " * 400_000 + " fin").encode()
    out = fit(text, LIMIT)
    assert len(out) <= LIMIT and len(out) > LIMIT - 8
    decoded = out.decode("utf-8")  # strict: valid UTF-8
    marker = f"…[truncated, original {len(text)} bytes]…"
    assert decoded.count(marker) == 1
    head, tail = decoded.split(marker)
    assert head.startswith("2025-01-02 ERROR app: début ")
    assert tail.endswith(" fin")
    assert text.decode().startswith(head) and text.decode().endswith(tail)


@pytest.mark.parametrize("value", [
    b"\xff\xfe" * 10_000,  # not UTF-8
    b"{" + b"x" * 10_000,  # looks like JSON, is not
    b"[" + b"1," * 10_000 + b"1]",  # JSON, not an object
    b'"' + b"s" * 10_000 + b'"',
    b"{" + b'"a":{' * 2_000 + b"}" * 2_000 + b"}",  # nested deeper than orjson reads
])
def test_other_input_is_cut_as_text(value: bytes) -> None:
    out = fit(value, 2_000)
    assert 0 < len(out) <= 2_000
    out.decode("utf-8")
    assert b"[truncated, original " in out


@pytest.mark.parametrize("limit", [-5, 0, 1, 7, 30, 100, 500, MIN_LIMIT])
def test_tiny_limits_still_fit(limit: int) -> None:
    for value in (orjson.dumps(record("z" * 5_000, big="q" * 5_000)), "😀".encode() * 2_000):
        out = fit(value, limit)
        assert len(out) <= max(limit, 0)
        out.decode("utf-8")


def test_a_record_of_huge_core_fields_still_fits() -> None:
    rec = record("m", logger="L" * 50_000, error={f"k{i}": "e" * 50 for i in range(5_000)})
    out = fit(orjson.dumps(rec), 4_000)
    assert len(out) <= 4_000
    obj = orjson.loads(out)
    assert obj["truncated"] is True and obj["event_id"] == SMALL["event_id"]


def test_at_the_limit_unchanged() -> None:
    value = orjson.dumps(record("w" * 3_000))
    assert fit(value, len(value)) is value
    assert fit(value, len(value) + 1) is value
    text = "é".encode() * 3_000
    assert fit(text, len(text)) is text
    assert len(fit(value, len(value) - 1)) <= len(value) - 1
    assert orjson.loads(fit(value, len(value) - 1))["truncated"] is True


def _random_text(rng: random.Random, size: int) -> str:
    alphabet = rng.choice(["ab c", "ab\n\"\\\t", "é中😀a", "\x00\x1fz", "x"])
    chunk = "".join(rng.choices(alphabet, k=64))
    return (chunk * (size // 64 + 1))[:size]


def _random_value(rng: random.Random) -> Any:
    kind = rng.randrange(6)
    if kind == 0:
        return _random_text(rng, rng.choice([5, 100, 3_000, 60_000]))
    if kind == 1:
        start = rng.randrange(10**6)
        return list(range(start, start + rng.choice([2, 500, 20_000])))
    if kind == 2:
        text = _random_text(rng, 20)
        return {f"k{i}": f"{text}{i}" for i in range(rng.choice([2, 300, 3_000]))}
    return rng.choice([None, True, 3.5, -17, 2**63 - 1])


def test_random_records_and_limits() -> None:
    rng = random.Random(20250102)
    for case in range(200):
        if rng.random() < 0.8:
            extra = {f"e{i}": _random_value(rng) for i in range(rng.choice([0, 3, 40]))}
            rec = record(_random_text(rng, rng.choice([10, 5_000, 200_000])), **extra)
            if rng.random() < 0.5:
                rec["error"] = {"type": "E", "message": _random_text(rng, rng.choice([10, 50_000])),
                                "stack_trace": _random_text(rng, rng.choice([10, 300_000]))}
            value = orjson.dumps(rec)
        else:
            value = _random_text(rng, rng.choice([100, 50_000, 400_000])).encode()
        limit = rng.randint(MIN_LIMIT, max(MIN_LIMIT, len(value) * 5 // 4))  # mostly too big
        out = fit(value, limit)
        assert len(out) <= limit, case
        if len(value) <= limit:
            assert out is value, case
            continue
        out.decode("utf-8")
        if value.startswith(b"{"):
            obj = orjson.loads(out)
            assert obj["truncated"] is True and obj["original_size"] == len(value), case
            assert obj["event_id"] == SMALL["event_id"] and obj["level"] == "ERROR", case


def test_fifty_megabytes() -> None:
    message = "x" * 30_000_000
    rec = record(message, blob="y" * 10_000_000, rows=list(range(1_500_000)))
    value = orjson.dumps(rec)
    assert len(value) > 50_000_000
    _, obj = fitted(rec)
    split(obj["message"], message)
    text = b"t" * 50_000_000
    assert len(fit(text, LIMIT)) <= LIMIT
