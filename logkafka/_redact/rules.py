"""Secrets and personal data removed from a record's keys, values and messages.

The rules :class:`logkafka._redact.Redactor` applies (pure logic; the formatter calls it on every
record). What it does, in brief:

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

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from itertools import accumulate
from typing import Any, NamedTuple

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

# The pre-check. Every secret value needs one of these (all alternatives start with a literal, so the regex
# engine skips ahead to the few places where one may start): a card number's 13 digits, the first 2 to 9, each
# maybe after one space or dash (a card never starts with 0 or 1, see cards), "@", a JWT's "eyJ", a
# PEM block, an AWS key id, a token prefix, "Bearer".
SUSPECT = re.compile(
    "|".join(f"{d}(?:[ -]?[0-9]){{12}}" for d in "23456789")
    + r"|@|yJ|-----BEGIN|A(?:KIA|SIA|Iza)|gh[pousr]_|github_pat_|xox[abposr]-|_(?:live|test)_|Bearer|bearer|BEARER"
)
# ... and a secret key in text contains one of these words (searched in lower case) before its "=" or ":".
KEY_WORDS = ("pass", "pwd", "secret", "key", "token", "auth", "jwt", "session", "cookie", "cred", "ssn", "mail")

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = str.maketrans({"-": "_", " ": "_"})

# key=value inside text: the key (maybe closed by a quote), the separator.
PAIR = re.compile(r"(?<![\w.])([A-Za-z_][\w.\-]{0,99})(\\?[\"'])?[ \t]*(?:=>|:=|[=:])[ \t]*")
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


def another(out: Mapping[Any, Any], key: Any) -> str:
    """``key#2``, ``key#3``...: the first name not in ``out`` (two keys redacted to the same text)."""
    n = 2
    while f"{key}#{n}" in out:
        n += 1
    return f"{key}#{n}"


def normalize(key: str) -> str:
    """``key`` as the rules compare it: camelCase split, lower case, ``_`` for ``-`` and spaces."""
    return _CAMEL.sub("_", key.strip()).lower().translate(_SEPARATORS).strip("_")


def forms(key: str) -> tuple[str, str]:
    """The two spellings a key is compared in: camelCase split (``apiKey``: ``api_key``) and not (``PassWord``)."""
    return normalize(key), key.strip().lower().translate(_SEPARATORS).strip("_")


def is_card(digits: str) -> bool:
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


def pem(s: str) -> str:
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


def replace_whole(pattern: re.Pattern[str], s: str) -> str:
    """Every match of a ``redact_patterns`` regex in ``s`` replaced whole; ``s`` itself when none was."""
    return _sub(pattern, _whole, s)


def _url_passwords(s: str) -> str:
    return _sub(_USERINFO, _userinfo, s) if "://" in s else s


def _bearer_tokens(s: str) -> str:
    return _sub(_BEARER, _bearer, s) if "earer" in s or "BEARER" in s else s


def _jwts(s: str) -> str:
    return _JWT.sub(REDACTED, s) if "eyJ" in s else s


def _aws_key_ids(s: str) -> str:
    return _AWS_KEY_ID.sub(REDACTED, s) if "IA" in s else s


def _emails(s: str) -> str:
    return _EMAIL.sub(REDACTED, s) if "@" in s else s


def _card_numbers(s: str) -> str:
    return _cards(s) if _SIX_DIGITS.search(s) else s


def _api_tokens(s: str) -> str:
    return _TOKENS.sub(REDACTED, s)


#: The rules that find secret values in any text, named, in the order they apply (after the secret keys' values).
VALUE_RULES: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("password in a URL", _url_passwords), ("bearer token", _bearer_tokens), ("JWT", _jwts),
    ("AWS access key id", _aws_key_ids), ("e-mail address", _emails), ("card number", _card_numbers),
    ("API token", _api_tokens),
)


def secret_values(s: str) -> str:
    """The secret values ``s`` holds replaced, after the secret keys' values (see the module docstring)."""
    for _, rule in VALUE_RULES:
        s = rule(s)
    return s


class Found(NamedTuple):
    """A value to hide in a text: ``s[start:end]`` is replaced with ``text``."""

    start: int
    end: int
    text: str


def pair_value(s: str, i: int, key: str, kq: str | None) -> Found | None:
    """Where the value after a secret key, starting at ``s[i]``, is and what replaces it; None when there
    is nothing to hide (``kq``: the quote that closed the key, if any)."""
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
        return Found((scheme.end() if scheme else a), b, REDACTED)
    if c in "{[":
        return Found(i, _bracket_end(s, i), _quoted(kq))
    scheme = _SCHEME.match(s, i)
    if scheme:
        after = scheme.end()
        if s.startswith(REDACTED, after):
            return None
        if scheme.group(1).lower() in _PARAM_SCHEMES:
            return Found(after, _line_end(s, after), REDACTED)
        token = _TOKEN68.match(s, after)
        if token:
            return Found(after, token.end(), REDACTED)
    if key.lower().replace("-", "_").endswith("cookie"):
        return Found(i, _line_end(s, i, _LINE_OR_QUOTE_END), REDACTED)
    m = _UNQUOTED.match(s, i)
    if m is None:
        return None
    return Found(i, m.end(), _quoted(kq))


def words_of(keys: Iterable[str]) -> list[str]:
    """The longest part of each extra key, for the pre-check: any spelling of the key contains it."""
    words: list[str] = []
    for key in keys:
        parts = [p for p in re.split(r"[_.]", key) if p]
        if parts:
            words.append(re.escape(max(parts, key=len).lower()))
    return words


def to_text(obj: object) -> str:
    """``obj`` as text: bytes decoded (UTF-8, ``backslashreplace``), anything else through ``str()``."""
    try:
        if isinstance(obj, (bytes, bytearray)):
            return bytes(obj).decode("utf-8", "backslashreplace")
        return str(obj)
    except Exception:
        return f"<unprintable {type(obj).__name__}>"
