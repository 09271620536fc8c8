"""Helpers shared by the tests (the tests directory is on sys.path under pytest)."""

from __future__ import annotations

import functools
import itertools
import json
import logging
import uuid
from importlib import resources
from typing import Any


class ListHandler(logging.Handler):
    """Keeps every record it handles."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def schema_for(stream: str, fmt: str) -> dict[str, Any]:
    """The JSON Schema shipped in the package for ``stream`` (application, audit, security) and ``fmt``."""
    text = resources.files("logkafka").joinpath("schemas", f"{stream}.{fmt}.v1.json").read_text("utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def assert_valid(data: Any, stream: str | None = None, fmt: str | None = None) -> None:
    """Validate a produced record against its schema; stream and format are read from it when not given."""
    import jsonschema

    if fmt is None:
        fmt = "envelope" if isinstance(data, dict) and "payload" in data and "schema_ref" in data else "flat"
    if stream is None:
        inner = data["payload"] if fmt == "envelope" else data
        stream = inner.get("stream", "application") if isinstance(inner, dict) else "application"
    error = jsonschema.exceptions.best_match(_validator(stream, fmt).iter_errors(data))
    if error is not None:  # what jsonschema.validate raises, without checking the schema again on every call
        raise error


@functools.cache
def _validator(stream: str, fmt: str) -> Any:
    """The schema's validator, the schema itself checked once (``jsonschema.validate`` re-checks it each call:
    ~10 ms, against ~0.05 ms for the validation of a record)."""
    import jsonschema

    schema = schema_for(stream, fmt)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def assert_ledger(stats: dict[str, Any]) -> dict[str, Any]:
    """The handler's ledger balances: accepted + inherited = delivered + in_flight + queued + spooled +
    handed_over + lost (by reason). Returns the ledger."""
    ledger = stats["ledger"]
    out = (ledger["delivered"] + ledger["in_flight"] + ledger["queued"] + ledger["spooled"]
           + ledger["handed_over"] + sum(ledger["lost"].values()))
    assert ledger["accepted"] + ledger["inherited"] == out, ledger
    assert ledger["balanced"] is True, ledger
    return ledger  # type: ignore[no-any-return]


def assert_in_order_per_key(msgs: list[Any], field: str = "seq") -> int:
    """Each key's records, in the order its partition holds their first copies, have increasing ``field``
    values (the order they were logged in). Returns the number of copies beyond the first (at-least-once:
    a record the broker kept though its acknowledgement was lost is sent again; consumers drop it by
    ``event_id``)."""
    by_key: dict[Any, list[Any]] = {}
    seen: set[str] = set()
    copies = 0
    for m in sorted(msgs, key=lambda m: (m.partition, m.offset)):
        if m.data["event_id"] in seen:
            copies += 1
            continue
        seen.add(m.data["event_id"])
        by_key.setdefault(m.key, []).append(m.data[field])
    for key, values in by_key.items():
        late = [(a, b) for a, b in itertools.pairwise(values) if b <= a]
        assert not late, f"key {key!r}: {len(late)} records after a newer one, first {late[:5]}"
    return copies


def logger_with(handler: logging.Handler, prefix: str = "test") -> logging.Logger:
    """A fresh logger of its own (not propagating, at INFO) whose only handler is ``handler``."""
    lg = logging.getLogger(f"{prefix}.{uuid.uuid4().hex[:8]}")
    lg.handlers[:] = [handler]
    lg.propagate = False
    lg.setLevel(logging.INFO)
    return lg


#: The ids of the span :func:`in_span` makes active.
TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7


def in_span(sampled: bool = True) -> Any:
    """A context manager making a span with :data:`TRACE_ID` and :data:`SPAN_ID` the active one."""
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    return trace.use_span(NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=flags)))


def delivered_after_outage(handler: Any, port: int, topic: str, count: int) -> list[Any]:
    """Wait until the ``count`` records ``handler`` logged with no broker on ``port`` are all in its spool, then
    start a broker there, flush (the spool is replayed) and read the topic back (one partition: in order)."""
    import time

    from logkafka.testing import LocalBroker, read_topic

    deadline = time.monotonic() + 30
    while handler.stats()["spooled"] < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert handler.stats()["spooled"] == count, handler.stats()
    with LocalBroker(port) as broker:
        broker.create_topic(topic, 1)
        assert handler.flush(60)
        return read_topic(broker.bootstrap_servers, topic, expected=count, timeout=60)


def new_topic(broker: Any, prefix: str = "test", partitions: int = 3) -> str:
    """A new topic of ``partitions`` partitions on ``broker``, named ``<prefix>.<random>``."""
    topic = f"{prefix}.{uuid.uuid4().hex[:10]}"
    broker.create_topic(topic, partitions)
    return topic
