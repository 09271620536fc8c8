"""How a captured record becomes a Kafka message: per formatter, an encode plan (value, key, headers),
and per worker, the topic of its stream and the size Kafka accepts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, NamedTuple

from logkafka import _envelope, _otlp, _tracing
from logkafka._clock import Clock
from logkafka._formatter import JsonFormatter
from logkafka._message import Headers, Message, new_message
from logkafka._record import CTX, EXTRA, HOST, SLIM_KEYS, SPAN, STREAM, event_id_of, extra_name, record_of
from logkafka._report import report
from logkafka._settings import HandlerSettings
from logkafka._snapshot import to_text
from logkafka._trim import fit, value_limit

Encode = Callable[[dict[str, Any]], bytes]
KeyOf = Callable[[dict[str, Any]], bytes | None]
HeadersOf = Callable[[dict[str, Any]], Headers | None]

_IDENTITY_KEYS = {"service", "environment", "version", "instance_id"}
_STD_ATTRS = frozenset(logging.LogRecord("n", 0, "p", 0, "m", None, None).__dict__)
_OWN_FIELD_EXTRAS = ("code", "event_id")  # extras with a field of their own: captured as they are
_RECORD_KEYS = {
    "logger": "name", "level": "levelname", "function": "funcName", "line": "lineno",
    "thread": "threadName", "module": "module", "process": "process",
}


class EncodePlan(NamedTuple):
    """How records captured for one formatter become messages (worked out once per formatter)."""

    encode: Encode  #: the value; may raise
    fallback: Encode  #: the value when ``encode`` raised; never raises
    key_of: KeyOf | None  #: the partition key of a record; None when every record has ``key``
    key: bytes | None
    headers_of: HeadersOf | None  #: a record's Kafka headers


def key_needs_every_attribute(key: str | None) -> bool:
    """Whether the partition key ``key`` names a record attribute that a slim capture lacks."""
    attr = _RECORD_KEYS.get(key or "", key)
    return attr in _STD_ATTRS and attr not in SLIM_KEYS


def _key_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    return to_text(value).encode("utf-8", "replace")


def _tenant_key(rd: dict[str, Any]) -> bytes:
    return _envelope.tenant_of(rd).encode("utf-8", "replace")


def _encode_with(formatter: logging.Formatter, rd: dict[str, Any]) -> bytes:
    """A message from a formatter that is not a JsonFormatter; never raises."""
    try:
        return formatter.format(record_of(rd)).encode("utf-8", "replace")
    except Exception as exc:
        report("format", f"formatter {type(formatter).__name__} failed, shipping the record as JSON: {exc}")
        return JsonFormatter().encode_captured(rd)


def _record_key(attr: str) -> KeyOf:
    """The key named ``attr``: the span's id (trace_id, span_id), else an extra, else a bound value."""
    shipped = attr if attr in _OWN_FIELD_EXTRAS else extra_name(attr)
    span_part = {"trace_id": 0, "span_id": 1}.get(attr)

    def record_key(rd: dict[str, Any]) -> bytes | None:
        if span_part is not None:
            ids = _tracing.span_ids(rd.get(SPAN))
            if ids is not None:
                return _tracing.hex_ids(ids)[span_part].encode()
        value = rd.get(shipped) if attr in _OWN_FIELD_EXTRAS else rd[EXTRA].get(shipped)
        return _key_bytes(value if value is not None else rd[CTX].get(attr))
    return record_key


class Encoder:
    """A handler's encode plans, one per formatter its records were captured for (cached).

    ``None`` (no formatter set when a record was logged) means the handler's default
    ``JsonFormatter``, made on first use from the settings of that moment.
    """

    def __init__(self, settings: HandlerSettings, redaction: Mapping[str, Any]) -> None:
        #: The handler's settings (replaced by the handler when it adopts a formatter's identity).
        self.settings = settings
        #: The handler's own service identity when set explicitly (it overrides the formatter's).
        self.resource: Mapping[str, str] | None = None
        self._redaction = redaction
        self._clock = Clock()
        self._default: JsonFormatter | None = None
        self._plans: tuple[Any, EncodePlan | None] = (None, None)  # (formatter, its plan): one tuple, atomic
        self._stream_plans: tuple[Any, EncodePlan | None] = (None, None)

    def plan(self, formatter: logging.Formatter | None) -> EncodePlan:
        """The plan for application records: keyed as the ``key`` setting says."""
        formatter = self.formatter_of(formatter)
        cached = self._plans
        if cached[0] is formatter and cached[1] is not None:
            return cached[1]
        plan = self._plan(formatter, *self._key_plan(formatter))
        self._plans = (formatter, plan)
        return plan

    def stream_plan(self, formatter: logging.Formatter | None) -> EncodePlan:
        """The plan for audit and security records: keyed by tenant."""
        formatter = self.formatter_of(formatter)
        cached = self._stream_plans
        if cached[0] is formatter and cached[1] is not None:
            return cached[1]
        plan = self._plan(formatter, _tenant_key, None)
        self._stream_plans = (formatter, plan)
        return plan

    def formatter_of(self, formatter: logging.Formatter | None) -> logging.Formatter:
        """``formatter``, or the default ``JsonFormatter`` for None."""
        if formatter is not None:
            return formatter
        default = self._default
        if default is None:
            st = self.settings
            identity = st.identity
            default = self._default = JsonFormatter(
                service_name=identity["service"], environment=identity["environment"],
                version=identity["version"], instance_id=identity["instance_id"],
                fields=st.fields, namespace=st.namespace, **self._redaction,
            )
        return default

    def _key_plan(self, formatter: logging.Formatter) -> tuple[KeyOf | None, bytes | None]:
        """(key_of, None) for a key that depends on the record, (None, key) for one that does not."""
        key = self.settings.key
        if key is None:
            return None, None
        if key in _IDENTITY_KEYS or key == "host":
            res = self.resource
            if res is None:
                res = formatter.identity if isinstance(formatter, JsonFormatter) else self.settings.identity
            return None, _key_bytes(HOST if key == "host" else res[key])
        kind, _, name = key.partition(".")
        if kind == "context" and name:
            return (lambda rd: _key_bytes(rd[CTX].get(name))), None
        if kind == "extra" and name:
            if name in _OWN_FIELD_EXTRAS:
                return (lambda rd: _key_bytes(rd.get(name))), None
            shipped = extra_name(name)
            return (lambda rd: _key_bytes(rd[EXTRA].get(shipped))), None
        attr = _RECORD_KEYS.get(key, key)
        if attr in _STD_ATTRS:
            return (lambda rd: _key_bytes(rd.get(attr))), None
        if attr == "event_id":  # the record's event id, whoever chose it
            return (lambda rd: _key_bytes(event_id_of(rd))), None
        return _record_key(attr), None

    def _plan(self, formatter: logging.Formatter, key_of: KeyOf | None, key: bytes | None) -> EncodePlan:
        clean: Callable[[str], str] | None = None
        st = self.settings
        if isinstance(formatter, JsonFormatter):
            fallback: Encode = formatter.encode_captured
            encode = formatter.render_captured if formatter.templated else fallback
            envelope = formatter.format_name == "envelope" or st.format == "envelope"
            namespace = formatter.namespace or st.namespace
            if formatter.redactor is not None:
                clean = formatter.clean_text
        else:
            encode = fallback = partial(_encode_with, formatter)
            envelope = st.format == "envelope"
            namespace = st.namespace
        if envelope:
            encode = self._enveloped(encode, namespace, clean)
            fallback = self._enveloped(fallback, namespace, clean)
        content_type = _otlp.CONTENT_TYPES.get(st.encoding)
        if content_type is not None:  # OpenTelemetry's messages instead of the JSON records
            encode = fallback = _otlp.encoder(formatter, st.encoding, st.identity)

        static = list(st.headers)

        def headers_of(rd: dict[str, Any]) -> Headers:
            out = _envelope.headers(rd, namespace, clean)
            if content_type is not None:
                out[0] = ("content-type", content_type)
            if static:
                out += static
            return out
        return EncodePlan(encode, fallback, key_of, key, headers_of)

    def _enveloped(self, encode: Encode, namespace: str | None, clean: Callable[[str], str] | None) -> Encode:
        clock, identity = self._clock, self.settings.identity
        wrap = _envelope.wrap

        def enveloped(rd: dict[str, Any]) -> bytes:
            source = (rd.get("_lk_res") or identity)["service"]
            return wrap(rd, encode(rd), timestamp=clock(rd["created"]), namespace=namespace, source=source,
                        clean=clean)
        return enveloped


class Messages:
    """A worker's messages: each record's topic (by its stream, for a worker serving several), value
    cut to the size Kafka accepts, key and headers."""

    def __init__(self, topic: str, stream_topics: Mapping[Any, str] | None, producer_config: Mapping[str, Any]) -> None:
        self._topic = topic
        self._stream_topics = stream_topics
        try:
            self._max_bytes = int(producer_config.get("message.max.bytes", 1_000_000))
        except (TypeError, ValueError):
            self._max_bytes = 1_000_000
        self._limit = value_limit(self._max_bytes)  # below it, no record needs a look
        self.truncated = 0  # records cut to fit message.max.bytes

    def of(self, item: dict[str, Any], plan: EncodePlan) -> Message:
        """A captured record as a message, with ``plan`` (its formatter's); never raises."""
        encode, fallback, key_of, key, headers_of = plan
        stream_topics = self._stream_topics
        topic = self._topic if stream_topics is None else stream_topics.get(item.get(STREAM), self._topic)
        try:
            value = encode(item)
        except Exception:  # the fast path met something unusual: the general one never raises
            value = fallback(item)
        try:
            if key_of is not None:
                key = key_of(item)
        except Exception as exc:  # a key that cannot be computed: the record still ships, unkeyed
            report("key", f"could not compute a record's partition key: {type(exc).__name__}: {exc}")
            key = None
        headers: Headers | None = None
        if headers_of is not None:
            try:
                headers = headers_of(item)
            except Exception as exc:  # headers help routing; the record ships without them
                report("headers", f"could not compute a record's headers: {type(exc).__name__}: {exc}")
        if len(value) > self._limit and value[:2] == b'{"' and not value.startswith(b'{"resourceLogs"'):
            value = self._fit(value, key)  # a JSON record too large: cut so it still arrives (OTLP cuts its own)
        return new_message(Message, (topic, key, value, int(item["created"] * 1000), headers))  # type: ignore[no-any-return]

    def _fit(self, value: bytes, key: bytes | None) -> bytes:
        limit = value_limit(self._max_bytes, len(key or b""))
        if len(value) <= limit:
            return value
        self.truncated += 1
        report("truncated", f"a record of {len(value)} bytes was cut to fit message.max.bytes ({self._max_bytes})")
        return fit(value, limit)
