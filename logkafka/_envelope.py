"""The event envelope (``format="envelope"``) and the Kafka headers of a record.

An envelope wraps the record's flat JSON object, unchanged, as ``payload``::

    {"event_type": "omninode.logging.audit.v1", "event_id": ..., "timestamp": ...,
     "tenant_id": ..., "namespace": "omninode", "source": <service>, "correlation_id": ...,
     "causation_id": ..., "schema_ref": "urn:logkafka:schema:audit.envelope.v1", "payload": {...}}

The wrapping works on bytes, so it costs one small ``_json.dumps`` per record
and works over any formatter's output.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from logkafka import _json
from logkafka._record import CTX, EXTRA, SPAN, STREAM, event_id_of
from logkafka._tracing import traceparent

SCHEMA_BASE = "urn:logkafka:schema"
CONTENT_TYPE = "application/json"
#: A header value longer than this is cut: headers must fit in the room _trim.OVERHEAD keeps.
MAX_HEADER_VALUE = 200


def event_type(stream: str, namespace: str | None) -> str:
    """``<namespace>.logging.<stream>.v1`` (``logging.<stream>.v1`` without a namespace)."""
    return f"{namespace}.logging.{stream}.v1" if namespace else f"logging.{stream}.v1"


def schema_ref(stream: str, fmt: str) -> str:
    """The ``$id`` of the JSON Schema a record of ``stream`` in format ``fmt`` validates against."""
    return f"{SCHEMA_BASE}:{stream}.{fmt}.v1"


def stream_of(rd: dict[str, Any]) -> str:
    """``audit``, ``security`` or ``application``."""
    stream = rd.get(STREAM)
    return stream if stream in ("audit", "security") else "application"


def member(rd: dict[str, Any], name: str) -> Any:
    """A record's ``name``: its extra, else the bound context's; None when neither has it."""
    value = rd[EXTRA].get(name)
    return value if value is not None else rd[CTX].get(name)


def tenant_of(rd: dict[str, Any]) -> str:
    """The record's tenant: extra, bound context, ``$TENANT_ID``, else ``default``."""
    value = member(rd, "tenant_id")
    if value is None or value == "":
        return os.environ.get("TENANT_ID") or "default"
    return value if isinstance(value, str) else str(value)


Clean = Callable[[str], str]


def _keep(text: str) -> str:
    return text


def _text_or_none(value: Any, clean: Clean) -> str | None:
    if value is None:
        return None
    return clean(value if isinstance(value, str) else str(value))


def wrap(rd: dict[str, Any], payload: bytes, *, timestamp: str, namespace: str | None, source: str,
         clean: Clean | None = None) -> bytes:
    """The envelope around ``payload`` (one JSON object, as bytes); ``clean`` redacts its texts."""
    stream = stream_of(rd)
    clean = clean or _keep
    head = {
        "event_type": event_type(stream, namespace),
        "event_id": event_id_of(rd),
        "timestamp": timestamp,
        "tenant_id": clean(tenant_of(rd)),
        "namespace": namespace,
        "source": source,
        "correlation_id": _text_or_none(member(rd, "correlation_id"), clean),
        "causation_id": _text_or_none(member(rd, "causation_id"), clean),
        "schema_ref": schema_ref(stream, "envelope"),
    }
    body = payload.strip()
    if not (body.startswith(b"{") and body.endswith(b"}")):  # a formatter that does not write JSON
        body = _json.dumps(payload.decode("utf-8", "replace"))
    return _json.dumps(head)[:-1] + b',"payload":' + body + b"}"


_EVENT_TYPES: dict[tuple[str, str | None], str] = {}


def _short(text: str) -> str:
    """At most MAX_HEADER_VALUE bytes of UTF-8."""
    if len(text) <= MAX_HEADER_VALUE // 4 or (len(text) <= MAX_HEADER_VALUE and text.isascii()):
        return text
    return text.encode("utf-8", "replace")[:MAX_HEADER_VALUE].decode("utf-8", "ignore")


def headers(rd: dict[str, Any], namespace: str | None,
            clean: Clean | None = None) -> list[tuple[str, str | bytes | None]]:
    """Kafka headers for routing without parsing: content-type, event_type, event_id, correlation_id, and the
    W3C ``traceparent`` of the span active at the call.

    Values are text (the client sends them as UTF-8), at most MAX_HEADER_VALUE bytes each.
    """
    stream = rd.get(STREAM)
    if stream != "audit" and stream != "security":
        stream = "application"
    kind = _EVENT_TYPES.get((stream, namespace))
    if kind is None:
        kind = _EVENT_TYPES[(stream, namespace)] = event_type(stream, namespace)
    out: list[tuple[str, str | bytes | None]] = [
        ("content-type", CONTENT_TYPE), ("event_type", kind), ("event_id", _short(event_id_of(rd))),
    ]
    cid = rd[EXTRA].get("correlation_id")
    if cid is None:
        cid = rd[CTX].get("correlation_id")
    if cid is not None:
        text = cid if isinstance(cid, str) else str(cid)
        if clean is not None:
            text = clean(text)
        out.append(("correlation_id", _short(text)))
    otel = rd.get(SPAN)
    if otel:  # the span active at the call, as W3C Trace Context propagates it
        parent = traceparent(otel)
        if parent is not None:
            out.append(("traceparent", parent))
    return out
