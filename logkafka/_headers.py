"""The Kafka headers a user adds to every record (the ``headers`` setting), checked."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

#: Headers logkafka sets itself on every record (or, for ``traceparent``, on records logged in a span).
OWN_HEADERS = frozenset({"content-type", "event_type", "event_id", "correlation_id", "traceparent",
                         "logkafka.chain"})
#: The most bytes the static headers may take (names, values and framing): they share the room kept free
#: under ``message.max.bytes`` with logkafka's own headers.
MAX_STATIC_BYTES = 256

StaticHeaders = tuple[tuple[str, str], ...]


def static_headers(value: Any) -> StaticHeaders:
    """The ``headers`` setting (else ``LOGKAFKA_HEADERS``: a JSON object or ``name=value,name=value``) as
    (name, text) pairs; a ``ValueError`` naming the setting and the header when one is wrong."""
    setting = "headers"
    if value is None:
        text = os.environ.get("LOGKAFKA_HEADERS", "").strip()
        if not text:
            return ()
        setting, value = "LOGKAFKA_HEADERS", _parse(text)
    if not isinstance(value, Mapping):
        raise ValueError(f"{setting}: expected a mapping of header names to text, got {type(value).__name__}")
    out = []
    for name, v in value.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{setting}: header names must be non-empty text, got {name!r}")
        if name.lower() in OWN_HEADERS:
            raise ValueError(f"{setting}[{name!r}]: logkafka sets this header itself")
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (int, float)):
            v = str(v)
        elif isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        if not isinstance(v, str):
            raise ValueError(f"{setting}[{name!r}]: expected text, got {type(v).__name__}")
        out.append((name, v))
    size = sum(len(n.encode()) + len(v.encode()) + 8 for n, v in out)
    if size > MAX_STATIC_BYTES:
        raise ValueError(f"{setting}: {size} bytes of headers, more than the {MAX_STATIC_BYTES} kept for them "
                         "(put larger constant values in the record: logkafka.bind() or a filter)")
    return tuple(out)


def _parse(text: str) -> Any:
    if text.startswith("{"):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError(f"LOGKAFKA_HEADERS: not valid JSON: {exc}") from None
    pairs = {}
    for part in text.split(","):
        name, sep, v = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"LOGKAFKA_HEADERS: expected name=value[,name=value...], got {part.strip()!r}")
        pairs[name.strip()] = v.strip()
    return pairs
