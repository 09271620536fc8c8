"""What the redaction rules would have removed from records that reached Kafka anyway: the field and the
rule, never the value (a raw producer that bypassed the handler, a redaction turned off, a new rule)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from logkafka._redact import REDACTED, Redactor, redaction_settings

#: What any secret value holds (see ``SUSPECT`` in ``logkafka._redact.rules``), as substrings...
_SIGNS = ("@", "yJ", "-----BEGIN", "AKIA", "ASIA", "AIza", "gh", "github_pat_", "xox", "_live_", "_test_", "earer",
          "EARER")
#: ... and as the digits of a card number.
_CARD_DIGITS = re.compile(r"[2-9](?:[ -]?[0-9]){12}")
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


_KEYS_SEEN: dict[tuple[Any, ...], bool] = {}  # a record's keys -> whether one of them is secret (shapes repeat)


def _clean(redactor: Redactor, record: Mapping[str, Any]) -> bool:
    """The quick look most records pass: no secret key, no nested member, no number that could be a card, and
    the texts, joined, show none of the signs a secret needs (the rules' own pre-check, as substring tests).
    Whatever it does not pass is looked at member by member."""
    keys = tuple(record)
    secret = _KEYS_SEEN.get(keys)
    if secret is None:
        secret = any(redactor.is_secret_key(str(k)) or redactor.text(str(k)) != str(k) for k in keys)
        if len(_KEYS_SEEN) < 1024:
            _KEYS_SEEN[keys] = secret
    if secret or redactor.has_patterns:
        return False
    texts = []
    for k, v in record.items():
        t = type(v)
        if t is str:
            if k not in UNREDACTED:
                texts.append(v)
        elif t is int:
            if 10**12 <= v < 10**19:
                return False  # the number may be a card's
        elif v is not None and t is not float and t is not bool:
            return False  # a nested member (a diff, a context): looked at member by member
    joined = "\n".join(texts)
    for sign in _SIGNS:
        if sign in joined:
            return False
    return _CARD_DIGITS.search(joined) is None and not redactor.near_key(joined)


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
