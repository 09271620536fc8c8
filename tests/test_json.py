"""orjson is optional: without it (free-threaded CPython has no orjson wheel, or it is blocked) the standard
library writes the same bytes, and records still ship."""

from __future__ import annotations

import datetime
import json
import os
import random
import re
import struct
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from logkafka._json import HAVE_ORJSON, OPT_NON_STR_KEYS, python_dumps
from logkafka._snapshot import to_text
from logkafka.testing import read_topic


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(12 if depth < 4 else 8)
    if kind == 0:
        return struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]  # NaN and infinities too
    if kind == 1:
        return rng.random() * 10 ** rng.randint(-9, 22)
    if kind == 2:
        return rng.randint(-(1 << 63), (1 << 64) - 1)
    if kind == 3:
        return "".join(chr(rng.choice([rng.randint(0, 0x7F), rng.randint(0x80, 0xD7FF), rng.randint(0xE000, 0x10FFFF)]))
                       for _ in range(rng.randint(0, 12)))
    if kind == 4:
        return rng.choice([None, True, False, 0, -0.0, 1e16, 1e-5, ""])
    if kind == 5:
        return datetime.datetime(2026, 12, 6, rng.randint(0, 23), 1, 2, rng.choice([0, 123456]),
                                 tzinfo=rng.choice([None, datetime.timezone.utc]))
    if kind == 6:
        return uuid.UUID(int=rng.getrandbits(128))
    if kind == 7:
        return rng.choice([datetime.date(2026, 1, 2), datetime.time(1, 2, 3, 4), object()])
    if kind in (8, 9):
        return {random_value(rng, 9) if rng.random() < 0.2 and kind == 9 else f"k{i}": random_value(rng, depth + 1)
                for i in range(rng.randint(0, 5))}
    return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]


def outcome(dumps: Any, value: Any, option: int | None) -> Any:
    try:
        return dumps(value, default=to_text, option=option)
    except TypeError:
        return TypeError


IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
#: Skipped only off CI, where orjson may be missing (a free-threaded interpreter): CI installs it, and fails.
needs_orjson = pytest.mark.skipif(not HAVE_ORJSON and not IN_CI, reason="compares with orjson, not installed here")


@needs_orjson
@pytest.mark.parametrize("option", [None, OPT_NON_STR_KEYS])
def test_the_standard_library_path_writes_orjsons_bytes(option: int | None) -> None:
    """20,000 random values (floats of every magnitude, NaN, text with every kind of character, 64-bit
    integers, dates, UUIDs, nested maps and lists, keys that are not text): the same bytes as orjson, or
    the same refusal."""
    import orjson

    rng = random.Random(20261206)
    values = [random_value(rng) for _ in range(20_000)]
    differ = [(v, outcome(orjson.dumps, v, option), outcome(python_dumps, v, option)) for v in values
              if outcome(orjson.dumps, v, option) != outcome(python_dumps, v, option)]
    assert differ == [], differ[:3]
    assert outcome(python_dumps, "\ud800", option) is TypeError and outcome(python_dumps, 1 << 64, option) is TypeError


APP = """
    import json, logging, sys
    if sys.argv[1] == "blocked":
        sys.modules["orjson"] = None  # as where orjson cannot be installed
    import logkafka
    from logkafka import _json
    assert _json.HAVE_ORJSON is (sys.argv[1] != "blocked")
    servers, topic, path = sys.argv[2:5]
    formatter = logkafka.JsonFormatter(service_name="svc", environment="test", version="1")
    file = logging.FileHandler(path)
    file.setFormatter(formatter)
    kafka = logkafka.KafkaLogHandler(servers, topic, flush_timeout=30)
    kafka.setFormatter(formatter)
    log = logging.getLogger("app")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(file)
    log.addHandler(kafka)
    with logkafka.bound(correlation_id="c0ffee", ratio=0.00001):
        log.info("plain %s", "é\\u2028😀", extra={"code": "C", "n": 1 << 63, "f": 1e-7, "nan": float("nan"),
                                                  "nested": {"a": [1, 2.5, None, True]}})
        log.warning("password=hunter2 token", extra={"big": 1 << 70, "when": __import__("datetime").date(2026, 1, 2)})
        try:
            1 / 0
        except ZeroDivisionError:
            log.exception("failed")
    assert kafka.flush(30)
    kafka.close()
    file.close()
    print(json.dumps(kafka.stats()["delivered"]))
"""


def normalized(text: str) -> list[str]:
    """Lines with what differs between two runs (times, ids, process, line numbers in the stack) blanked."""
    text = re.sub(r'"(timestamp|event_id)":"[^"]*"', r'"\1":""', text)
    text = re.sub(r'"process":\d+', '"process":0', text)
    return text.split("\n")  # (not splitlines(): U+2028 in a record is no line break)


@needs_orjson
def test_without_orjson_records_ship_with_the_same_bytes(kafka_broker: Any, tmp_path: Path) -> None:
    """The same program with orjson blocked from import and with it: every record delivered, the file lines
    and the Kafka values the same bytes in each run, and the same bytes across the two runs."""
    runs = {}
    for mode in ("blocked", "orjson"):
        topic = f"json.{mode}.{uuid.uuid4().hex[:8]}"
        kafka_broker.create_topic(topic, 1)
        path = tmp_path / f"{mode}.log"
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(APP), mode, kafka_broker.bootstrap_servers,
                               topic, str(path)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == 3
        lines = path.read_text(encoding="utf-8").rstrip("\n").split("\n")
        values = [m.value.decode() for m in read_topic(kafka_broker.bootstrap_servers, topic, expected=3, timeout=60)]
        assert values == lines  # the file and Kafka: the same bytes
        runs[mode] = normalized("\n".join(lines))
    assert runs["blocked"] == runs["orjson"]
    record = json.loads(runs["blocked"][0])
    assert record["n"] == 1 << 63 and record["f"] == 1e-7 and record["nan"] == "nan" and record["ratio"] == 0.00001
    assert '"ratio":0.00001' in runs["blocked"][0]
    warning = json.loads(runs["blocked"][1])
    assert warning["big"] == str(1 << 70) and warning["when"] == "2026-01-02" and "hunter2" not in runs["blocked"][1]
