"""The redaction engine: :class:`Redactor` applies the rules of :mod:`logkafka._redact.rules` to text,
structures and records' members, with its caches; :func:`redaction_settings` reads the settings."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from logkafka._redact.rules import (
    CYCLE,
    KEY_WORDS,
    MAX_DEPTH,
    PAIR,
    REDACTED,
    SECRET_KEYS,
    SECRET_SUFFIXES,
    SUSPECT,
    VALUE_RULES,
    another,
    forms,
    is_card,
    normalize,
    pair_value,
    pem,
    replace_whole,
    secret_values,
    to_text,
    words_of,
)
from logkafka._values import env_bool

_CACHE_SIZE = 4096  # key decisions kept; the cache is emptied when full
_CACHE_KEY_LEN = 256  # longer keys are decided every time, not cached
_SHORT = 64  # texts up to this long are cached with their redacted form
_T = TypeVar("_T")


def _remember(cache: dict[str, _T], key: str, value: _T) -> None:
    """Keep ``value`` for ``key`` in ``cache``: not for a key longer than _CACHE_KEY_LEN; a full cache is
    emptied first."""
    if len(key) <= _CACHE_KEY_LEN:
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[key] = value


def _names(setting: str, value: Iterable[str]) -> list[str]:
    """A list of non-empty strings from a setting, else ``ValueError`` naming it."""
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{setting}: expected a list of key names, got the single string {value!r}")
    try:
        items = list(value)
    except TypeError:
        raise ValueError(f"{setting}: expected a list of key names, got {type(value).__name__}") from None
    for item in items:
        if not isinstance(item, str) or not normalize(item):
            raise ValueError(f"{setting}: every key must be a non-empty string, got {item!r}")
    return items


def _patterns(value: Iterable[str | re.Pattern[str]]) -> list[re.Pattern[str]]:
    """Compiled ``redact_patterns``, else ``ValueError`` naming the setting."""
    if isinstance(value, (str, bytes, re.Pattern)):
        raise ValueError(f"redact_patterns: expected a list of regexes, got the single {value!r}")
    try:
        items = list(value)
    except TypeError:
        raise ValueError(f"redact_patterns: expected a list of regexes, got {type(value).__name__}") from None
    compiled: list[re.Pattern[str]] = []
    for item in items:
        if isinstance(item, re.Pattern):
            if not isinstance(item.pattern, str):
                raise ValueError(f"redact_patterns: {item!r} is a bytes regex; text needs a str regex")
            pattern = item
        elif isinstance(item, str):
            try:
                pattern = re.compile(item)
            except re.error as exc:
                raise ValueError(f"redact_patterns: {item!r} does not compile: {exc}") from None
        else:
            raise ValueError(f"redact_patterns: every pattern must be a str or a compiled str regex, got {item!r}")
        if pattern.fullmatch("") is not None:
            raise ValueError(f"redact_patterns: {pattern.pattern!r} matches the empty string")
        compiled.append(pattern)
    return compiled


class Redactor:
    """Removes secrets from keys, values and text by the rules in :mod:`logkafka._redact.rules`.

    ``keys`` adds secret key names (exact names, normalised like every key);
    ``patterns`` adds regexes whose whole match is replaced; ``allow`` names keys
    whose values the key rule never hides, however the key is spelt (a dotted
    entry only that full key, an undotted one also the last part of dotted keys;
    the value rules still search their values); ``enabled=False`` turns every
    method into the identity. A bad setting raises ``ValueError`` naming
    ``redact_keys``, ``redact_patterns``, ``redact_allow`` or ``redact``.
    Thread-safe: the only state that changes is a cache of key decisions.
    """

    def __init__(self, *, keys: Iterable[str] = (), patterns: Iterable[str | re.Pattern[str]] = (),
                 allow: Iterable[str] = (), enabled: bool = True) -> None:
        if not isinstance(enabled, bool):
            raise ValueError(f"redact: expected True or False, got {enabled!r}")
        extra = [form for k in _names("redact_keys", keys) for form in forms(k)]
        self._allow = frozenset(form for k in _names("redact_allow", allow) for form in forms(k))
        self._patterns = _patterns(patterns)
        self._enabled = enabled
        self._names = SECRET_KEYS | frozenset(extra)
        self._near_key = re.compile(
            "(?:" + "|".join([*KEY_WORDS, *words_of(extra)]) + r")[\w.\-\"'\\]{0,104}[ \t]*[=:]"
        )
        self._secret: dict[str, bool] = {}
        self._keys: dict[str, str] = {}
        self._members_seen: dict[str, tuple[bool, str]] = {}  # key -> (secret, key as shipped)
        self._short: dict[str, str] = {}  # short text -> redacted text ("" when nothing was found)

    @property
    def has_patterns(self) -> bool:
        """Whether ``patterns`` of the user's are searched too."""
        return bool(self._patterns)

    @property
    def enabled(self) -> bool:
        """Whether this redactor changes anything."""
        return self._enabled

    def near_key(self, s: str) -> bool:
        """Whether ``s`` holds ``name=`` or ``name:`` where the name has a word of a secret key in it (``token=``,
        ``Authorization:``): the pre-check of the key=value rule (False when redaction is off)."""
        return self._enabled and ("=" in s or ":" in s) and self._near_key.search(s.lower()) is not None

    def is_secret_key(self, key: str) -> bool:
        """Whether a member under ``key`` loses its whole value (always False when disabled)."""
        if not self._enabled or not isinstance(key, str):
            return False
        hit = self._secret.get(key)
        if hit is not None:
            return hit
        try:
            hit = self._decide(key)
        except Exception:
            return False
        _remember(self._secret, key, hit)
        return hit

    def _decide(self, key: str) -> bool:
        found = False
        for full in forms(key):
            last = full.rpartition(".")[2].strip("_")
            if full in self._allow or last in self._allow:
                return False
            found = found or full in self._names or last in self._names or last.endswith(SECRET_SUFFIXES)
        return found

    def text(self, s: str) -> str:
        """``s`` with secret values replaced by ``[REDACTED]``; the same object when nothing is found."""
        if not self._enabled:
            return s
        if type(s) is not str:
            s = to_text(s)
        try:
            return self._text(s)
        except Exception:
            return REDACTED

    def value(self, obj: Any) -> Any:
        """A redacted copy of ``obj`` (see :mod:`logkafka._redact.rules`); ``obj`` itself when nothing changes."""
        if not self._enabled:
            return obj
        try:
            return self._walk(obj, 0, set())
        except Exception:
            return REDACTED

    def rules_in(self, s: str) -> list[str]:
        """The names of the rules that would change ``s`` (none when nothing would, or redaction is off)."""
        if not self._enabled or self.text(s) == s:
            return []
        found = [f"redact_patterns[{i}]" for i, p in enumerate(self._patterns) if replace_whole(p, s) != s]
        if "-----BEGIN" in s and pem(s) != s:
            found.append("PEM private key")
        if ("=" in s or ":" in s) and self._pairs(s) != s:
            found.append("secret key=value in text")
        found += [name for name, rule in VALUE_RULES if rule(s) != s]
        return found or ["redaction"]

    def mapping(self, d: Mapping[str, Any]) -> dict[str, Any]:
        """A new dict of ``d``'s members, redacted; ``d`` is the first of the ten levels walked."""
        return self._mapping(d, 1)

    def record_members(self, d: Mapping[str, Any]) -> dict[str, Any]:
        """A new dict of a record's members, redacted: they do not count as a level, so each member's
        value has the ten levels a value has in the formatter."""
        return self._mapping(d, 0)

    def _mapping(self, d: Mapping[str, Any], depth: int) -> dict[str, Any]:
        if not self._enabled:
            return d if isinstance(d, dict) else dict(d)
        try:
            return self._members(d, depth, {id(d)})
        except Exception:
            return {}

    def _text(self, s: str) -> str:
        if len(s) <= _SHORT:  # short values repeat (codes, states, currencies): decided once
            done = self._short.get(s)
            if done is None:
                done = self._search(s)
                _remember(self._short, s, "" if done is s else done)  # "": nothing found
                return done
            return s if done == "" else done  # the caller's own object when nothing was found
        return self._search(s)

    def _search(self, s: str) -> str:
        for pattern in self._patterns:
            s = replace_whole(pattern, s)
        if SUSPECT.search(s) is None and not self.near_key(s):
            return s
        if "-----BEGIN" in s:
            s = pem(s)
        if "=" in s or ":" in s:
            s = self._pairs(s)
        return secret_values(s)

    def _pairs(self, s: str) -> str:
        """Values after secret keys in ``key=value`` / ``"key": value`` text replaced."""
        out: list[str] = []
        done = pos = 0
        n = len(s)
        while True:
            m = PAIR.search(s, pos)
            if m is None:
                break
            pos = m.end()
            if pos >= n or s[pos] in "=:" or not self.is_secret_key(m.group(1)):
                continue
            found = pair_value(s, pos, m.group(1), m.group(2))
            if found is None:
                continue
            out += (s[done:found.start], found.text)
            done = pos = found.end
        if not out:
            return s
        out.append(s[done:])
        return "".join(out)

    def _key(self, key: str) -> str:
        """A dict key with secret values in its text replaced (cached)."""
        new = self._keys.get(key)
        if new is None:
            new = self._text(key)
            _remember(self._keys, key, new)
        return new

    def _members(self, d: Mapping[Any, Any], depth: int, path: set[int]) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        known = self._members_seen
        new_key: Any
        for k, v in d.items():
            if type(k) is str:
                hit = known.get(k)
                if hit is None:  # both decisions about this key, in one cached lookup
                    hit = (self.is_secret_key(k), self._key(k))
                    _remember(known, k, hit)
                secret, new_key = hit
                if not secret:  # the common members, without a call
                    t = type(v)
                    if t is str:
                        v = self._text(v)
                    elif t is int:
                        if 10**12 <= v < 10**19 and is_card(str(v)):
                            v = REDACTED
                    elif v is not None and t is not float and t is not bool:
                        v = self._walk(v, depth, path)
                    if new_key in out:
                        new_key = another(out, new_key)
                    out[new_key] = v
                    continue
            elif isinstance(k, (str, bytes, bytearray)):
                text = to_text(k)
                secret = self.is_secret_key(text)
                red = self._key(text)
                new_key = k if red == text else red
            elif k is None or isinstance(k, (int, float)):
                secret, new_key = False, k
            else:
                secret, new_key = self.is_secret_key(to_text(k)), k
            new_value = REDACTED if secret else self._walk(v, depth, path)
            if new_key in out:
                new_key = another(out, new_key)
            out[new_key] = new_value
        return out

    def _container(self, obj: Any, depth: int, path: set[int]) -> Any:
        """A redacted copy of a Mapping (as a dict), list, tuple, set or frozenset; ``[REDACTED]`` past
        MAX_DEPTH levels, ``<cycle>`` for a container already on the current path."""
        if depth >= MAX_DEPTH:
            return REDACTED
        oid = id(obj)
        if oid in path:
            return CYCLE
        path.add(oid)
        t = type(obj)
        try:
            if t is dict or (t is not list and isinstance(obj, Mapping)):
                return self._members(obj, depth + 1, path)
            items = [self._walk(x, depth + 1, path) for x in obj]
        finally:
            path.discard(oid)
        if t is list or isinstance(obj, list):
            return items
        if isinstance(obj, tuple):
            return tuple(items)
        return set(items) if isinstance(obj, set) else frozenset(items)

    def _walk(self, obj: Any, depth: int, path: set[int]) -> Any:
        t = type(obj)
        if t is str:
            return self._text(obj)
        if t is int:
            return REDACTED if 10**12 <= obj < 10**19 and is_card(str(obj)) else obj
        if obj is None or t is float or t is bool:
            return obj
        if t is list or t is dict:  # the usual containers, without the isinstance chain below
            return self._container(obj, depth, path)
        try:
            if isinstance(obj, str):
                return self._text(str(obj))
            if isinstance(obj, (bytes, bytearray)):
                text = to_text(obj)
                red = self._text(text)
                return obj if red == text else red
            if isinstance(obj, (Mapping, list, tuple, set, frozenset)):
                return self._container(obj, depth, path)
            if isinstance(obj, int) and not isinstance(obj, bool):
                return REDACTED if 10**12 <= obj < 10**19 and is_card(str(int(obj))) else obj
        except Exception:
            return REDACTED
        return obj


def redaction_settings(redact: Any, keys: Any, patterns: Any, allow: Any) -> dict[str, Any]:
    """The redaction settings: the arguments, with ``LOGKAFKA_REDACT`` (when ``redact`` is left at True),
    ``LOGKAFKA_REDACT_KEYS`` and ``LOGKAFKA_REDACT_ALLOW`` (comma-separated) and ``LOGKAFKA_REDACT_PATTERNS``
    (a JSON array, or one regex a line) added to them."""
    out = {"redact": env_bool("LOGKAFKA_REDACT", None, True) if redact is True else redact,
           "redact_keys": keys, "redact_patterns": patterns, "redact_allow": allow}
    for name, env in (("redact_keys", "LOGKAFKA_REDACT_KEYS"), ("redact_allow", "LOGKAFKA_REDACT_ALLOW")):
        more = [k.strip() for k in os.environ.get(env, "").split(",") if k.strip()]
        if more:
            out[name] = [*_listed(name, out[name]), *more]
    text = os.environ.get("LOGKAFKA_REDACT_PATTERNS", "").strip()
    if text:
        if text.startswith("["):
            try:
                found = json.loads(text)
            except ValueError as exc:
                raise ValueError(f"LOGKAFKA_REDACT_PATTERNS: not a valid JSON array: {exc}") from None
            if not isinstance(found, list) or not all(isinstance(p, str) for p in found):
                raise ValueError("LOGKAFKA_REDACT_PATTERNS: expected a JSON array of regular expressions")
        else:
            found = [line.strip() for line in text.splitlines() if line.strip()]
        for pattern in found:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"LOGKAFKA_REDACT_PATTERNS: invalid regular expression {pattern!r}: {exc}") from None
        out["redact_patterns"] = [*_listed("redact_patterns", patterns), *found]
    return out


def _listed(name: str, value: Any) -> list[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValueError(f"{name}: expected a list, got {value!r}")
    return list(value)
