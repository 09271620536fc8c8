"""The byte-template renderer gives exactly the bytes of the general path, for every kind of record."""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider

import logkafka
from logkafka import _record as R
from logkafka._render import Collision

KEYS = ["code", "level", "service", "correlation_id", "tenant_id", "n", "x", "trace_id", "message_id", "caf\u00e9"]
VALUES: list[Any] = [1, "s", None, 2.5, [1, {"a": b"b"}], {"k": {1, 2}}, float("nan"), "\u00fc\u00f1", True]
RESOURCE = {"service": "h", "environment": "x", "version": "1", "instance_id": "i"}


@pytest.fixture(autouse=True)
def _clean_context() -> Iterator[None]:
    logkafka.clear_context()
    yield
    logkafka.clear_context()


def general(formatter: logkafka.JsonFormatter, captured: dict[str, Any]) -> bytes:
    return orjson.dumps(formatter.to_dict(R.record_of(captured)), option=orjson.OPT_NON_STR_KEYS)


def _captured(record: logging.LogRecord, resource: dict[str, str] | None, full: bool | None) -> Any:
    if full is None:
        return R.capture(record, resource), R.capture_slim(record, resource)
    return R.capture(record, resource) if full else R.capture_slim(record, resource)


def random_records(seed: int, count: int, full: bool | None = True) -> Iterator[Any]:
    """Captured records of every kind; ``full=None`` gives (full, slim) captures of each record."""
    rnd = random.Random(seed)
    tracer = TracerProvider().get_tracer("t")
    logger = logging.getLogger("tests.render")
    for i in range(count):
        logkafka.clear_context()
        if rnd.random() < 0.7:
            logkafka.bind(**{rnd.choice(KEYS): rnd.choice(VALUES) for _ in range(rnd.randint(1, 3))})
        extra = {k: rnd.choice(VALUES) for k in rnd.sample(KEYS, rnd.randint(0, 4))}
        msg: Any = rnd.choice(["plain", "with %s arg", {"message": "dict msg", "a": 1}, "caf\u00e9 %d"])
        args = ("x",) if msg == "with %s arg" else (3,) if msg == "caf\u00e9 %d" else None
        exc = None
        if rnd.random() < 0.2:
            try:
                1 / 0  # noqa: B018
            except ZeroDivisionError:
                exc = sys.exc_info()
        sinfo = "Stack (most recent call last)" if rnd.random() < 0.1 else None
        resource = RESOURCE if rnd.random() < 0.3 else None
        if rnd.random() < 0.3:
            with tracer.start_as_current_span("s"):
                record = logger.makeRecord(f"r.{i % 3}", rnd.choice([10, 20, 30, 40]), "f.py", i % 50, msg, args,
                                           exc, "fn", extra, sinfo)
                yield _captured(record, resource, full)
        else:
            record = logger.makeRecord(f"r.{i % 3}", rnd.choice([10, 20, 30, 40]), "f.py", i % 50, msg, args,
                                       exc, "fn", extra, sinfo)
            yield _captured(record, resource, full)


class TestRenderEquivalence:
    @pytest.mark.parametrize("full", [True, False], ids=["full-capture", "slim-capture"])
    @pytest.mark.parametrize("kwargs", [{}, {"service_name": "svc", "environment": "e\u00e9"}])
    def test_random_records_render_like_the_general_path(self, kwargs: dict[str, str], full: bool) -> None:
        """2,000 varied records: encode_captured() equals orjson.dumps(to_dict()) byte for byte."""
        formatter = logkafka.JsonFormatter(**kwargs)
        fast_used = 0
        for captured in random_records(7, 2000, full):
            expected = general(formatter, captured)
            assert formatter.encode_captured(captured) == expected
            try:
                assert formatter.render_captured(captured) == expected
                fast_used += 1
            except Collision:
                pass
        assert fast_used > 1000, "the template should serve most records"

    def test_extra_replacing_a_context_value_keeps_one_key(self) -> None:
        """An extra named like a bound key replaces it in place, as a dict would: one key, the extra's value."""
        formatter = logkafka.JsonFormatter()
        logkafka.bind(tenant_id="from-context", user_id="u")
        record = logging.getLogger("t").makeRecord("t", 20, "f", 1, "m", None, None, extra={"tenant_id": "from-extra"})
        out = formatter.encode(record)
        assert out.count(b'"tenant_id"') == 1
        assert orjson.loads(out)["tenant_id"] == "from-extra"
        assert "logkafka_repaired" not in orjson.loads(out)

    def test_lone_surrogate_is_repaired_and_marked(self) -> None:
        """Text that is not valid Unicode goes through the repair path, marked, never an error."""
        formatter = logkafka.JsonFormatter()
        record = logging.getLogger("t").makeRecord("t", 20, "f", 1, "bad \ud800 text", None, None)
        data = orjson.loads(formatter.encode(record))
        assert data["logkafka_repaired"] is True
        assert data["message"].startswith("bad ") and "\ud800" not in data["message"]

    def test_record_without_process_id_still_renders(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """logging.logProcesses = False gives process None: the general path renders it as null."""
        monkeypatch.setattr(logging, "logProcesses", False)
        formatter = logkafka.JsonFormatter()
        record = logging.getLogger("t").makeRecord("t", 20, "f", 1, "m", None, None)
        data = orjson.loads(formatter.encode(record))
        assert data["process"] is None
        assert "logkafka_repaired" not in data

    def test_slim_and_full_captures_give_the_same_bytes(self) -> None:
        """A slim capture holds everything the formatter ships: both kinds render alike, on both paths."""
        formatter = logkafka.JsonFormatter()
        fmt_rename = logkafka.JsonFormatter(rename_fields={"level": "severity"}, static_fields={"team": "a"})
        for a, b in random_records(11, 1000, None):
            assert len(b) < len(a)
            assert formatter.encode_captured(b) == formatter.encode_captured(a)
            assert fmt_rename.encode_captured(b) == fmt_rename.encode_captured(a)
