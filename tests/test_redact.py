"""Redactor: secrets removed from keys, values and text (pure logic, no broker)."""

from __future__ import annotations

import ast
import collections
import copy
import enum
import json
import logging
import random
import re
import time
import types
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, NamedTuple

import pytest
from redaction_corpus import FALSE_POSITIVES, LEAKS, RESERVED, Case

from logkafka._redact import CYCLE, MAX_DEPTH, REDACTED, Redactor

R = Redactor()


def render(r: Redactor, case: Case) -> dict[str, Any]:
    """What a formatter ships for a case: the message after %-formatting, the extras, the exception text."""
    out: dict[str, Any] = {"message": r.text(case.message)}
    out.update(r.mapping(case.extra))
    if case.exc_text is not None:
        out["error"] = {"type": "ValueError", "message": r.text(case.exc_text)}
    return out


def strings(obj: Any) -> Iterator[str]:
    """Every string in a rendered record: keys, values, and the text of other scalars."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield str(k)
            yield from strings(v)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            yield from strings(v)
    elif isinstance(obj, (bytes, bytearray)):
        yield obj.decode("utf-8", "backslashreplace")
    else:
        yield str(obj)


def raw_strings(case: Case) -> list[str]:
    """Every string of a case as logged, before redaction."""
    return [case.message, *strings(case.extra), *([case.exc_text] if case.exc_text else [])]


class Point(NamedTuple):
    x: str
    y: int


def nested(depth: int, leaf: Any, kind: type = dict) -> Any:
    """``leaf`` inside ``depth`` containers of ``kind``."""
    value = leaf
    for _ in range(depth):
        value = {"n": value} if kind is dict else [value]
    return value


class TestCorpus:
    """The shared corpora keep the promises their docstring makes."""

    def test_sizes(self) -> None:
        """At least 250 leaks and 150 false positives."""
        assert len(LEAKS) >= 250
        assert len(FALSE_POSITIVES) >= 150

    @pytest.mark.parametrize("case", LEAKS + FALSE_POSITIVES, ids=lambda c: c.label)
    def test_loggable(self, case: Case) -> None:
        """Each case is a valid logging call: no reserved extra key, %-args that format."""
        assert not RESERVED & set(case.extra)
        logging.Logger("corpus").makeRecord("corpus", logging.INFO, "f.py", 1, case.msg, case.args, None,
                                           extra=case.extra)
        assert isinstance(case.message, str)

    def test_leak_secrets_are_real(self) -> None:
        """Every secret is distinctive, JSON-neutral text that occurs in its own call."""
        for case in LEAKS:
            assert case.secrets, case.label
            raw = raw_strings(case)
            for secret in case.secrets:
                assert len(secret) >= 6 and secret.isascii(), (case.label, secret)
                assert not set(secret) & set('"\\\n\r'), (case.label, secret)
                assert any(secret in s for s in raw), (case.label, secret)
                assert not any(secret in s for other in FALSE_POSITIVES for s in raw_strings(other))

    def test_keep_texts_are_real(self) -> None:
        """Every keep text is JSON-neutral text that occurs in its own call."""
        for case in FALSE_POSITIVES:
            assert not case.secrets
            for keep in case.keep:
                assert keep.isascii() and not set(keep) & set('"\\\n\r'), (case.label, keep)
                assert any(keep in s for s in raw_strings(case)), (case.label, keep)


class TestLeaks:
    """No secret of the corpus survives a formatter's use of the redactor."""

    @pytest.mark.parametrize("case", LEAKS, ids=lambda c: c.label)
    def test_no_secret_in_output(self, case: Case) -> None:
        """Neither the shipped JSON nor any string in the record holds a secret; [REDACTED] is there."""
        out = render(R, case)
        blob = json.dumps(out, ensure_ascii=False, default=str)
        texts = [blob, *strings(out)]
        for secret in case.secrets:
            assert not [t for t in texts if secret in t], f"{secret!r} leaked in {blob}"
        assert REDACTED in blob

    @pytest.mark.parametrize("case", LEAKS, ids=lambda c: c.label)
    def test_input_not_mutated(self, case: Case) -> None:
        """The extras come out as new objects; the caller's extras are untouched."""
        before = copy.deepcopy(case.extra)
        R.mapping(case.extra)
        assert case.extra == before

    def test_idempotent(self) -> None:
        """Redacting redacted text changes nothing."""
        for case in LEAKS:
            for text in (case.message, case.exc_text or ""):
                once = R.text(text)
                assert R.text(once) == once, case.label


class TestFalsePositives:
    """Text and structures without secrets come out exactly as they went in."""

    @pytest.mark.parametrize("case", FALSE_POSITIVES, ids=lambda c: c.label)
    def test_unchanged(self, case: Case) -> None:
        """Message, extras and exception text are equal to the input; every keep text is in the output."""
        assert R.text(case.message) == case.message
        assert R.mapping(case.extra) == case.extra
        if case.exc_text is not None:
            assert R.text(case.exc_text) == case.exc_text
        blob = json.dumps(render(R, case), ensure_ascii=False, default=str)
        assert REDACTED not in blob
        for keep in case.keep:
            assert keep in blob

    def test_same_object_when_clean(self) -> None:
        """Clean text comes back as the very same object (no copy on the hot path)."""
        for case in FALSE_POSITIVES:
            message = case.message
            assert R.text(message) is message, case.label


class TestSecretKeys:
    """Which keys lose their whole value."""

    @pytest.mark.parametrize("key", [
        "password", "passwd", "pwd", "secret", "api_key", "apikey", "api-key", "token", "auth_token", "access_token",
        "refresh_token", "private_key", "credentials", "ssn", "credit_card", "email", "auth", "authorization",
        "bearer", "jwt", "session", "cookie", "PASSWORD", "Api-Key", "apiKey", "APIKey", "accessToken",
        "db_password", "dbPassword", "PassWord", "x_api_key", "X-API-KEY", "github_token", "client_secret",
        "clientSecret", "aws_secret_access_key", "primary_key", "http.authorization", "user.email",
        "request.headers.Cookie", "set-cookie", "--password", "_token", "smtp_pwd", "ldap_passwd", " Password ",
    ])
    def test_secret(self, key: str) -> None:
        """Exact names, the listed endings, any case, camelCase, dashes, the last dotted part."""
        assert R.is_secret_key(key)
        assert R.mapping({key: {"any": ["value", 1]}}) == {key: REDACTED}

    @pytest.mark.parametrize("key", [
        "token_count", "tokens_used", "tokenizer", "keyboard", "monkey", "turkey", "hotkey", "key", "keys",
        "key_id", "session_count", "session_id", "sessions", "email_count", "emails", "email_address", "author",
        "oauth", "authority", "password_policy", "password_hash", "secretary", "cookies", "jwt_issuer",
        "credential", "ssn_verified", "passing", "bypass", "user.email.count", "email.domain", "", "   ", "_",
    ])
    def test_not_secret(self, key: str) -> None:
        """Only exact names and the listed endings count: no substring matches."""
        assert not R.is_secret_key(key)
        assert R.mapping({key: "plain"}) == {key: "plain"}

    @pytest.mark.parametrize("value", ["hunter2", {"a": 1}, [1, 2], ("t",), 42, 3.5, None, True, b"raw", object()])
    def test_whole_value_any_type(self, value: Any) -> None:
        """A secret key's value becomes the string [REDACTED] whatever its type."""
        assert R.mapping({"password": value, "n": 1}) == {"password": REDACTED, "n": 1}
        assert R.value([{"Token": value}]) == [{"Token": REDACTED}]

    def test_cache_bounded(self) -> None:
        """The key-decision caches never hold more than their bound."""
        r = Redactor()
        for i in range(20_000):
            r.mapping({f"field_{i}": 1, f"field_{i}_token": "x"})
        assert len(r._secret) <= 4096
        assert len(r._keys) <= 4096
        assert r.is_secret_key("field_1_token") and not r.is_secret_key("field_1")


class TestText:
    """Secret values in text: only the secret part goes."""

    @pytest.mark.parametrize(("text", "expected"), [
        ("login failed for bob@example.com", "login failed for [REDACTED]"),
        ("Authorization: Bearer abc.def-123", "Authorization: Bearer [REDACTED]"),
        ("authorization=Basic dXNlcjpwYXNz", "authorization=Basic [REDACTED]"),
        ("Authorization: Digest username=\"u\", response=\"6629fae4\"\nnext", "Authorization: Digest [REDACTED]\nnext"),
        ("upstream said Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "upstream said Bearer [REDACTED]"),
        ("password=hunter2 user=bob", "password=[REDACTED] user=bob"),
        ("password = 'hunter2' user=bob", "password = '[REDACTED]' user=bob"),
        ("--password=hunter2 -v", "--password=[REDACTED] -v"),
        ("token => abc123", "token => [REDACTED]"),
        ("https://api.x.com/v1?page=2&api_key=abc123&sort=asc", "https://api.x.com/v1?page=2&api_key=[REDACTED]&sort=asc"),
        ("postgres://app:s3cr3t@db.internal:5432/orders", "postgres://app:[REDACTED]@db.internal:5432/orders"),
        ("redis://:s3cr3t@cache:6379/0", "redis://:[REDACTED]@cache:6379/0"),
        ("https://u:p@ss@host.example.com/x", "https://u:[REDACTED]@host.example.com/x"),
        ("Cookie: theme=dark; sid=abc123\nnext", "Cookie: [REDACTED]\nnext"),
        ("key AKIAIOSFODNN7EXAMPLE in use", "key [REDACTED] in use"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl ok", "jwt [REDACTED] ok"),
        ("card 4111 1111 1111 1111 exp 12/29", "card [REDACTED] exp 12/29"),
        ("card 4111-1111-1111-1111.", "card [REDACTED]."),
        ("amex 3782 822463 10005 ok", "amex [REDACTED] ok"),
        ("two 4111111111111111 5555555555554444", "two [REDACTED] [REDACTED]"),
        ("after a date 2024-01-02 4111111111111111", "after a date 2024-01-02 [REDACTED]"),
        ("ref 1234 5678 4111 1111 1111 1111", "ref 1234 5678 [REDACTED]"),
        ("ssn: 123-45-6789", "ssn: [REDACTED]"),
        ("user.email=bob@example.com", "user.email=[REDACTED]"),
        ("kw {'password': 'x', 'n': 1}", "kw {'password': '[REDACTED]', 'n': 1}"),
        ("kw {'ssn': 123456789, 'n': 1}", "kw {'ssn': '[REDACTED]', 'n': 1}"),
        ("creds credentials={'user': 'u', 'pass': 'p'} tail", "creds credentials=[REDACTED] tail"),
        ("creds credentials={'user': 'u', 'pass': 'p' cut", "creds credentials=[REDACTED]"),
        ("call ghp_" + "a1" * 18 + " done", "call [REDACTED] done"),
    ])
    def test_replaces_only_the_secret(self, text: str, expected: str) -> None:
        """The text around a secret stays readable."""
        assert R.text(text) == expected

    @pytest.mark.parametrize("text", [
        "4111111111111112", "1718000000123", "1234567890123", "0.4111111111111111", "4111111111111111.5",
        "a4111111111111111b", "+4111111111111111", "12345678901234567890123",
        "Bearer token missing", "bearer tokenization", "token == None", "password: ", "version@1.2.3",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", "AKIA1234", "eyJhbGciOiJIUzI1NiJ9",
    ])
    def test_leaves_lookalikes(self, text: str) -> None:
        """Luhn failures, numbers starting with 1, decimals, glued digits, words after Bearer: not secrets."""
        assert R.text(text) == text

    def test_json_in_text_stays_json(self) -> None:
        """A JSON document inside a message is still valid JSON afterwards, secrets replaced by strings."""
        doc = json.dumps({"user": "bob", "password": "hunter2", "ssn": 123456789, "session": None,
                          "credentials": {"a": [1, 2]}, "Authorization": "Bearer abc123", "n": 3})
        out = json.loads(R.text(doc))
        assert out == {"user": "bob", "password": REDACTED, "ssn": REDACTED, "session": REDACTED,
                       "credentials": REDACTED, "Authorization": f"Bearer {REDACTED}", "n": 3}
        nested_doc = json.dumps({"body": doc})
        assert json.loads(json.loads(R.text(nested_doc))["body"])["password"] == REDACTED

    def test_repr_in_text_stays_a_literal(self) -> None:
        """A dict's repr inside a message still evaluates as a literal."""
        text = repr({"password": "p'w", "token": 12345, "keep": [1, "two"]})
        assert ast.literal_eval(R.text(text)) == {"password": REDACTED, "token": REDACTED, "keep": [1, "two"]}

    def test_pem_body(self) -> None:
        """A PEM private key loses its body and keeps its frame; without END the rest of the text goes."""
        block = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nq7BFUAkGCSqG\n-----END RSA PRIVATE KEY-----"
        assert R.text(f"key:\n{block}\nloaded") == (
            f"key:\n-----BEGIN RSA PRIVATE KEY-----\n{REDACTED}\n-----END RSA PRIVATE KEY-----\nloaded")
        assert R.text("cut -----BEGIN PRIVATE KEY-----\nMIIEowIBAAKCAQEA") == (
            f"cut -----BEGIN PRIVATE KEY-----\n{REDACTED}")

    def test_custom_objects_via_str(self) -> None:
        """text() takes anything and returns str: objects through str(), bytes decoded, never raising."""

        class Loud:
            def __str__(self) -> str:
                return "Loud(password=hunter2)"

        class Broken:
            def __str__(self) -> str:
                raise RuntimeError("no")

        assert R.text(Loud()) == "Loud(password=[REDACTED])"  # type: ignore[arg-type]
        assert R.text(b"password=hunter2 \xff") == "password=[REDACTED] \\xff"  # type: ignore[arg-type]
        assert "hunter2" not in R.text(Broken())  # type: ignore[arg-type]


class TestStructures:
    """Walking dicts, lists, tuples and the odd things found in them."""

    def test_containers_keep_their_kind(self) -> None:
        """Lists stay lists, tuples tuples, sets sets; any Mapping becomes a dict."""
        mail = "jane@example.com"
        value = {"l": [mail], "t": (mail, 1), "s": {mail}, "f": frozenset({mail}),
                 "o": collections.OrderedDict(a=mail), "m": types.MappingProxyType({"a": mail})}
        out = R.value(value)
        assert out == {"l": [REDACTED], "t": (REDACTED, 1), "s": {REDACTED}, "f": frozenset({REDACTED}),
                       "o": {"a": REDACTED}, "m": {"a": REDACTED}}
        assert type(out["t"]) is tuple and type(out["o"]) is dict
        point = Point(mail, 2)
        assert R.value(point) == (REDACTED, 2) and type(R.value(point)) is tuple

    def test_never_mutates(self) -> None:
        """The input and everything in it are left as they were, even when everything is redacted."""
        value = {"password": "x", "users": [{"email": "a@b.co", "tags": ("t", "u@v.co")}], "n": {"k": [1]}}
        before = copy.deepcopy(value)
        out = R.value(value)
        assert value == before
        assert out is not value and out["users"] is not value["users"]

    def test_cycles(self) -> None:
        """A container met again on the current path becomes <cycle>; shared, acyclic parts are walked twice."""
        d: dict[str, Any] = {"name": "a"}
        d["self"] = d
        assert R.mapping(d) == {"name": "a", "self": CYCLE}
        lst: list[Any] = [1]
        lst.append(lst)
        assert R.value(lst) == [1, CYCLE]
        a: dict[str, Any] = {}
        b: dict[str, Any] = {"a": a}
        a["b"] = b
        assert R.value({"root": a}) == {"root": {"b": {"a": CYCLE}}}
        shared = {"email": "x"}
        assert R.value([shared, shared]) == [{"email": REDACTED}, {"email": REDACTED}]

    @pytest.mark.parametrize("kind", [dict, list])
    def test_depth(self, kind: type) -> None:
        """Ten levels of containers are walked; the container on the eleventh becomes [REDACTED]."""
        leaf = "ok jane@example.com"
        assert MAX_DEPTH == 10
        ten = R.value(nested(9, [leaf], kind))
        inner = ten
        for _ in range(9):
            inner = inner["n"] if kind is dict else inner[0]
        assert inner == ["ok [REDACTED]"]
        eleven = R.value(nested(10, [leaf], kind))
        inner = eleven
        for _ in range(10):
            inner = inner["n"] if kind is dict else inner[0]
        assert inner == REDACTED
        # mapping() counts its own dict as the first level.
        deep = R.mapping(nested(9, ["x"]))
        for _ in range(8):
            deep = deep["n"]
        assert deep == {"n": ["x"]}
        deep = R.mapping(nested(10, ["x"]))
        for _ in range(9):
            deep = deep["n"]
        assert deep == {"n": REDACTED}

    def test_non_str_keys(self) -> None:
        """Keys of any type are kept; one whose text names a secret still hides its value."""

        class Field(enum.Enum):
            password = "pw"

        value = {1: "a", None: "b", (1, 2): "c", 2.5: "d", Field.password: "hunter2", b"token": "t0k",
                 b"plain": "p", False: "e"}
        out = R.value(value)
        assert out == {1: "a", None: "b", (1, 2): "c", 2.5: "d", Field.password: REDACTED, b"token": REDACTED,
                       b"plain": "p", False: "e"}

    def test_secret_in_a_key(self) -> None:
        """A key that is itself a secret (an e-mail) is redacted; colliding keys stay apart."""
        assert R.mapping({"a@example.com": 1, "b@example.com": 2, "n": 3}) == {
            REDACTED: 1, f"{REDACTED}#2": 2, "n": 3}

    def test_bytes(self) -> None:
        """bytes holding a secret become redacted text; clean bytes come back as the same object."""
        clean = b"plain \xff bytes"
        assert R.value(clean) is clean
        assert R.value(b"password=hunter2 \xff") == "password=[REDACTED] \\xff"
        assert R.value(bytearray(b"mail jane@example.com")) == "mail [REDACTED]"
        assert R.mapping({"blob": b"card 4111111111111111"}) == {"blob": "card [REDACTED]"}

    def test_numbers(self) -> None:
        """An int that is a card number is redacted; other numbers, bools and floats are kept."""
        assert R.value(4111111111111111) == REDACTED
        assert R.value([5555555555554444, 4111111111111112, 1718000000123, True, 4.111111111111111e15]) == [
            REDACTED, 4111111111111112, 1718000000123, True, 4.111111111111111e15]

        class Big(int):
            pass

        assert R.value(Big(4111111111111111)) == REDACTED

    def test_objects_left_alone(self) -> None:
        """Other objects come back as they are (the formatter renders them, then calls text())."""
        obj = object()
        assert R.value(obj) is obj
        assert R.mapping({"o": obj})["o"] is obj

    def test_never_raises(self) -> None:
        """A mapping that fails while being read hides its content instead of raising."""

        class Hostile(dict[str, Any]):
            def items(self) -> Any:
                raise RuntimeError("boom")

        assert R.value({"h": Hostile(password="x")}) == {"h": REDACTED}
        assert R.mapping(Hostile(a=1)) == {}
        assert R.is_secret_key(["password"]) is False  # type: ignore[arg-type]
        assert R.is_secret_key(None) is False  # type: ignore[arg-type]


class TestConfig:
    """keys, patterns, allow, enabled, and bad settings."""

    def test_extra_keys(self) -> None:
        """keys adds exact (normalised) names, in structures and in text."""
        r = Redactor(keys=["pin", "X-Internal-Id"])
        assert r.mapping({"pin": 1234, "card.PIN": 1, "x_internal_id": "i", "pin_count": 2}) == {
            "pin": REDACTED, "card.PIN": REDACTED, "x_internal_id": REDACTED, "pin_count": 2}
        assert r.text("PIN: 4711, xInternalId=abc") == "PIN: [REDACTED], xInternalId=[REDACTED]"
        assert r.is_secret_key("password")  # the built-in rules stay
        assert R.text("PIN: 4711") == "PIN: 4711"
        dotted = Redactor(keys=["billing.iban"])
        assert dotted.mapping({"billing.iban": "DE89", "other.iban": "DE44", "iban": "DE00"}) == {
            "billing.iban": REDACTED, "other.iban": "DE44", "iban": "DE00"}

    def test_patterns(self) -> None:
        """patterns replace their whole match, str or compiled, everywhere."""
        r = Redactor(patterns=[r"ORD-\d{6}", re.compile(r"(?i)internal-[a-z]+")])
        assert r.text("order ORD-123456 via Internal-Gateway") == "order [REDACTED] via [REDACTED]"
        assert r.value({"a": ["ORD-000001"]}) == {"a": [REDACTED]}
        assert R.text("order ORD-123456") == "order ORD-123456"

    def test_allow(self) -> None:
        """allow keeps keys (any spelling) from the key rule; value rules still apply to them."""
        r = Redactor(allow=["primary_key", "user.email", "AUTH"])
        assert r.mapping({"primaryKey": 5, "user.email": "x", "auth": "ok", "email": "y"}) == {
            "primaryKey": 5, "user.email": "x", "auth": "ok", "email": REDACTED}
        assert r.mapping({"primary_key": "jane@example.com"}) == {"primary_key": REDACTED}
        assert r.text("auth: ok primary_key=5 password=x") == "auth: ok primary_key=5 password=[REDACTED]"
        assert not r.is_secret_key("Primary-Key")

    def test_disabled(self) -> None:
        """enabled=False returns every input itself."""
        r = Redactor(enabled=False)
        text, value = "password=hunter2 for jane@example.com", {"password": "x", "to": ["jane@example.com"]}
        assert r.text(text) is text
        assert r.value(value) is value
        assert r.mapping(value) is value
        assert not r.is_secret_key("password")
        assert not r.enabled and R.enabled

    @pytest.mark.parametrize(("kwargs", "setting"), [
        ({"keys": [1]}, "redact_keys"),
        ({"keys": [""]}, "redact_keys"),
        ({"keys": "password"}, "redact_keys"),
        ({"keys": 5}, "redact_keys"),
        ({"allow": [None]}, "redact_allow"),
        ({"allow": "primary_key"}, "redact_allow"),
        ({"patterns": ["("]}, "redact_patterns"),
        ({"patterns": [5]}, "redact_patterns"),
        ({"patterns": [re.compile(b"x")]}, "redact_patterns"),
        ({"patterns": ["a*"]}, "redact_patterns"),
        ({"patterns": r"\d+"}, "redact_patterns"),
        ({"enabled": "yes"}, "redact"),
    ])
    def test_bad_settings(self, kwargs: dict[str, Any], setting: str) -> None:
        """A bad setting raises ValueError naming it."""
        with pytest.raises(ValueError, match=rf"^{setting}:"):
            Redactor(**kwargs)


class TestSpeed:
    """Guards against catastrophic backtracking (a bound, not a benchmark)."""

    HUGE: ClassVar[dict[str, Callable[[], str]]] = {
        "digits-and-spaces": lambda: "".join(random.Random(7).choices("0123456789 ", k=1_000_000)),
        "digit-groups": lambda: "4111 " * 200_000,
        "digit-groups-failing": lambda: "5234 " * 200_000,
        "card-numbers": lambda: "4111 1111 1111 1111 " * 50_000,
        "digits": lambda: "7" * 1_000_000,
        "a-at": lambda: "a@" * 500_000,
        "a-then-at": lambda: "a" * 1_000_000 + "@",
        "a-at-dot": lambda: "a@a." * 250_000,
        "open-quotes": lambda: 'password="' * 100_000,
        "open-brackets": lambda: "password={" * 100_000,
        "escaped-quotes": lambda: 'password=\\"' * 90_000,
        "pem-begins": lambda: "-----BEGIN RSA PRIVATE KEY-----" * 30_000,
        "jwt-starts": lambda: "eyJ." * 250_000,
        "bearers": lambda: "Bearer " * 140_000,
        "keys-no-values": lambda: "token " * 160_000,
        "schemes": lambda: "http://" * 140_000,
        "userinfo": lambda: "http://u:" + "p" * 1_000_000,
        "aws-prefix": lambda: "AKIA" * 250_000,
        "key-then-spaces": lambda: "token" + " " * 1_000_000 + "=x",
    }

    @pytest.mark.parametrize("name", list(HUGE))
    def test_one_megabyte(self, name: str) -> None:
        """1 MB of adversarial text is redacted in well under 2 s of this thread's CPU (backtracking would take
        minutes; CPU time, not wall time, so a loaded machine does not fail it)."""
        text = self.HUGE[name]()
        start = time.thread_time()
        R.text(text)
        assert time.thread_time() - start < 2.0
