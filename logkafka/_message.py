"""A Kafka message as logkafka produces, spools and replays it."""

from __future__ import annotations

from typing import NamedTuple

#: Kafka headers: (name, value) pairs.
Headers = list[tuple[str, str | bytes | None]]


class Message(NamedTuple):
    """One record as a Kafka message (the spool keeps these five fields, in this order)."""

    topic: str
    key: bytes | None
    value: bytes
    timestamp_ms: int
    headers: Headers | None
