"""``JsonFormatter``: one JSON object per record, the same on every handler.

The formatter renders what :func:`logkafka._record.capture` (or
``capture_slim``) fixed at the call, on whatever thread it runs; a record it
is given uncaptured is captured first. See :mod:`logkafka._record`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Sequence
from typing import Any

from pythonjsonlogger.core import BaseJsonFormatter

from logkafka import _envelope, _json
from logkafka._clock import Clock
from logkafka._presets import apply_preset, check_preset
from logkafka._record import (
    CTX,
    EID,
    HOST,
    RESOURCE,
    PreparedText,
    capture,
    capture_slim,
    check_identity,
    default_identity,
    event_id_of,
    extra_name,
    new_event_id,
    record_of,
    uuid_text,
)
from logkafka._redact import Redactor, redaction_settings
from logkafka._render import Template, after_context, members
from logkafka._report import report
from logkafka._settings import check_namespace
from logkafka._snapshot import INT_MAX, INT_MIN, jsonable, repair_text, to_text

_OPTS = _json.OPT_NON_STR_KEYS
_dumps = _json.dumps
_OWN_PROCESS_LOG_RECORD = BaseJsonFormatter.process_log_record


class JsonFormatter(BaseJsonFormatter):
    """Render a record as one JSON object (see the README's field reference).

    Usable on any handler: the same instance on a FileHandler, a StreamHandler
    and a ``KafkaLogHandler`` gives the same line everywhere. The record is
    never modified but for a private event-id number, kept on it so every
    handler shows the same ``event_id``. python-json-logger's options
    (``rename_fields``, ``static_fields``, ``defaults``, ``prefix``) and hooks
    (``process_log_record``) keep their meaning.
    """

    def __init__(
        self,
        fmt: str | Sequence[str] | None = None,
        datefmt: str | None = None,
        style: str = "%",
        validate: bool = True,
        *,
        service_name: str | None = None,
        environment: str | None = None,
        version: str | None = None,
        instance_id: str | None = None,
        format: str = "flat",
        namespace: str | None = None,
        fields: str = "default",
        redact: bool = True,
        redact_keys: Iterable[str] = (),
        redact_patterns: Iterable[str | re.Pattern[str]] = (),
        redact_allow: Iterable[str] = (),
        **kwargs: Any,
    ) -> None:
        # python-json-logger's OrjsonFormatter options, once this class's base: accepted, as rendering is ours
        kwargs.pop("json_default", None)
        kwargs.pop("json_indent", None)
        super().__init__(fmt, datefmt, style, validate, **kwargs)
        if format not in ("flat", "envelope"):
            raise ValueError(f"format: expected 'flat' or 'envelope', got {format!r}")
        #: ``"flat"``: one object per record; ``"envelope"``: wrapped as ``{event_type, ..., payload}``.
        self.format_name = format
        self.namespace = check_namespace(namespace)
        #: The field names: ``default``, ``ecs``, ``datadog`` or ``otel`` (see the README).
        self.fields = check_preset(fields)
        r = redaction_settings(redact, redact_keys, redact_patterns, redact_allow)  # with LOGKAFKA_REDACT_*
        redactor = Redactor(keys=r["redact_keys"], patterns=r["redact_patterns"], allow=r["redact_allow"],
                            enabled=r["redact"])
        #: Removes secrets from the message, exception text, context and extra members;
        #: None with ``redact=False``.
        self.redactor: Redactor | None = redactor if redactor.enabled else None
        self.identity: dict[str, str] = {
            **default_identity(), **check_identity(service_name, environment, version, instance_id),
        }
        self._clock = Clock()
        self._template = Template(self, self._clock)  # JSON pieces that repeat, cached for render_captured()
        # The byte template renders records only when no hook or option changes the object
        # (python-json-logger's options are settled by now, as in its own formatters).
        cls = type(self)
        #: Whether slim captures (``capture_slim``) hold all this formatter reads:
        #: true unless a subclass overrides a method that is given the record.
        self.slim_capture = (
            cls.to_dict is JsonFormatter.to_dict
            and cls.encode_captured is JsonFormatter.encode_captured
            and cls.render_captured is JsonFormatter.render_captured
        )
        #: Whether ``render_captured`` may render this formatter's records (the handler asks).
        self.templated = (
            self.slim_capture
            and cls.process_log_record is _OWN_PROCESS_LOG_RECORD
            and not (self.defaults or self.static_fields or self.rename_fields)
            and self.fields == "default"
        )

    # -- the captured record -> dict -------------------------------------------------
    def to_dict(self, record: logging.LogRecord) -> dict[str, Any]:
        """The JSON-safe object for ``record``, before python-json-logger's hooks."""
        rd = record.__dict__
        if CTX not in rd:
            rd = (capture_slim if self.slim_capture else capture)(record)
        identity = rd.get(RESOURCE) or self.identity
        d: dict[str, Any] = dict(self.defaults) if self.defaults else {}
        d["timestamp"] = self._clock(rd["created"])
        d["level"] = rd["levelname"]
        d["logger"] = rd["name"]
        red = self.redactor
        d["message"] = rd["message"] if red is None else red.text(rd["message"])
        code = rd.get("code")
        if code is not None:
            d["code"] = code
        d["service"] = identity["service"]
        d["environment"] = identity["environment"]
        d["version"] = identity["version"]
        d["host"] = HOST
        d["instance_id"] = identity["instance_id"]
        d["process"] = rd["process"]
        d["thread"] = rd["threadName"]
        d["module"] = rd["module"]
        d["function"] = rd["funcName"]
        d["line"] = rd["lineno"]
        d["event_id"] = event_id_of(rd)
        if red is None:
            d.update(members(rd))
        else:  # as the byte template does: the context's members, then the rest
            d.update(red.record_members({extra_name(k): v for k, v in rd[CTX].items()}))
            d.update(red.record_members(after_context(rd, {})))
        for key, value in d.items():  # capture() keeps integers as they are: JSON takes 64 bits
            if type(value) is int and not INT_MIN <= value <= INT_MAX:
                d[key] = str(value)
        if self.fields != "default":
            d = apply_preset(self.fields, d, rd.get("levelno"))
        for key, value in self.static_fields.items():
            d.setdefault(key, value)
        if self.rename_fields:
            d = {self.rename_fields.get(k, k): v for k, v in d.items()}
        return d

    # -- the captured record -> bytes, without building the whole object ---------------------
    def render_captured(self, rd: dict[str, Any]) -> bytes:
        """The hot path: ``encode_captured`` from cached pieces, when no hook or option is set.

        Gives exactly ``_json.dumps(self.to_dict(record))``. Raises on anything
        unexpected: call ``encode_captured`` then, which never raises.
        """
        return self._template.render(rd)

    # -- serialization -------------------------------------------------------------
    def encode(self, record: logging.LogRecord) -> bytes:
        """Format ``record`` to UTF-8 JSON bytes; never raises.

        Text that is not valid Unicode (lone surrogates) is repaired and the
        object marked ``"logkafka_repaired": true``; a record the formatter
        cannot build at all still ships as a minimal object marked
        ``"logkafka_error"``.
        """
        rd = record.__dict__
        if CTX not in rd:
            try:
                rd = (capture_slim if self.slim_capture else capture)(record)
            except Exception as exc:  # pragma: no cover - capture() is written not to raise
                return _dumps(repair_text(self._minimal(rd, exc)), default=to_text, option=_OPTS)
        if self.format_name == "envelope":
            return self.envelope(rd, self.encode_captured(rd))
        return self.encode_captured(rd)

    def envelope(self, rd: dict[str, Any], payload: bytes) -> bytes:
        """``payload`` (this formatter's flat object for ``rd``) wrapped in the event envelope; never raises."""
        try:
            identity = rd.get(RESOURCE) or self.identity
            return _envelope.wrap(rd, payload, timestamp=self._clock(rd["created"]), namespace=self.namespace,
                                  source=identity["service"], clean=self.clean_text)
        except Exception as exc:
            report("envelope", f"could not build an envelope, shipping the flat record: {type(exc).__name__}: {exc}")
            return payload

    def encode_captured(self, rd: dict[str, Any]) -> bytes:
        """:meth:`encode` for the attributes :func:`capture` returned."""
        if self.templated:
            try:
                return self.render_captured(rd)
            except Exception:  # anything unusual: the general path below handles it
                pass
        try:
            return _dumps(self.process_log_record(self.to_dict(record_of(rd))), default=to_text, option=_OPTS)
        except Exception:  # text that is not valid Unicode, or a hook that failed: repair below
            pass
        try:
            data = self.process_log_record(self.to_dict(record_of(rd)))
        except Exception as exc:
            data = self._minimal(rd, exc)
        try:
            data = repair_text(jsonable(data))
            data["logkafka_repaired"] = True
            return _dumps(data, default=to_text, option=_OPTS)
        except Exception as exc:
            return _dumps(repair_text(self._minimal(rd, exc)), default=to_text, option=_OPTS)

    def format(self, record: logging.LogRecord) -> str:
        """Format ``record`` as one line of JSON.

        The text carries the capture it was rendered from: a ``QueueHandler`` given this formatter hands its
        listener a copy whose ``msg`` is this text, and a ``KafkaLogHandler`` there ships that capture (the
        message, context, span and error as at the call) instead of the text."""
        rd = record.__dict__
        if CTX in rd:
            return self.prefix + self.encode(record).decode("utf-8")
        slim = self.slim_capture
        try:
            captured = (capture_slim if slim else capture)(record)
        except Exception:  # pragma: no cover - capture() is written not to raise; encode() says what failed
            return self.prefix + self.encode(record).decode("utf-8")
        body = self.encode_captured(captured)
        if self.format_name == "envelope":
            body = self.envelope(captured, body)
        text = PreparedText(self.prefix + body.decode("utf-8"))
        text.capture = (captured, not slim)
        return text

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        """Serialize a dict the way ``format`` does (python-json-logger's hook)."""
        return _dumps(jsonable(log_data), default=to_text, option=_OPTS).decode("utf-8")

    def clean_text(self, text: str) -> str:
        """``text`` redacted (as it is without a redactor); never raises."""
        red = self.redactor
        if red is None:
            return text
        try:
            return red.text(text)
        except Exception:
            return "[REDACTED]"

    def _minimal(self, rd: dict[str, Any], exc: BaseException) -> dict[str, Any]:
        created = rd.get("created")
        return {
            "timestamp": self._clock(created if isinstance(created, float) else time.time()),
            "level": to_text(rd.get("levelname")),
            "logger": to_text(rd.get("name")),
            "message": self.clean_text(to_text(rd.get("message", rd.get("msg")))),
            "service": self.identity["service"],
            "event_id": uuid_text(rd[EID]) if isinstance(rd.get(EID), int) else uuid_text(new_event_id()),
            "logkafka_error": f"formatter failed: {type(exc).__name__}: {to_text(exc)}",
        }

