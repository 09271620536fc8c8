"""A Kafka message as logkafka produces, spools and replays it."""

from __future__ import annotations

from typing import Any, NamedTuple

#: Kafka headers: (name, value) pairs.
Headers = list[tuple[str, str | bytes | None]]


class Message(NamedTuple):
    """One record as a Kafka message (the spool keeps these five fields, in this order)."""

    topic: str
    key: bytes | None
    value: bytes
    timestamp_ms: int
    headers: Headers | None


#: ``new_message(Message, (topic, key, value, timestamp_ms, headers))``: a Message made without the named
#: tuple's own ``__new__`` (a Python function: twice the cost, per record on the worker's hot path).
new_message: Any = tuple.__new__
