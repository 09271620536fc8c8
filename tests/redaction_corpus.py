"""Log calls that carry secrets (LEAKS) and log calls that carry none (FALSE_POSITIVES).

``tests/test_redact.py`` runs both through :class:`logkafka._redact.Redactor`; the
formatter and Kafka integration tests reuse them. Each :class:`Case` is one call::

    logger.info(case.msg, *case.args, extra=case.extra)

or, when ``case.exc_text`` is set::

    try:
        raise ValueError(case.exc_text)
    except ValueError:
        logger.exception(case.msg, *case.args, extra=case.extra)

after which no string of ``case.secrets`` may appear anywhere in what was
shipped (and ``"[REDACTED]"`` must), and every string of ``case.keep`` must
appear unchanged. Rules the cases keep so that reuse stays easy:

- ``extra`` has no top-level key that names a ``LogRecord`` attribute
  (``message``, ``args``, ``msg``, ``name``, ``module``, ...): ``makeRecord``
  raises ``KeyError`` on those. ``RESERVED`` lists them; a test checks.
- Every secret and keep text is ASCII without double quotes, backslashes or
  line breaks, so it reads the same in a JSON document as in Python; secrets
  are distinctive (random parts) so they cannot turn up by chance, and each
  appears in the call itself.
- ``msg % args`` works (``args`` is empty when ``msg`` has no ``%`` directive).
- Values are JSON-friendly: str, int, float, bool, None, dict, list, tuple.

Everything is generated from fixed seeds: the lists are the same on every run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import random
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FALSE_POSITIVES", "LEAKS", "RESERVED", "Case"]

#: ``LogRecord`` attributes (and the two the formatter adds): never a top-level ``extra`` key.
RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


@dataclass(frozen=True)
class Case:
    """One log call: the message with its %-args, the extra members, the text of an exception to raise."""

    msg: str
    args: tuple[Any, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    exc_text: str | None = None
    secrets: list[str] = field(default_factory=list)  # must not appear anywhere in the output
    keep: list[str] = field(default_factory=list)  # must appear unchanged in the output
    label: str = ""  # a short name for test ids

    @property
    def message(self) -> str:
        """The message as ``LogRecord.getMessage()`` renders it."""
        return self.msg % self.args if self.args else self.msg


_rng = random.Random(20240607)
_ALNUM = string.ascii_letters + string.digits
_UPPER = string.ascii_uppercase + string.digits


def _hex(n: int = 8) -> str:
    return "".join(_rng.choice("0123456789abcdef") for _ in range(n))


def _secret(stem: str = "s3cr3t") -> str:
    """A distinctive password-like secret, e.g. ``hunter2-7f3a91c0``."""
    return f"{stem}-{_hex()}"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _jwt() -> tuple[str, list[str]]:
    """A real-looking JWT and the parts that must not leak (payload and signature)."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps({"sub": _hex(12), "name": "Jane Roe", "iat": 1718000000 + _rng.randrange(10**6)},
                                 separators=(",", ":")).encode())
    signature = _b64url(_rng.randbytes(32))
    return f"{header}.{payload}.{signature}", [payload, signature]


def _pem(kind: str = "RSA ") -> tuple[str, list[str]]:
    """A PEM private key block (random body) and its body lines."""
    body = base64.b64encode(_rng.randbytes(300)).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    block = f"-----BEGIN {kind}PRIVATE KEY-----\n" + "\n".join(lines) + f"\n-----END {kind}PRIVATE KEY-----"
    return block, [line for line in lines if len(line) >= 16]


def _aws_key_id(prefix: str = "AKIA") -> str:
    return prefix + "".join(_rng.choice(_UPPER) for _ in range(16))


def _aws_secret() -> str:
    return "".join(_rng.choice(_ALNUM + "/+") for _ in range(40))


def _email() -> str:
    first = _rng.choice(["jane", "john", "maria", "li", "omar", "ana"])
    return f"{first}.{_hex(6)}@{_rng.choice(['example.com', 'mail.example.org', 'corp.example.co.uk'])}"


def _luhn_digit(body: str) -> str:
    total = 0
    for i, c in enumerate(reversed(body)):
        d = int(c)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def _card(prefix: str, length: int) -> str:
    body = prefix + "".join(_rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    return body + _luhn_digit(body)


def _not_card(prefix: str, length: int) -> str:
    """A digit string of a card's shape whose Luhn check fails."""
    good = _card(prefix, length)
    return good[:-1] + str((int(good[-1]) + 1 + _rng.randrange(9)) % 10)


def _passes_somewhere(digits: str, sizes: tuple[int, ...]) -> bool:
    """Whether any run of two or more whole groups with 13 to 19 digits (or all of them) passes Luhn."""
    starts = [sum(sizes[:k]) for k in range(len(sizes) + 1)]
    for a in range(len(sizes)):
        for b in range(a + 1, len(sizes) + 1):
            window = digits[starts[a]:starts[b]]
            if 13 <= len(window) <= 19 and window[0] not in "01" and _luhn_digit(window[:-1]) == window[-1]:
                return True
    return False


def _groups(digits: str, sizes: tuple[int, ...], sep: str) -> str:
    out, i = [], 0
    for size in sizes:
        out.append(digits[i:i + size])
        i += size
    return sep.join(out)


# (prefix, length, grouping) of real card networks.
_NETWORKS = (
    ("4", 16, (4, 4, 4, 4)), ("4", 13, (4, 4, 5)), ("51", 16, (4, 4, 4, 4)), ("55", 16, (4, 4, 4, 4)),
    ("2221", 16, (4, 4, 4, 4)), ("2720", 16, (4, 4, 4, 4)), ("34", 15, (4, 6, 5)), ("37", 15, (4, 6, 5)),
    ("6011", 16, (4, 4, 4, 4)), ("65", 16, (4, 4, 4, 4)), ("3528", 16, (4, 4, 4, 4)), ("36", 14, (4, 6, 4)),
    ("62", 19, (4, 4, 4, 4, 3)), ("6759", 18, (4, 4, 4, 6)), ("4", 19, (4, 4, 4, 4, 3)),
)

# Secret key spellings, each with the rule it exercises.
_SECRET_KEYS = (
    "password", "PASSWORD", "Password", "passwd", "pwd", "secret", "Secret", "api_key", "apikey", "api-key",
    "API_KEY", "apiKey", "ApiKey", "token", "Token", "auth_token", "authToken", "access_token", "accessToken",
    "refresh_token", "refreshToken", "private_key", "privateKey", "credentials", "Credentials", "ssn", "SSN",
    "credit_card", "creditCard", "Credit-Card", "email", "Email", "auth", "authorization", "Authorization",
    "bearer", "jwt", "JWT", "session", "Session", "cookie", "Cookie", "set-cookie", "db_password", "dbPassword",
    "DB-PASSWORD", "new_password", "oldPassword", "x_api_key", "X-Api-Key", "x-api-key", "github_token",
    "GITHUB_TOKEN", "client_secret", "clientSecret", "CLIENT-SECRET", "aws_secret_access_key",
    "AWS_SECRET_ACCESS_KEY", "signing_key", "webhook_secret", "sessionToken", "x_auth_token", "primary_key",
    "http.authorization", "user.email", "db.password", "request.headers.cookie", "smtp_pwd", "ldap_passwd",
    "proxy-authorization",
)


def _leaks() -> list[Case]:
    cases: list[Case] = []

    def add(label: str, msg: str, args: tuple[Any, ...] = (), extra: dict[str, Any] | None = None,
            exc_text: str | None = None, secrets: list[str] | None = None) -> None:
        cases.append(Case(msg, args, extra or {}, exc_text, secrets or [], label=label))

    # 1. Flat extras under every secret key spelling; the value's type rotates.
    for i, key in enumerate(_SECRET_KEYS):
        secret = _secret(f"v{i}")
        shape = i % 5
        if shape == 0:
            value: Any = secret
        elif shape == 1:
            value = {"value": secret, "rotated": True}
        elif shape == 2:
            value = [secret, "second"]
        elif shape == 3:
            value = {"nested": {"deeper": [secret]}}
        else:
            number = _rng.randrange(10**8, 10**9)
            value, secret = number, str(number)
        add(f"key:{key}", "user signed in", extra={key: value, "user_id": 1000 + i}, secrets=[secret])

    # 2. The same keys one or two levels down, beside ordinary members.
    for i, key in enumerate(_SECRET_KEYS[::3]):
        secret = _secret(f"n{i}")
        extra: dict[str, Any] = {"request": {"path": "/login", "headers": {key: secret, "accept": "application/json"}}}
        if i % 2:
            extra = {"batch": [{"id": 1, "payload": {key: secret}}, {"id": 2}]}
        add(f"nested:{key}", "request received", extra=extra, secrets=[secret])

    # 3. key=value and "key": value in the message, with and without %-args.
    templates: tuple[tuple[str, Callable[[str], tuple[Any, ...]]], ...] = (
        ("login attempt user=%s password=%s", lambda s: ("bob", s)),
        ("retry with api_key=%s now", lambda s: (s,)),
        ("db config: host=db1 db_password=%s port=5432", lambda s: (s,)),
        ("kwargs=%r", lambda s: ({"password": s, "retries": 3},)),
        ("settings %r loaded", lambda s: ({"client_secret": s, "region": "eu-west-1"},)),
        ("payload %s", lambda s: (json.dumps({"user": "bob", "token": s, "n": 3}),)),
        ("headers %s", lambda s: (json.dumps({"Authorization": f"Bearer {s}", "Accept": "*/*"}),)),
        ("export AWS_SECRET_ACCESS_KEY=%s", lambda s: (s,)),
        ("cli args: --password=%s --verbose", lambda s: (s,)),
        ("yaml line password: %s", lambda s: (s,)),
        ("X-Api-Key: %s", lambda s: (s,)),
        ("Cookie: theme=dark; session=%s; lang=en", lambda s: (s,)),
        ("Set-Cookie: sid=%s; Path=/; HttpOnly", lambda s: (s,)),
        ("token => %s", lambda s: (s,)),
        ("GET https://api.example.com/v1/items?page=2&api_key=%s&sort=asc", lambda s: (s,)),
        ("callback https://app.example.com/cb?code=42&access_token=%s", lambda s: (s,)),
        ("connecting to postgres://app:%s@db.internal:5432/orders", lambda s: (s,)),
        ("broker amqp://guest:%s@rabbit.local/vhost", lambda s: (s,)),
        ("mirror https://deploy:%s@git.example.com/org/repo.git", lambda s: (s,)),
        ("Authorization: Bearer %s", lambda s: (s,)),
        ("Authorization: Basic %s", lambda s: (base64.b64encode(f"bob:{s}".encode()).decode(),)),
        ("upstream sent Bearer %s and failed", lambda s: (s,)),
        ("secret=%s", lambda s: (s,)),
        ("escaped {\\\"password\\\": \\\"%s\\\"}", lambda s: (s,)),
        ("creds credentials={'user': 'bob', 'pass': '%s'} rejected", lambda s: (s,)),
        ("sessionToken=%s expired", lambda s: (s,)),
        ("ssn: %s", lambda s: (s,)),
        ("PASSWORD = '%s'", lambda s: (s,)),
    )
    for i, (template, make) in enumerate(templates):
        for j in range(2):
            secret = _secret(f"m{i}x{j}")
            args = make(secret)
            secrets = [secret]
            if "Basic" in template:  # the secret is inside the base64 credentials
                secrets = [args[0]]
            if j == 0:
                add(f"msg:{template[:24]}", template, args, secrets=secrets)
            else:  # pre-formatted, no args
                add(f"msgfmt:{template[:24]}", template % args, secrets=secrets)

    # 4. Secrets inside exception messages.
    exc_templates = (
        "invalid credentials password=%s",
        "could not connect to mysql://root:%s@10.0.0.5:3306/app",
        "upstream 401 with header Authorization: Bearer %s",
        "bad config {\"api_key\": \"%s\", \"timeout\": 3}",
        "token %s rejected",  # caught by the token shape below (a JWT)
    )
    for i, template in enumerate(exc_templates):
        for j in range(3):
            if "token %s" in template:
                secret, parts = _jwt()
                secrets = parts
            else:
                secret = _secret(f"e{i}x{j}")
                secrets = [secret]
            add(f"exc:{template[:20]}", "request failed", exc_text=template % secret, secrets=secrets)

    # 5. Audit diffs.
    for i in range(12):
        old, new = _secret(f"old{i}"), _secret(f"new{i}")
        old_mail, new_mail = _email(), _email()
        diff: dict[str, Any] = {"old": {"password": old, "email": old_mail, "plan": "free"},
                "new": {"password": new, "email": new_mail, "plan": "pro"}}
        if i % 3 == 1:
            diff = {"old": {"settings": {"apiKey": old}}, "new": {"settings": {"apiKey": new}},
                    "contact": [old_mail, new_mail]}
        if i % 3 == 2:
            diff = {"old": {"note": f"reset with password={old}"}, "new": {"note": f"mailed {new_mail} token: {new}"},
                    "by": old_mail}
        add(f"audit:{i}", "user %s updated", (f"u{i}",), extra={"diff": diff, "actor": "admin"},
            secrets=[old, new, old_mail, new_mail])

    # 6. Card numbers: every network, several spellings, several places.
    for i, (prefix, length, sizes) in enumerate(_NETWORKS):
        for j, sep in enumerate(("", " ", "-")):
            digits = _card(prefix, length)
            text = digits if not sep else _groups(digits, sizes, sep)
            secrets = [text, text[:9], text[-9:]] if sep else [digits]
            place = (i + j) % 5
            if place == 0:
                add(f"card:msg:{prefix}{sep!r}", "charging card %s for order 77", (text,), secrets=secrets)
            elif place == 1:
                add(f"card:extra:{prefix}{sep!r}", "payment", extra={"card_number": text, "amount": 12.5},
                    secrets=secrets)
            elif place == 2:
                add(f"card:exc:{prefix}{sep!r}", "payment failed", exc_text=f"card {text} declined by issuer",
                    secrets=secrets)
            elif place == 3:
                add(f"card:json:{prefix}{sep!r}", "webhook %s",
                    (json.dumps({"object": "charge", "source": {"number": text, "exp": "12/29"}}),), secrets=secrets)
            else:
                add(f"card:list:{prefix}{sep!r}", "batch", extra={"cards": [{"pan": text, "holder": "J Roe"}]},
                    secrets=secrets)
        digits = _card(prefix, length)
        add(f"card:int:{prefix}", "payment", extra={"pan_number": int(digits), "currency": "EUR"}, secrets=[digits])

    # 7. JWTs.
    for i in range(12):
        token, parts = _jwt()
        place = i % 4
        if place == 0:
            add("jwt:msg", "verifying %s", (token,), secrets=parts)
        elif place == 1:
            add("jwt:extra", "auth", extra={"id_token_raw": {"value": token}}, secrets=parts)
        elif place == 2:
            add("jwt:url", "redirect to https://app.example.com/#id=%s&state=xyz", (token,), secrets=parts)
        else:
            add("jwt:exc", "decode failed", exc_text=f"signature mismatch for {token}", secrets=parts)

    # 8. PEM private keys.
    for i, kind in enumerate(("RSA ", "EC ", "", "ENCRYPTED ", "OPENSSH ", "DSA ")):
        block, lines = _pem(kind)
        place = i % 4
        if place == 0:
            add(f"pem:msg:{kind}", "loaded key\n%s\nok", (block,), secrets=lines)
        elif place == 1:
            add(f"pem:extra:{kind}", "tls", extra={"tls": {"cert_chain": "ok", "pem": block}}, secrets=lines)
        elif place == 2:
            add(f"pem:json:{kind}", "config %s", (json.dumps({"tls_key_pem": "see below", "pem": block}),),
                secrets=lines)
        else:
            add(f"pem:exc:{kind}", "bad key", exc_text=f"cannot parse {block}", secrets=lines)
        truncated = block.rsplit("\n", 2)[0]  # the END line cut off
        add(f"pem:cut:{kind}", "partial key %s", (truncated,), secrets=lines[:-1])

    # 9. AWS keys.
    for i in range(8):
        key_id, secret = _aws_key_id("AKIA" if i % 2 else "ASIA"), _aws_secret()
        if i % 4 == 0:
            add("aws:msg", "using access key %s", (key_id,), secrets=[key_id])
        elif i % 4 == 1:
            add("aws:extra", "s3", extra={"aws": {"key_id": key_id, "bucket": "logs"}}, secrets=[key_id])
        elif i % 4 == 2:
            add("aws:creds-file", "credentials file:\n[default]\naws_access_key_id = %s\naws_secret_access_key = %s",
                (key_id, secret), secrets=[key_id, secret])
        else:
            add("aws:env", "env AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s", (key_id, secret),
                secrets=[key_id, secret])

    # 10. E-mail addresses.
    for i in range(14):
        address = _email()
        place = i % 7
        if place == 0:
            add("email:msg", "login failed for %s", (address,), secrets=[address])
        elif place == 1:
            add("email:extra", "signup", extra={"contact": address, "plan": "pro"}, secrets=[address])
        elif place == 2:
            add("email:list", "invite", extra={"to": [address, "team"], "cc": ()}, secrets=[address])
        elif place == 3:
            add("email:tuple", "invite", extra={"pair": ("owner", address)}, secrets=[address])
        elif place == 4:
            add("email:key", "stats", extra={"per_user": {address: 3}}, secrets=[address])
        elif place == 5:
            add("email:exc", "smtp", exc_text=f"550 mailbox unavailable <{address}>", secrets=[address])
        else:
            add("email:mailto", "link mailto:%s?subject=hi", (address,), secrets=[address])

    # 11. Well-known token prefixes and bare bearer tokens.
    for i in range(6):
        tokens = [
            "ghp_" + "".join(_rng.choice(_ALNUM) for _ in range(36)),
            "xoxb-" + "-".join(str(_rng.randrange(10**11, 10**12)) for _ in range(2)) + "-" + _hex(24),
            "sk_live_" + "".join(_rng.choice(_ALNUM) for _ in range(24)),
            "AIza" + "".join(_rng.choice(_ALNUM + "_-") for _ in range(35)),
            "github_pat_" + "".join(_rng.choice(_ALNUM + "_") for _ in range(60)),
        ]
        token = tokens[i % len(tokens)]
        add(f"prefix:{token[:4]}", "calling api with %s", (token,), secrets=[token])
        bearer = "".join(_rng.choice(_ALNUM + "-._~+/") for _ in range(32))
        add("bearer:extra", "proxy", extra={"upstream": {"header": f"Bearer {bearer}"}}, secrets=[bearer])

    # 12. Hand-written mixes.
    pw, mail, card = _secret("hunter2"), _email(), _card("4", 16)
    token, parts = _jwt()
    add("mix:everything", "user %s paid with %s", (mail, _groups(card, (4, 4, 4, 4), " ")),
        extra={"Authorization": f"Bearer {token}", "profile": {"email": mail, "PassWord": pw}},
        exc_text=f"retry failed: password={pw} card={card}", secrets=[pw, mail, card, *parts])
    pw2 = _secret("pa55")
    add("mix:json-in-json", "event %s", (json.dumps({"body": json.dumps({"password": pw2})}),), secrets=[pw2])
    pw3 = _secret("deep")
    deep: dict[str, Any] = {"password": pw3}
    for level in range(8):
        deep = {f"l{level}": deep}
    add("mix:deep-10-levels", "deep", extra={"cfg": deep}, secrets=[pw3])
    pw4 = _secret("cfg")
    add("mix:ini", "config dump\n[db]\nhost = db1\npassword = %s\n", (pw4,), secrets=[pw4])
    pw5 = _secret("qs")
    add("mix:form", "form body user=bob&pwd=%s&remember=1", (pw5,), secrets=[pw5])
    pw6 = _secret("dsn")
    add("mix:dsn-in-extra", "db", extra={"dsn": f"redis://:{pw6}@cache:6379/0"}, secrets=[pw6])
    pw7 = _secret("tb")
    add("mix:traceback", "crash", exc_text=f'File "app.py", line 3, in login\n    password = "{pw7}"', secrets=[pw7])
    ssn = f"{_rng.randrange(100, 899)}-{_rng.randrange(10, 99)}-{_rng.randrange(1000, 9999)}"
    add("mix:ssn-kv", "kyc ssn=%s ok", (ssn,), secrets=[ssn])
    mail2 = _email()
    add("mix:mixed-case-email-key", "x", extra={"User.EMail": {"primary": mail2}}, secrets=[mail2])
    return cases


def _false_positives() -> list[Case]:
    cases: list[Case] = []

    def add(label: str, msg: str, args: tuple[Any, ...] = (), extra: dict[str, Any] | None = None,
            exc_text: str | None = None, keep: list[str] | None = None) -> None:
        cases.append(Case(msg, args, extra or {}, exc_text, [], keep or [], label=label))

    rng = random.Random(424242)

    # UUIDs.
    for i in range(24):
        u = str(uuid.UUID(int=rng.getrandbits(128), version=4 if i % 2 else 1))
        if i % 3 == 0:
            add("uuid:msg", "request %s done", (u,), keep=[u])
        elif i % 3 == 1:
            add("uuid:extra", "request done", extra={"request_id": u, "trace": [u]}, keep=[u])
        else:
            add("uuid:upper", "request done", extra={"correlation_id": u.upper().replace("-", "")},
                keep=[u.upper().replace("-", "")])

    # Hashes.
    for i in range(24):
        data = f"blob-{i}".encode()
        h = (hashlib.md5(data), hashlib.sha1(data), hashlib.sha256(data))[i % 3].hexdigest()
        if i % 2:
            add("hash:msg", "stored object %s", (h,), keep=[h])
        else:
            add("hash:extra", "stored", extra={"etag": h, "commit_sha": h[:12]}, keep=[h])

    # Timestamps.
    stamps = [
        "2024-03-05T12:34:56Z", "2024-03-05T12:34:56.789012+00:00", "2024-03-05 12:34:56,789",
        "2024-12-31T23:59:59.999-05:00", "20240305T123456Z", "Tue, 05 Mar 2024 12:34:56 GMT",
        "2024-03-05", "12:34:56.123456", "1709642096", "1709642096.123456", "2024-W10-2",
    ]
    for i, stamp in enumerate(stamps):
        add("time:msg", "job started at %s", (stamp,), keep=[stamp])
        add("time:extra", "job", extra={"started_at": stamp, "attempt": i}, keep=[stamp])
    for _ in range(6):  # epoch milliseconds that pass Luhn: numbers starting with 1 are not card numbers
        while True:
            ms = 1_700_000_000_000 + rng.randrange(10**11)
            if _luhn_digit(str(ms)[:-1]) == str(ms)[-1]:
                break
        add("time:epoch-ms", "tick %d", (ms,), extra={"ts_ms": ms}, keep=[str(ms)])

    # Long digit runs that fail Luhn (order numbers, ids) and runs too long to be a card.
    for i, (prefix, length, sizes) in enumerate(_NETWORKS):
        wrong = _not_card(prefix, length)
        add("digits:plain", "order %s shipped", (wrong,), extra={"order_no": wrong}, keep=[wrong])
        wrong = _not_card(prefix, length)
        while _passes_somewhere(wrong, sizes):
            wrong = _not_card(prefix, length)
        spaced = _groups(wrong, sizes, " -"[i % 2])
        add("digits:grouped", "reference %s", (spaced,), keep=[spaced])
        add("digits:int", "order", extra={"order_id": int(_not_card(prefix, length))})
    for _ in range(6):
        long_run = str(rng.randrange(10**21, 10**24))
        add("digits:long", "invoice %s", (long_run,), extra={"invoice": f"INV-{long_run}"}, keep=[long_run])
    phone = "+4930" + "".join(rng.choice(string.digits) for _ in range(9))
    add("digits:phone", "call %s", (phone,), keep=[phone])
    add("digits:phone-local", "call 030 1234 5678 now", keep=["030 1234 5678"])
    add("digits:isbn", "book ISBN 978-3-16-148410-0", keep=["978-3-16-148410-0"])
    add("digits:float", "ratio %r", (0.30000000000000004,), extra={"ratio": 0.30000000000000004},
        keep=["0.30000000000000004"])
    add("digits:money", "total EUR 1,234,567.89 for 3 items", keep=["1,234,567.89"])
    add("digits:dates", "windows 2024-01-02 2024-01-03 2024-01-04", keep=["2024-01-02 2024-01-03 2024-01-04"])
    add("digits:duration", "took 1234567 ms", extra={"duration_ms": 1234567}, keep=["1234567"])
    add("digits:decimal-card-like", "value 0.4111111111111111", keep=["0.4111111111111111"])
    add("digits:hex-glued", "object a4111111111111111b", keep=["a4111111111111111b"])

    # Network addresses.
    for addr in ("192.168.1.10", "10.0.0.1:8080", "255.255.255.0", "172.16.254.1/24", "2001:db8::1",
                 "fe80::1ff:fe23:4567:890a", "::1", "[2001:db8:85a3::8a2e:370:7334]:443",
                 "2001:0db8:0000:0000:0000:ff00:0042:8329", "kafka-0.kafka.svc.cluster.local:9092"):
        add("net:msg", "peer %s connected", (addr,), extra={"peer": addr}, keep=[addr])

    # Versions.
    for version in ("1.2.3", "v2.14.0-rc.1", "Python 3.11.7", "0.0.1a1", "2024.3.1", "librdkafka 2.3.0",
                    "1.0.0+build.5", "10.15.7"):
        add("version", "running %s", (version,), extra={"app_version": version}, keep=[version])

    # Paths.
    for path in ("/var/log/app/auth.log", "/etc/ssl/private/server.key", "/home/app/.config/tokens.json",
                 "./secrets/README.md", "/srv/session_store/", "s3://bucket/keys/2024/03/05/part-0001.parquet",
                 "/api/v1/users/42/password-reset", "C:/Program Files/App/keyboard.dll"):
        add("path", "reading %s", (path,), extra={"file_path": path}, keep=[path])

    # Ordinary sentences that mention secret-ish words without a value.
    for sentence in (
        "User logged in successfully", "Password reset requested for account 42",
        "Token refresh scheduled in 5 minutes", "Session expired, redirecting to login",
        "API key rotation completed", "Sending email digest to subscribers",
        "Bearer token missing from request", "Cookie consent banner shown",
        "The bearer of this message is trusted", "Authorization header was empty",
        "Secret rotation is disabled in staging", "Credentials will be loaded from the vault",
        "JWT validation uses the JWKS endpoint", "Monkey patching complete", "Keyboard layout changed to de",
        "Basic authentication is enabled", "Private key loaded from the HSM", "SSN field is optional",
        "Credit card form rendered", "auth service healthy", "Processing batch of 128 items",
        "Cache hit ratio 0.93 over 5 minutes", "Retrying in 30s (attempt 3 of 5)",
        "Connection reset by peer", "Über-Größe: 12 Artikel verarbeitet",
        "Rendered template in 12.5 ms", "Queue depth is 0", "GC pause of 45 ms",
        "npm install @types/node", "decorated with @property", "price @ 3 EUR each",
        "scope @acme/logging updated", "pinned version@1.2.3", "eyJ is how base64 JSON starts",
        "token == None check passed", "password policy: min length 12",
        "timeout: 30s, retries: 3", "status: ok", "error: connection refused",
        "-----BEGIN CERTIFICATE----- block skipped", "AKIA prefix marks AWS key ids",
    ):
        add("sentence", sentence, keep=[sentence] if sentence.isascii() else [])

    # Keys that look like secret keys but are not, by the rules (exact names and the listed suffixes only).
    ordinary = {
        "token_count": 512, "tokens_used": 1200, "keyboard": "us", "monkey": "banana", "turkey": "roast",
        "session_count": 17, "sessions": 3, "session_id": "s-42", "email_count": 9, "emails_sent": 2,
        "key_id": "kid-2024-01", "keys": ["a", "b"], "author": "jane", "oauth_provider": "github",
        "password_policy": "strict", "password_min_length": 12, "token_type": "bearer",
        "auth_method": "oauth2", "secretary": "bob", "cookies_enabled": True, "credential_count": 2,
        "jwt_issuer": "https://auth.example.com", "key": "orders", "hotkey": "ctrl+k", "apikeys_count": 4,
        "tokenizer": "bpe", "passing": True, "bypass": False, "ssn_verified": True, "mailbox": "inbox",
    }
    for key, value in ordinary.items():
        add(f"okkey:{key}", "stats", extra={key: value})
    add("okkeys:all", "stats", extra=dict(ordinary))
    add("okkey:kv", "token_count=512 session_count: 17 key_id=kid-2024-01 tokens_used=1200",
        keep=["token_count=512 session_count: 17 key_id=kid-2024-01 tokens_used=1200"])

    # key=value text with ordinary keys.
    for text in ("retries=3 timeout=30s", "user_id=42 tenant=acme", "path=/api/v1/orders?page=2&sort=asc",
                 "GET https://api.example.com/v1/items?page=2&limit=50", "level=info code=ORD-17",
                 "{\"status\": \"ok\", \"items\": 3}", "{'region': 'eu-west-1', 'zone': 'b'}",
                 "ftp://ftp.example.com/pub/file.txt"):
        add("kv:ordinary", "request %s", (text,), keep=[text] if '"' not in text else [])

    # PEM blocks that are not private keys.
    for kind in ("PUBLIC KEY", "CERTIFICATE", "CERTIFICATE REQUEST"):
        body = base64.b64encode(rng.randbytes(120)).decode()
        lines = [body[i:i + 64] for i in range(0, len(body), 64)]
        block = f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----"
        add("pem:public", "loaded\n%s", (block,), keep=lines)

    # Structures of ordinary values, exceptions without secrets.
    add("struct:nested", "state", extra={"cfg": {"a": [1, 2, {"b": (3, 4.5, None, True)}], "c": {"d": "e"}}})
    add("struct:tuple", "pair", extra={"pair": ("left", 2), "empty": (), "none": None})
    add("struct:ints", "ints", extra={"counts": [0, -1, 2**31, 10**12 - 1, 10**19, 4111111111111112]})
    for exc in ("FileNotFoundError: [Errno 2] No such file or directory: '/var/lib/app/cache.db'",
                "KeyError: 'token_count'", "invalid literal for int() with base 10: 'abc'",
                "timed out after 30.0s waiting for kafka-0:9092", "division by zero",
                "HTTP 503 from https://api.example.com/v1/health"):
        add("exc:ordinary", "failed", exc_text=exc, keep=[exc] if '"' not in exc and "'" not in exc else [])
    return cases


#: Log calls carrying secrets; see the module docstring.
LEAKS: list[Case] = _leaks()
#: Log calls carrying no secret; the redactor must leave them exactly as they are.
FALSE_POSITIVES: list[Case] = _false_positives()
