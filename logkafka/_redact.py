"""Secrets and personal data removed from a record's keys, values and messages.

:class:`Redactor` is pure logic; the formatter calls it on every record. What it
does, in brief:

**Secret keys.** A dict member whose key names a secret keeps its key and loses
its whole value (a string, dict, list, number, ``None``: anything) to
``"[REDACTED]"``. Keys are compared after normalising: camelCase split
(``apiKey`` reads ``api_key``), lower case, ``-`` and spaces read as ``_``. A
dotted key (``http.authorization``, ``user.email``) is checked whole and by its
last part. Secret are the names in :data:`SECRET_KEYS` and every key ending in
one of :data:`SECRET_SUFFIXES` (``db_password``, ``x_api_key``, ``github_token``,
``client_secret``), nothing else: ``token_count``, ``session_id``, ``keyboard``,
``monkey`` are ordinary keys, while ``primary_key`` and ``cache_key`` end in
``_key`` and are secret (add them to ``allow`` to keep them).

**Secret values**, searched in every string: in structures, the message, the
exception text. Only the secret part is replaced, so the text stays readable:

- ``key=value``, ``key: value``, ``"key": "value"``, ``'key': value``,
  ``key => value`` where *key* is a secret key (``password=hunter2``,
  ``?api_key=...&``, JSON or a dict's repr inside a message). An unquoted value
  ends at whitespace or one of ``& , ; ) ] } < > " ' \\``; a ``{...}`` or
  ``[...]`` value is cut at its closing bracket (or the end of the text when it
  has none); ``cookie`` / ``set-cookie`` values run to the end of the line. An
  HTTP scheme is kept: ``Authorization: Bearer [REDACTED]``.
- ``Bearer <token>`` anywhere (``Bearer``, ``bearer`` or ``BEARER``), unless the
  "token" reads like an ordinary word (letters only, at most 15, lower or title
  case: ``Bearer token missing``).
- JWTs (``eyJ...``, three to five base64url parts); AWS access key ids
  (``AKIA``/``ASIA`` + 16); GitHub, Slack, Stripe and Google API tokens by their
  prefixes; the body of a PEM private key (the BEGIN/END lines stay; a block
  without END is cut to the end of the text).
- e-mail addresses; the password of ``scheme://user:password@host`` (the user
  and host stay).
- card numbers: 13 to 19 digits, whole or in groups of 3 to 7 digits split by
  one space or dash, passing the Luhn check and not starting with 0 or 1 (the
  card networks issue from 2 to 6, and 8 and 9; under 1 there are only UATP
  airline cards, but epoch-millisecond timestamps and snowflake ids start with
  1, and one in ten of them passes Luhn). Digits glued to letters (hex hashes),
  after ``+`` (phone numbers) or after ``<digit>.`` (decimals) are not card
  numbers. An ``int`` of that shape is redacted as well.
- the regexes of ``patterns`` (the whole match), run first.

**Structures.** dicts (and any Mapping) come back as new dicts, lists as lists,
tuples as plain tuples, sets and frozensets as such; the input is never mutated.
Ten levels of containers are walked; a container nested deeper becomes
``"[REDACTED]"``. A container already on the current path becomes ``"<cycle>"``.
Dict keys are searched like any string (an e-mail used as a key is redacted).
bytes are decoded (UTF-8, ``backslashreplace``) and searched: if anything was
found the redacted text replaces them, else the bytes come back as they were.
Other objects are returned as they are: the formatter renders them to text and
calls :meth:`Redactor.text` on that.

Nothing here raises on odd input; an unexpected failure while redacting a value
gives ``"[REDACTED]"`` rather than the value. Ordinary text (no run of 6 digits,
no ``@``, ``eyJ``, ``Bearer``, ``-----BEGIN``, token prefix, and no secret-looking
word before an ``=`` or ``:``) costs one regex search, two when it has an ``=`` or
``:``; key decisions are cached.
"""

from __future__ import annotations

import json
import os
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from itertools import accumulate
from typing import Any

from logkafka._values import env_bool

__all__ = ["CYCLE", "MAX_DEPTH", "REDACTED", "SECRET_KEYS", "SECRET_SUFFIXES", "Redactor"]

#: What a secret is replaced with.
REDACTED = "[REDACTED]"
#: What a container that contains itself is replaced with.
CYCLE = "<cycle>"
#: Levels of containers walked; a container nested deeper is replaced whole.
MAX_DEPTH = 10
#: Key names that are secret (normalised: lower case, ``_`` for ``-``).
SECRET_KEYS = frozenset({
    "password", "passwd", "pwd", "secret", "api_key", "apikey", "token", "auth_token", "access_token",
    "refresh_token", "private_key", "credentials", "ssn", "credit_card", "email", "auth", "authorization",
    "bearer", "jwt", "session", "cookie", "set_cookie", "proxy_authorization",
})
#: Key endings that make a key secret.
SECRET_SUFFIXES = ("_key", "_token", "_secret", "password", "_passwd", "_pwd")

_CACHE_SIZE = 4096  # key decisions kept; the cache is emptied when full
_CACHE_KEY_LEN = 256  # longer keys are decided every time, not cached
_SHORT = 64  # texts up to this long are cached with their redacted form

# The pre-check. Every secret value needs one of these (all alternatives start with a literal, so the regex
# engine skips ahead to the few places where one may start): a card number's 13 digits, the first 2 to 9, each
# maybe after one space or dash (a card never starts with 0 or 1, see _cards), "@", a JWT's "eyJ", a
# PEM block, an AWS key id, a token prefix, "Bearer".
_SUSPECT = re.compile(
    "|".join(f"{d}(?:[ -]?[0-9]){{12}}" for d in "23456789")
    + r"|@|yJ|-----BEGIN|A(?:KIA|SIA|Iza)|gh[pousr]_|github_pat_|xox[abposr]-|_(?:live|test)_|Bearer|bearer|BEARER"
)
# ... and a secret key in text contains one of these words (searched in lower case) before its "=" or ":".
_KEY_WORDS = ("pass", "pwd", "secret", "key", "token", "auth", "jwt", "session", "cookie", "cred", "ssn", "mail")

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = str.maketrans({"-": "_", " ": "_"})

# key=value inside text: the key (maybe closed by a quote), the separator.
_PAIR = re.compile(r"(?<![\w.])([A-Za-z_][\w.\-]{0,99})(\\?[\"'])?[ \t]*(?:=>|:=|[=:])[ \t]*")
_DQ = re.compile(r'"((?:[^"\\\n]|\\.)*)"?')
_SQ = re.compile(r"'((?:[^'\\\n]|\\.)*)'?")
_ESC_DQ = re.compile(r'\\"((?:[^"\\\n]|\\[^"\n])*)(?:\\")?')
_UNQUOTED = re.compile(r"[^\s&,;)\]}<>\"'\\]+")
_LINE_END = re.compile(r"[\r\n]")
_LINE_OR_QUOTE_END = re.compile(r"[\r\n\"]")
_SCHEME = re.compile(
    r"(?i)(bearer|basic|token|apikey|api-key|negotiate|ntlm|dpop|mac|hawk|oauth|digest|aws4-hmac-sha256|hoba"
    r"|mutual|scram-sha-1|scram-sha-256|vapid|signature)[ \t]+(?=\S)"
)
_PARAM_SCHEMES = frozenset({"digest", "aws4-hmac-sha256", "hoba", "mutual", "scram-sha-1", "scram-sha-256",
                            "vapid", "signature"})
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_BRACKETS = re.compile(r"[\[\]{}\"'\\]")

_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}?PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]{0,40}?PRIVATE KEY(?: BLOCK)?-----")
_USERINFO = re.compile(r"(?i)\b[a-z][a-z0-9+.\-]{0,31}://[^\s/?#@:\"'<>]*:([^\s/?#\"'<>]+)@")
_BEARER = re.compile(r"(?<![\w-])(?:Bearer|bearer|BEARER)[ \t]+([A-Za-z0-9\-._~+/]+=*)")
_JWT = re.compile(r"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{2,}(?:\.[A-Za-z0-9_\-]*){2,4}")
_AWS_KEY_ID = re.compile(r"(?<![A-Za-z0-9])A[KS]IA[A-Z0-9]{16}(?![A-Za-z0-9])")
_TOKENS = re.compile(
    r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{22,255}|xox[abposr]-[A-Za-z0-9\-]{10,}"
    r"|[rs]k_(?:live|test)_[A-Za-z0-9]{16,}|AIza[A-Za-z0-9_\-]{35})"
)
_EMAIL = re.compile(
    r"(?<![\w.%+\-])[\w.%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63})*\.[A-Za-z]{2,24}(?![\w\-])"
)
_SIX_DIGITS = re.compile(r"[0-9]{3}[ -]?[0-9]{3}")
_DIGIT_RUN = re.compile(r"(?<![A-Za-z0-9+])(?<![0-9]\.)[0-9]+(?:[ -][0-9]+)*")
_DIGIT_GROUP = re.compile(r"[0-9]+")
_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")  # a digit doubled, its two digits summed


def _another(out: Mapping[Any, Any], key: Any) -> str:
    """``key#2``, ``key#3``...: the first name not in ``out`` (two keys redacted to the same text)."""
    n = 2
    while f"{key}#{n}" in out:
        n += 1
    return f"{key}#{n}"


def _normalize(key: str) -> str:
    """``key`` as the rules compare it: camelCase split, lower case, ``_`` for ``-`` and spaces."""
    return _CAMEL.sub("_", key.strip()).lower().translate(_SEPARATORS).strip("_")


def _forms(key: str) -> tuple[str, str]:
    """The two spellings a key is compared in: camelCase split (``apiKey``: ``api_key``) and not (``PassWord``)."""
    return _normalize(key), key.strip().lower().translate(_SEPARATORS).strip("_")


def _is_card(digits: str) -> bool:
    """Whether an ASCII digit string is a card number by this module's rule."""
    plain = digits.encode("ascii")
    return 13 <= len(plain) <= 19 and plain[0] > 49 and _luhn_window(plain, plain.translate(_DOUBLED), 0, len(plain))


def _is_word(token: str) -> bool:
    """Whether the "token" after ``Bearer`` reads like an ordinary word rather than a credential."""
    return len(token) <= 15 and token.isalpha() and (token.islower() or token.istitle())


def _quoted(kq: str | None) -> str:
    """``[REDACTED]`` in the quotes of its key, so JSON or a repr inside text stays well formed."""
    return f"{kq}{REDACTED}{kq}" if kq else REDACTED


def _line_end(s: str, i: int, stop: re.Pattern[str] = _LINE_END) -> int:
    """Where the line around ``s[i]`` ends (or the first match of ``stop`` after ``i``)."""
    m = stop.search(s, i)
    return m.start() if m else len(s)


def _bracket_end(s: str, i: int) -> int:
    """The end of the bracketed value starting at ``s[i]``, or ``len(s)`` when it never closes."""
    depth = 0
    quote = ""
    while True:
        m = _BRACKETS.search(s, i)
        if m is None:
            return len(s)
        j = m.start()
        c = s[j]
        i = j + 1
        if c == "\\":
            i += 1
        elif quote:
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c in "{[":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return i


def _pem(s: str) -> str:
    """PEM private key bodies replaced, their BEGIN and END lines kept."""
    out: list[str] = []
    done = 0
    for begin in _PEM_BEGIN.finditer(s):
        if begin.start() < done:
            continue
        end = _PEM_END.search(s, begin.end())
        stop = end.start() if end else len(s)
        body = s[begin.end():stop]
        core = body.strip()
        if core and core != REDACTED:
            lead = body[: len(body) - len(body.lstrip())]
            trail = body[len(body.rstrip()):]
            out += (s[done:begin.end()], lead, REDACTED, trail)
            done = stop
    if not out:
        return s
    out.append(s[done:])
    return "".join(out)


def _luhn_window(plain: bytes, doubled: bytes, p: int, q: int) -> bool:
    """The Luhn check of the ASCII digits ``plain[p:q]`` (``doubled`` holds each digit doubled and summed)."""
    first = p if (q - 1 - p) % 2 == 0 else p + 1  # the rightmost digit is not doubled, the next one is
    other = p + 1 if first == p else p
    return (sum(plain[first:q:2]) + sum(doubled[other:q:2]) - 48 * (q - p)) % 10 == 0


def _cards(s: str) -> str:
    """Card numbers replaced (see the module docstring for the rule)."""
    out: list[str] = []
    done = 0
    for run in _DIGIT_RUN.finditer(s):
        a, b = run.span()
        if b - a < 13:
            continue
        spans = [g.span() for g in _DIGIT_GROUP.finditer(s, a, b)]
        plain = run.group().replace(" ", "").replace("-", "").encode("ascii")
        doubled = plain.translate(_DOUBLED)
        cum = list(accumulate([y - x for x, y in spans], initial=0))  # group i is plain[cum[i]:cum[i + 1]]
        n = len(spans)
        # Digits glued to a letter or starting a decimal fraction are not part of a card number.
        if b < len(s) and (s[b].isalpha() or s[b] == "_" or (s[b] == "." and s[b + 1:b + 2].isdigit())):
            n -= 1
        # short[i]: the first group from i on that cannot be part of a grouped number (not 3 to 7 digits).
        short = [n] * (n + 1)
        for k in range(n - 1, -1, -1):
            size = cum[k + 1] - cum[k]
            short[k] = short[k + 1] if 3 <= size <= 7 else k
        i = 0
        while i < n:
            p = cum[i]
            size = cum[i + 1] - p
            if plain[p] < 50:  # "0" or "1"
                i += 1
                continue
            if 13 <= size <= 19:
                if _luhn_window(plain, doubled, p, p + size):
                    out += (s[done:spans[i][0]], REDACTED)
                    done = spans[i][1]
                i += 1
                continue
            # Grouped: groups i..j - 1 of 3 to 7 digits, 13 to 19 in all; the longest that passes wins.
            j = min(bisect_right(cum, p + 19, i) - 1, short[i])
            while j > i + 1 and cum[j] - p >= 13 and not _luhn_window(plain, doubled, p, cum[j]):
                j -= 1
            if j > i + 1 and cum[j] - p >= 13:
                out += (s[done:spans[i][0]], REDACTED)
                done = spans[j - 1][1]
                i = j
            else:
                i += 1
    if not out:
        return s
    out.append(s[done:])
    return "".join(out)


def _sub(pattern: re.Pattern[str], repl: Callable[[re.Match[str]], str], s: str) -> str:
    """``pattern.sub(repl, s)``, but ``s`` itself when ``repl`` left every match as it was."""
    out = pattern.sub(repl, s)
    return s if out == s else out


def _userinfo(m: re.Match[str]) -> str:
    password = m.group(1)
    if password == REDACTED:
        return m.group(0)
    return m.group(0)[: m.start(1) - m.start()] + REDACTED + "@"


def _bearer(m: re.Match[str]) -> str:
    if _is_word(m.group(1)):
        return m.group(0)
    return m.group(0)[: m.start(1) - m.start()] + REDACTED


def _whole(m: re.Match[str]) -> str:
    return REDACTED if m.group(0) else ""


def _words_of(keys: Iterable[str]) -> list[str]:
    """The longest part of each extra key, for the pre-check: any spelling of the key contains it."""
    words: list[str] = []
    for key in keys:
        parts = [p for p in re.split(r"[_.]", key) if p]
        if parts:
            words.append(re.escape(max(parts, key=len).lower()))
    return words


def _names(setting: str, value: Iterable[str]) -> list[str]:
    """A list of non-empty strings from a setting, else ``ValueError`` naming it."""
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{setting}: expected a list of key names, got the single string {value!r}")
    try:
        items = list(value)
    except TypeError:
        raise ValueError(f"{setting}: expected a list of key names, got {type(value).__name__}") from None
    for item in items:
        if not isinstance(item, str) or not _normalize(item):
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
    """Removes secrets from keys, values and text by the rules in this module's docstring.

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
        extra = [form for k in _names("redact_keys", keys) for form in _forms(k)]
        self._allow = frozenset(form for k in _names("redact_allow", allow) for form in _forms(k))
        self._patterns = _patterns(patterns)
        self._enabled = enabled
        self._names = SECRET_KEYS | frozenset(extra)
        self._near_key = re.compile(
            "(?:" + "|".join([*_KEY_WORDS, *_words_of(extra)]) + r")[\w.\-\"'\\]{0,104}[ \t]*[=:]"
        )
        self._secret: dict[str, bool] = {}
        self._keys: dict[str, str] = {}
        self._members_seen: dict[str, tuple[bool, str]] = {}  # key -> (secret, key as shipped)
        self._short: dict[str, str] = {}  # short text -> redacted text ("" when nothing was found)

    @property
    def enabled(self) -> bool:
        """Whether this redactor changes anything."""
        return self._enabled

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
        if len(key) <= _CACHE_KEY_LEN:
            if len(self._secret) >= _CACHE_SIZE:
                self._secret.clear()
            self._secret[key] = hit
        return hit

    def _decide(self, key: str) -> bool:
        found = False
        for full in _forms(key):
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
            s = _to_text(s)
        try:
            return self._text(s)
        except Exception:
            return REDACTED

    def value(self, obj: Any) -> Any:
        """A redacted copy of ``obj`` (see the module docstring); ``obj`` itself when nothing changes."""
        if not self._enabled:
            return obj
        try:
            return self._walk(obj, 0, set())
        except Exception:
            return REDACTED

    def mapping(self, d: Mapping[str, Any], *, record: bool = False) -> dict[str, Any]:
        """A new dict of ``d``'s members, redacted; ``d`` is the first of the ten levels walked.

        ``record=True``: ``d`` holds a record's members, which do not count as a level: each
        member's value has the ten levels a value has in the formatter.
        """
        if not self._enabled:
            return d if isinstance(d, dict) else dict(d)
        try:
            return self._members(d, 0 if record else 1, {id(d)})
        except Exception:
            return {}

    def _text(self, s: str) -> str:
        if len(s) <= _SHORT:  # short values repeat (codes, states, currencies): decided once
            done = self._short.get(s)
            if done is None:
                done = self._search(s)
                if len(self._short) >= _CACHE_SIZE:
                    self._short.clear()
                self._short[s] = "" if done is s else done  # "": nothing found
                return done
            return s if done == "" else done  # the caller's own object when nothing was found
        return self._search(s)

    def _search(self, s: str) -> str:
        for pattern in self._patterns:
            s = _sub(pattern, _whole, s)
        if _SUSPECT.search(s) is None and not (("=" in s or ":" in s) and self._near_key.search(s.lower())):
            return s
        if "-----BEGIN" in s:
            s = _pem(s)
        if "=" in s or ":" in s:
            s = self._pairs(s)
        if "://" in s:
            s = _sub(_USERINFO, _userinfo, s)
        if "earer" in s or "BEARER" in s:
            s = _sub(_BEARER, _bearer, s)
        if "eyJ" in s:
            s = _JWT.sub(REDACTED, s)
        if "IA" in s:
            s = _AWS_KEY_ID.sub(REDACTED, s)
        if "@" in s:
            s = _EMAIL.sub(REDACTED, s)
        if _SIX_DIGITS.search(s):
            s = _cards(s)
        return _TOKENS.sub(REDACTED, s)

    def _pairs(self, s: str) -> str:
        """Values after secret keys in ``key=value`` / ``"key": value`` text replaced."""
        out: list[str] = []
        done = pos = 0
        n = len(s)
        while True:
            m = _PAIR.search(s, pos)
            if m is None:
                break
            pos = m.end()
            if pos >= n or s[pos] in "=:" or not self.is_secret_key(m.group(1)):
                continue
            found = self._pair_value(s, pos, m.group(1), m.group(2))
            if found is None:
                continue
            start, end, replacement = found
            out += (s[done:start], replacement)
            done = pos = end
        if not out:
            return s
        out.append(s[done:])
        return "".join(out)

    @staticmethod
    def _pair_value(s: str, i: int, key: str, kq: str | None) -> tuple[int, int, str] | None:
        """(start, end, replacement) for the value starting at ``s[i]``, or None when there is nothing to hide."""
        if s.startswith(REDACTED, i):
            return None
        c = s[i]
        if c in "\"'" or s.startswith('\\"', i):
            m = (_DQ if c == '"' else _SQ if c == "'" else _ESC_DQ).match(s, i)
            assert m is not None  # each matches any text that starts with its quote
            a, b = m.span(1)
            if a == b or s[a:b] == REDACTED:
                return None
            scheme = _SCHEME.match(s, a, b)
            return (scheme.end() if scheme else a), b, REDACTED
        if c in "{[":
            return i, _bracket_end(s, i), _quoted(kq)
        scheme = _SCHEME.match(s, i)
        if scheme:
            after = scheme.end()
            if s.startswith(REDACTED, after):
                return None
            if scheme.group(1).lower() in _PARAM_SCHEMES:
                return after, _line_end(s, after), REDACTED
            token = _TOKEN68.match(s, after)
            if token:
                return after, token.end(), REDACTED
        if key.lower().replace("-", "_").endswith("cookie"):
            return i, _line_end(s, i, _LINE_OR_QUOTE_END), REDACTED
        m = _UNQUOTED.match(s, i)
        if m is None:
            return None
        return i, m.end(), _quoted(kq)

    def _key(self, key: str) -> str:
        """A dict key with secret values in its text replaced (cached)."""
        new = self._keys.get(key)
        if new is None:
            new = self._text(key)
            if len(key) <= _CACHE_KEY_LEN:
                if len(self._keys) >= _CACHE_SIZE:
                    self._keys.clear()
                self._keys[key] = new
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
                    if len(k) <= _CACHE_KEY_LEN:
                        if len(known) >= _CACHE_SIZE:
                            known.clear()
                        known[k] = hit
                secret, new_key = hit
                if not secret:  # the common members, without a call
                    t = type(v)
                    if t is str:
                        v = self._text(v)
                    elif t is int:
                        if 10**12 <= v < 10**19 and _is_card(str(v)):
                            v = REDACTED
                    elif v is not None and t is not float and t is not bool:
                        v = self._walk(v, depth, path)
                    if new_key in out:
                        new_key = _another(out, new_key)
                    out[new_key] = v
                    continue
            elif isinstance(k, (str, bytes, bytearray)):
                text = _to_text(k)
                secret = self.is_secret_key(text)
                red = self._key(text)
                new_key = k if red == text else red
            elif k is None or isinstance(k, (int, float)):
                secret, new_key = False, k
            else:
                secret, new_key = self.is_secret_key(_to_text(k)), k
            new_value = REDACTED if secret else self._walk(v, depth, path)
            if new_key in out:
                new_key = _another(out, new_key)
            out[new_key] = new_value
        return out

    def _walk(self, obj: Any, depth: int, path: set[int]) -> Any:
        t = type(obj)
        if t is str:
            return self._text(obj)
        if t is int:
            return REDACTED if 10**12 <= obj < 10**19 and _is_card(str(obj)) else obj
        if obj is None or t is float or t is bool:
            return obj
        if t is list or t is dict:  # the usual containers, without the isinstance chain below
            if depth >= MAX_DEPTH:
                return REDACTED
            oid = id(obj)
            if oid in path:
                return CYCLE
            path.add(oid)
            try:
                if t is dict:
                    return self._members(obj, depth + 1, path)
                return [self._walk(x, depth + 1, path) for x in obj]
            finally:
                path.discard(oid)
        try:
            if isinstance(obj, str):
                return self._text(str(obj))
            if isinstance(obj, (bytes, bytearray)):
                text = _to_text(obj)
                red = self._text(text)
                return obj if red == text else red
            if isinstance(obj, (Mapping, list, tuple, set, frozenset)):
                if depth >= MAX_DEPTH:
                    return REDACTED
                oid = id(obj)
                if oid in path:
                    return CYCLE
                path.add(oid)
                try:
                    if isinstance(obj, Mapping):
                        return self._members(obj, depth + 1, path)
                    items = [self._walk(x, depth + 1, path) for x in obj]
                finally:
                    path.discard(oid)
                if isinstance(obj, list):
                    return items
                if isinstance(obj, tuple):
                    return tuple(items)
                return set(items) if isinstance(obj, set) else frozenset(items)
            if isinstance(obj, int) and not isinstance(obj, bool):
                return REDACTED if 10**12 <= obj < 10**19 and _is_card(str(int(obj))) else obj
        except Exception:
            return REDACTED
        return obj


def _to_text(obj: object) -> str:
    """``obj`` as text: bytes decoded (UTF-8, ``backslashreplace``), anything else through ``str()``."""
    try:
        if isinstance(obj, (bytes, bytearray)):
            return bytes(obj).decode("utf-8", "backslashreplace")
        return str(obj)
    except Exception:
        return f"<unprintable {type(obj).__name__}>"


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
