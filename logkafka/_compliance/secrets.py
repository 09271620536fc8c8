"""What the redaction rules would have removed from records that reached Kafka anyway: the field and the
rule, never the value (a raw producer that bypassed the handler, a redaction turned off, a new rule)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from logkafka._redact import REDACTED, Redactor, redaction_settings

_DEPTH = 10
_EMPTY = (None, "", REDACTED)
#: A record's own fields, which the formatter writes and does not redact: they are not looked at (a secret
#: there is not one redaction "would have removed").
UNREDACTED = frozenset({"timestamp", "@timestamp", "level", "logger", "service", "environment", "version", "host",
                        "instance_id", "process", "thread", "module", "function", "line", "event_id", "stream"})


def checker() -> Redactor:
    """The redactor with the rules the handlers use here (``LOGKAFKA_REDACT_*`` included)."""
    r = redaction_settings(True, (), (), ())
    return Redactor(keys=r["redact_keys"], patterns=r["redact_patterns"], allow=r["redact_allow"], enabled=True)


def findings(redactor: Redactor, record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, rule) for every member of ``record`` that still holds what redaction removes."""
    if _clean(redactor, record):
        return []
    found: list[tuple[str, str]] = []
    _walk(redactor, {k: v for k, v in record.items() if k not in UNREDACTED or not isinstance(v, str)}, "", found, 0)
    return found


def _clean(redactor: Redactor, record: Mapping[str, Any]) -> bool:
    """The quick look most records pass: no secret key holds a value, no number could be a card, and no text
    holds what the rules find (short texts, which repeat, are decided once: the redactor caches them)."""
    stack: list[Any] = [v for k, v in record.items() if k not in UNREDACTED or not isinstance(v, str)]
    if any(redactor.is_secret_key(str(k)) for k in record):
        return False
    text = redactor.text
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if text(value) != value:
                return False
        elif isinstance(value, Mapping):
            for k, v in value.items():
                key = str(k)
                if redactor.is_secret_key(key) or text(key) != key:
                    return False
                stack.append(v)
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, int) and not isinstance(value, bool) and 10**12 <= value < 10**19:
            return False  # the number may be a card's: the member by member look decides
    return True


def _walk(redactor: Redactor, value: Any, path: str, found: list[tuple[str, str]], depth: int) -> None:
    if depth > _DEPTH:
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            key = str(k)
            where = f"{path}.{key}" if path else key
            found += [(where + " (the key)", rule) for rule in redactor.rules_in(key)]
            if redactor.is_secret_key(key):
                if v not in _EMPTY and v != [] and v != {}:
                    found.append((where, "secret key name"))
                continue
            _walk(redactor, v, where, found, depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _walk(redactor, v, f"{path}[{i}]", found, depth + 1)
    elif isinstance(value, str):
        found += [(path, rule) for rule in redactor.rules_in(value)]
    elif isinstance(value, int) and not isinstance(value, bool) and redactor.value(value) != value:
        found.append((path, "card number"))
