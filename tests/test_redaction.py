"""Redaction end to end: the leak corpus and the false-positive corpus through a file and Kafka.

The corpora live in ``tests/redaction_corpus.py``; ``tests/test_redact.py`` checks
the rules on their own. Here every case is an ordinary logging call on a logger
with a FileHandler and a KafkaLogHandler sharing one JsonFormatter, as an
application would set them up, and what both wrote is searched.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from _support import assert_valid
from redaction_corpus import FALSE_POSITIVES, LEAKS, Case

import logkafka
from logkafka.testing import read_topic

REDACTED = "[REDACTED]"


def log_case(lg: logging.Logger, i: int, case: Case) -> None:
    extra = {**case.extra, "case": i}
    if case.exc_text is None:
        lg.info(case.msg, *case.args, extra=extra)
        return
    try:
        raise ValueError(case.exc_text)
    except ValueError:
        lg.exception(case.msg, *case.args, extra=extra)


def ship(cases: list[Case], kafka_broker: Any, topic: str, tmp_path: Path,
         formatter: logkafka.JsonFormatter | None = None) -> tuple[dict[int, str], dict[int, str]]:
    """Log every case; return (file line, Kafka value) by case number."""
    formatter = formatter or logkafka.JsonFormatter()
    path = tmp_path / "app.log"
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(formatter)
    kafka = logkafka.KafkaLogHandler(kafka_broker.bootstrap_servers, topic)
    kafka.setFormatter(formatter)
    lg = logging.getLogger(f"redaction.{topic}")
    lg.handlers[:] = [file_handler, kafka]
    lg.propagate = False
    lg.setLevel(logging.INFO)
    try:
        for i, case in enumerate(cases):
            log_case(lg, i, case)
        assert kafka.flush(60) is True
        msgs = read_topic(kafka_broker.bootstrap_servers, topic, expected=len(cases), timeout=60)
    finally:
        kafka.close()
        file_handler.close()
    lines = {json.loads(line)["case"]: line for line in path.read_text("utf-8").splitlines()}
    values = {m.data["case"]: m.value.decode("utf-8") for m in msgs}
    assert len(lines) == len(values) == len(cases)
    return lines, values


def test_leak_corpus_leaks_nothing(kafka_broker: Any, kafka_topic: str, tmp_path: Path) -> None:
    """At least 200 secret-bearing calls (flat, nested, in messages, in exceptions, in audit
    diffs, in URLs): no secret in the file or in Kafka, and every call shows a redaction."""
    assert len(LEAKS) >= 200
    lines, values = ship(LEAKS, kafka_broker, kafka_topic, tmp_path)
    leaks = []
    for i, case in enumerate(LEAKS):
        for where, text in (("file", lines[i]), ("kafka", values[i])):
            found = [s for s in case.secrets if s in text]
            if found or REDACTED not in text:
                leaks.append((where, case.label, found))
        assert lines[i] == values[i]  # one formatter: the same clean record in both
        assert_valid(json.loads(values[i]), "application", "flat")
    assert leaks == [], f"{len(leaks)} leaks: {leaks[:10]}"


def test_false_positive_corpus_redacts_nothing(kafka_broker: Any, kafka_topic: str, tmp_path: Path) -> None:
    """UUIDs, hashes, timestamps, order numbers, IP addresses...: nothing redacted, all kept as logged."""
    assert len(FALSE_POSITIVES) >= 150
    lines, values = ship(FALSE_POSITIVES, kafka_broker, kafka_topic, tmp_path)
    wrong = []
    for i, case in enumerate(FALSE_POSITIVES):
        for where, text in (("file", lines[i]), ("kafka", values[i])):
            missing = [k for k in case.keep if k not in text]
            if missing or REDACTED in text:
                wrong.append((where, case.label, missing))
    assert wrong == [], f"{len(wrong)} redacted by mistake: {wrong[:10]}"


def test_audit_diffs_and_context_are_redacted(kafka_broker: Any, tmp_path: Path) -> None:
    """Secrets in an audit diff or context never reach the audit topic, its envelope or its headers."""
    ns = "red" + tmp_path.name[-6:].replace("_", "").replace("-", "")
    kafka_broker.create_topic(f"{ns}.logging.audit.v1", 1)
    handler = logkafka.KafkaLogHandler(kafka_broker.bootstrap_servers, namespace=ns, format="envelope")
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    secret = "pw-93b1c7e2"
    mail = "carol.9f1e@example.org"
    try:
        with logkafka.bound(correlation_id=f"token={secret}"):
            logkafka.audit("user.update", "admin", "user:7", "success",
                           diff={"old": {"password": secret, "email": mail}, "new": {"password": "x-41d9"}},
                           context={"note": f"reset by {mail}", "api_key": "k-77aa31"})
        assert handler.flush(30) is True
        (m,) = read_topic(kafka_broker.bootstrap_servers, f"{ns}.logging.audit.v1", expected=1)
    finally:
        handler.close()
    everything = m.value.decode() + json.dumps({k: v.decode() for k, v in m.headers.items()})
    for s in (secret, mail, "x-41d9", "k-77aa31"):
        assert s not in everything, s
    env = m.data
    assert_valid(env, "audit", "envelope")
    assert env["payload"]["diff"]["old"]["password"] == REDACTED
    assert env["payload"]["context"]["api_key"] == REDACTED
    assert env["correlation_id"] == f"token={REDACTED}"


class TestSettings:
    def test_off_keeps_everything(self) -> None:
        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(logkafka.JsonFormatter(redact=False))
        lg = logging.getLogger("redaction.off")
        lg.handlers[:] = [handler]
        lg.propagate = False
        lg.warning("login as bob@example.com", extra={"password": "hunter2-off"})
        d = json.loads(out.getvalue())
        assert d["password"] == "hunter2-off" and d["message"] == "login as bob@example.com"

    def test_extra_keys_patterns_and_allow(self) -> None:
        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(logkafka.JsonFormatter(redact_keys=["pin"], redact_patterns=[r"ACME-\d{6}"],
                                                    redact_allow=["email"]))
        lg = logging.getLogger("redaction.custom")
        lg.handlers[:] = [handler]
        lg.propagate = False
        lg.warning("voucher ACME-123456 used", extra={"pin": 1234, "email": "ops"})
        d = json.loads(out.getvalue())
        assert d["pin"] == REDACTED and d["message"] == f"voucher {REDACTED} used"
        assert d["email"] == "ops"  # allowed key, and its value holds no address

    def test_the_template_and_the_general_path_agree(self) -> None:
        """The byte template and the dict path (taken with rename_fields) redact alike."""
        outs = []
        for kwargs in ({}, {"rename_fields": {"nothing": "else"}}):
            out = io.StringIO()
            handler = logging.StreamHandler(out)
            handler.setFormatter(logkafka.JsonFormatter(**kwargs))
            lg = logging.getLogger("redaction.paths")
            lg.handlers[:] = [handler]
            lg.propagate = False
            for i, case in enumerate(LEAKS[:120]):
                with logkafka.bound(session="sess-1", user="dave@example.com"):
                    log_case(lg, i, case)
            outs.append([{k: v for k, v in json.loads(line).items() if k not in ("timestamp", "event_id")}
                         for line in out.getvalue().splitlines()])
        assert outs[0] == outs[1]

    @pytest.mark.parametrize(("kwargs", "name"), [
        ({"redact_keys": "password"}, "redact_keys"), ({"redact_patterns": ["("]}, "redact_patterns"),
        ({"redact_allow": [3]}, "redact_allow"), ({"redact": "no"}, "redact"),
    ])
    def test_bad_settings_name_themselves(self, kwargs: dict[str, Any], name: str) -> None:
        with pytest.raises(ValueError, match=rf"^{name}:"):
            logkafka.JsonFormatter(**kwargs)
        with pytest.raises(ValueError, match=rf"^{name}:"):
            logkafka.KafkaLogHandler("127.0.0.1:9", enabled=False, **kwargs)
