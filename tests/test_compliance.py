"""``logkafka report`` and ``logkafka verify`` against a real broker, and the hash chain's logic.

The figures are checked against counts the test makes itself; tampering is done the way an attacker
with write access to the topic would: raw producers and copies of the trail, edited, reordered, thinned.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from _support import logger_with
from confluent_kafka import Producer

import logkafka
from logkafka._chain import HEADER, Chain, Link
from logkafka._compliance.chains import Verifier
from logkafka._compliance.period import Raw, period_of
from logkafka._message import Message
from logkafka.testing import read_topic

KEY = b"k" * 32


def chained(n: int, key: bytes | None = None, topic: str = "a", writer_stream: str = "audit") -> list[Raw]:
    """``n`` records of one writer, as a handler writes them (one partition)."""
    chain = Chain(writer_stream, key, None)
    out = []
    for i in range(n):
        value = json.dumps({"event_id": f"e-{i}", "seq": i}).encode()
        message, _ = chain.link(Message(topic, b"acme", value, 0, None))
        out.append(Raw(topic, 0, i, 1000 + i, message.key, message.value, message.headers))
    return out


def verify(raws: list[Raw], key: bytes | None = None) -> dict[str, Any]:
    v = Verifier(key)
    for raw in raws:
        v.feed(raw)
    return v.result()


def kinds(result: dict[str, Any]) -> list[str]:
    return [p["kind"] for p in result["problems"]]


class TestChainLogic:
    def test_an_intact_chain_in_any_partition_order(self) -> None:
        raws = chained(50)
        for i, raw in enumerate(raws):  # a writer's records spread over partitions, read side by side
            raw.partition = i % 3
        mixed = sorted(raws, key=lambda r: (r.partition, r.offset))
        result = verify(mixed)
        assert result["intact"] and result["chained"] == 50 and kinds(result) == [], result
        assert result["writers"][0]["first_seq"] == 1 and result["writers"][0]["last_seq"] == 50

    @pytest.mark.parametrize("first", [0, 1, 2])
    def test_a_writer_whose_later_records_are_read_first(self, first: int) -> None:
        """Its records spread over partitions: the partition read first may not hold record 1."""
        raws = chained(30)
        for i, raw in enumerate(raws):
            raw.partition = i % 3
        mixed = sorted(raws, key=lambda r: ((r.partition - first) % 3, r.offset))
        result = verify(mixed)
        assert result["intact"] and kinds(result) == [], result
        w = result["writers"][0]
        assert (w["first_seq"], w["last_seq"], w["duplicates"]) == (1, 30, 0)

    def test_early_records_are_checked_too(self) -> None:
        raws = chained(8)
        for raw in raws[5:]:
            raw.partition = 1
        late = raws[5:] + raws[1:5]  # 6..8 (partition 1) read first, then 2..5 (partition 0); 1 is before the period
        result = verify(late)
        assert result["intact"] and result["writers"][0]["first_seq"] == 2, result
        edited = [*late]
        edited[4] = Raw("a", 0, 2, 0, late[4].key, b'{"event_id": "e-2", "seq": 99}', late[4].headers)
        assert kinds(verify(edited)) == ["mismatch"]
        del late[4]  # record 3 removed: a gap between 2 and 4
        result = verify(late)
        assert kinds(result) == ["gap"] and result["writers"][0]["missing"] == 1
        assert result["problems"][0]["detail"] == "record 3 of this writer is missing (removed?) after record 2"

    def test_a_removed_record_is_a_gap_located_at_the_next(self) -> None:
        raws = chained(10)
        del raws[4]
        result = verify(raws)
        assert not result["intact"] and kinds(result) == ["gap"]
        assert result["problems"][0]["offset"] == 5 and result["problems"][0]["event_id"] == "e-5"
        assert "record 5 of this writer is missing" in result["problems"][0]["detail"]

    def test_an_edited_record_fails_its_hash(self) -> None:
        raws = chained(5)
        raws[2].value = (raws[2].value or b"").replace(b'"seq": 2', b'"seq": 20')
        result = verify(raws)
        assert kinds(result) == ["mismatch"] and result["problems"][0]["offset"] == 2

    def test_a_reordered_record_is_said(self) -> None:
        raws = chained(5)
        raws[1], raws[3] = raws[3], raws[1]
        assert "reordered" in kinds(verify(raws))

    def test_a_record_without_a_chain_and_forged_ones(self) -> None:
        """No header: unchained. A header copied onto another value: its hash fails. A place taken again by a
        record whose hash was made for it (no key: anyone can): two records at one place, a conflict."""
        raws = chained(3)
        unchained = Raw("a", 0, 3, 2000, None, b'{"event_id": "x"}', None)
        copied = Raw("a", 0, 4, 2001, b"acme", b'{"event_id": "forged"}', raws[1].headers)
        first = Link.parse(dict(raws[0].headers or [])[HEADER])
        assert first is not None
        from logkafka._chain import digest

        value = b'{"event_id": "forged-2"}'
        h = digest("sha256", None, first.writer, 2, first.hash, b"acme", value)
        header = Link("sha256", first.writer, 2, first.hash, h).header()
        remade = Raw("a", 0, 5, 2002, b"acme", value, [(HEADER, header)])
        result = verify([*raws, unchained, copied, remade])
        assert result["unchained"] == 1 and kinds(result) == ["unchained", "mismatch", "conflict"], result

    def test_a_duplicate_delivery_is_counted_not_failed(self) -> None:
        raws = chained(4)
        result = verify([*raws, raws[2]])
        assert result["intact"] and result["writers"][0]["duplicates"] == 1

    def test_a_keyed_chain_needs_the_key(self) -> None:
        raws = chained(4, KEY)
        assert verify(raws, KEY)["intact"]
        assert verify(raws, b"w" * 32)["writers"][0]["mismatches"] == 4
        unkeyed = verify(raws)
        assert unkeyed["unverified"] == 4 and unkeyed["intact"]  # checked for gaps and order, not forgery

    def test_a_forger_without_the_key_cannot_make_a_record_that_verifies(self) -> None:
        raws = chained(3, KEY)
        last = Link.parse(dict(raws[-1].headers or [])[HEADER])
        assert last is not None
        from logkafka._chain import digest

        value = b'{"event_id": "forged"}'  # the next place, its hash made without the key
        h = digest("sha256", None, last.writer, 4, last.hash, b"acme", value)
        header = Link("hmac-sha256", last.writer, 4, last.hash, h).header()
        forged = Raw("a", 0, 3, 2000, b"acme", value, [(HEADER, header)])
        assert kinds(verify([*raws, forged], KEY)) == ["mismatch"]

    def test_a_restart_follows_the_previous_chain(self, tmp_path: Path) -> None:
        head = str(tmp_path / "chain.audit.head")
        first, second = Chain("audit", None, head), None
        raws = []
        for chain_number in range(2):
            chain = first if chain_number == 0 else Chain("audit", None, head)
            second = chain
            for i in range(3):
                message, _ = chain.link(Message("a", None, f'{{"n": {chain_number}{i}}}'.encode(), 0, None))
                raws.append(Raw("a", 0, len(raws), 0, None, message.value, message.headers))
        result = verify(raws)
        assert second is not None and result["intact"]
        follower = next(w for w in result["writers"] if w["writer"] == second.writer)
        assert follower["follows"] == first.writer and follower["restart"]


class TestPeriod:
    def test_month_and_range(self) -> None:
        november = period_of("2026-11", None, None)
        assert november.json() == {"from": "2026-11-01T00:00:00.000Z", "to": "2026-12-01T00:00:00.000Z"}
        assert period_of(None, "2026-11-02", "2026-11-03T12:00:00Z").json()["to"] == "2026-11-03T12:00:00.000Z"

    @pytest.mark.parametrize(("args", "named"), [(("2026-13", None, None), "--month"),
                                                 (("2026-11", "2026-11-02", None), "--month"),
                                                 ((None, "yesterday", None), "--since"),
                                                 ((None, "2026-11-03", "2026-11-02"), "--until")])
    def test_a_bad_period_is_named(self, args: tuple[Any, ...], named: str) -> None:
        with pytest.raises(ValueError, match=f"^{re.escape(named)}:"):
            period_of(*args)


class TestSecretsCheck:
    """Which members hold what redaction removes (the pure logic; the report's end-to-end test is below)."""

    @pytest.mark.parametrize(("record", "expected"), [
        ({"message": "login by ana", "event_type": "authorization", "tenant_id": "acme"}, []),
        ({"message": "retry with token=abc123def456"}, [("message", "secret key=value in text")]),
        ({"message": "sent widget_code=zz-9431-k"}, [("message", "secret key=value in text")]),
        ({"context": {"widget_code": "zz-9431-k"}}, [("context.widget_code", "secret key name")]),
        ({"message": "paid with 4111 1111 1111 1111"}, [("message", "card number")]),
        ({"card": 4111111111111111}, [("card", "card number")]),
        ({"service": "svc@example.com", "user": "x"}, []),  # the record's own fields are not looked at
    ])
    def test_findings(self, record: dict[str, Any], expected: list[tuple[str, str]]) -> None:
        from logkafka._compliance.secrets import findings
        from logkafka._redact import Redactor

        # widget_code: a key of the user's (redact_keys), which the quick look must know as well as the built-in
        redactor = Redactor(keys=["widget_code"])
        found = findings(redactor, record)
        assert [(field, rule) for field, rule in found if (field, rule) in expected] == expected, found
        assert len(found) == len(expected), found


def logkafka_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "logkafka", *args], capture_output=True, text=True, timeout=180,
                          env={**os.environ, **(env or {})})


class Trail:
    """A namespace's audit and security records, written by real handlers; the counts the test expects."""

    def __init__(self, servers: str, tmp: Path, key: bytes | None = None) -> None:
        self.servers, self.tmp, self.key = servers, tmp, key
        self.namespace = f"t{uuid.uuid4().hex[:10]}"
        self.audit = f"{self.namespace}.logging.audit.v1"
        self.security = f"{self.namespace}.logging.security.v1"
        self.expected: dict[str, Any] = {"total": 0, "failures": 0, "actions": {}, "tenants": set(), "allow": 0,
                                         "deny": 0}

    def write(self, audits: int, securities: int, spool: str = "spool") -> None:
        handler = logkafka.KafkaLogHandler(self.servers, f"{self.namespace}.logging.application.v1",
                                           namespace=self.namespace, spool_dir=str(self.tmp / spool),
                                           audit_chain_key=self.key, flush_timeout=30)
        logger_with(handler)
        log = logging.getLogger("logkafka.audit")
        log.addHandler(handler)
        sec = logging.getLogger("logkafka.security")
        sec.addHandler(handler)
        try:
            for i in range(audits):
                action, outcome, tenant = ("order.refund", "order.create")[i % 2], ("success", "failure")[i % 5 == 0], \
                    f"tenant-{i % 3}"
                logkafka.audit(action, f"u-{i % 4}", f"order:{i}", outcome, tenant_id=tenant)
                e = self.expected
                e["total"] += 1
                e["failures"] += outcome == "failure"
                e["actions"][action] = e["actions"].get(action, 0) + 1
                e["tenants"].add(tenant)
            for i in range(securities):
                decision = ("allow", "deny")[i % 3 == 0]
                logkafka.security("authorization", f"u-{i}", "admin", decision, tenant_id="tenant-0")
                self.expected[decision] += 1
            assert handler.flush(60) is True
        finally:
            log.removeHandler(handler)
            sec.removeHandler(handler)
            handler.close()

    def run(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        extra = {"LOGKAFKA_AUDIT_CHAIN_KEY": self.key.decode()} if self.key else {}
        return logkafka_cli(command, "-b", self.servers, "--namespace", self.namespace,
                            "--month", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m"), *args,
                            env=extra)

    def copy(self, topic: str, order: Any) -> str:
        """A copy of ``topic``'s records (value, key, headers), in the order ``order`` gives: a tampered trail."""
        msgs = read_topic(self.servers, topic, expected=None, timeout=20, idle=2)
        target = f"{self.namespace}.tampered.{uuid.uuid4().hex[:6]}"
        producer = Producer({"bootstrap.servers": self.servers})
        def written(m: Any) -> tuple[str, int]:  # the order the writer wrote them in (its chain's)
            link = Link.parse(m.headers.get(HEADER))
            return (link.writer, link.seq) if link is not None else ("", 0)
        for m in order(sorted(msgs, key=written)):
            producer.produce(target, m.value, key=m.key, headers=list(m.headers.items()), partition=0)
        assert producer.flush(30) == 0
        return target


@pytest.fixture
def trail(kafka_broker: Any, tmp_path: Path) -> Trail:
    return Trail(kafka_broker.bootstrap_servers, tmp_path)


class TestReport:
    def test_figures_match_the_records_written(self, trail: Trail) -> None:
        trail.write(audits=40, securities=9)
        done = trail.run("report")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        e = trail.expected
        assert report["total_events"] == e["total"] == 40 and report["failures"] == e["failures"]
        assert {o["action"]: o["count"] for o in report["operations"]} == e["actions"]
        assert report["error_rate"] == pytest.approx(e["failures"] / e["total"])
        assert report["tenants"] == len(e["tenants"])
        assert report["security"]["allow"] == e["allow"] and report["security"]["deny"] == e["deny"]
        assert sum(d["success"] + d["failure"] for d in report["per_day"]) == 40
        assert report["passed"] and report["chain"]["intact"] and report["chain"]["chained"] == 49
        import jsonschema

        schema = json.loads((Path(logkafka.__file__).parent / "schemas" / "report.v1.json").read_text())
        jsonschema.validate(report, schema)

    def test_a_secret_slipped_in_by_a_raw_producer_is_found_located_and_fails(self, trail: Trail) -> None:
        trail.write(audits=5, securities=0)
        producer = Producer({"bootstrap.servers": trail.servers})
        secret = {"timestamp": "2026-12-06T10:00:00.000Z", "level": "INFO", "message": "reset for alice@example.com",
                  "event_id": "raw-1", "stream": "audit", "action": "password.reset", "actor": "u-1",
                  "resource": "user:alice", "outcome": "success", "tenant_id": "acme", "password": "hunter2"}
        producer.produce(trail.audit, json.dumps(secret).encode(), partition=1)
        assert producer.flush(30) == 0
        done = trail.run("report")
        assert done.returncode == 1, done.stderr
        report = json.loads(done.stdout)
        where = report["redaction_check"]["where"]
        assert report["redaction_check"]["unredacted_secrets"] == 2
        assert {(w["field"], w["rule"]) for w in where} == {("message", "e-mail address"),
                                                            ("password", "secret key name")}
        assert all(w["topic"] == trail.audit and w["partition"] == 1 and w["event_id"] == "raw-1" for w in where)
        assert "hunter2" not in done.stdout and "alice@example.com" not in done.stdout
        assert report["chain"]["unchained"] == 1  # and it carries no chain: not written by a handler

    def test_the_html_report_is_self_contained_and_its_charts_render(self, trail: Trail) -> None:
        trail.write(audits=12, securities=4)
        out = trail.tmp / "report.html"
        done = trail.run("report", "--format", "html", "-o", str(out))
        assert done.returncode == 0, done.stderr
        page = out.read_text()
        assert not re.search(r"https?://|<script|<link|@import|url\(|src=", page), "an external reference"
        shots = os.environ.get("LOGKAFKA_SCREENSHOTS")
        from playwright.sync_api import sync_playwright

        chromium = shutil.which("chromium")
        if chromium is None:
            if os.environ.get("CI") == "true":
                pytest.fail("chromium is not installed and CI is set: .ci/run installs it")
            pytest.skip("chromium is not installed (apt-get install chromium)")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu",
                                        "--disable-background-networking", "--no-first-run"])
            try:
                context = browser.new_context(offline=True, viewport={"width": 1100, "height": 1400})
                tab = context.new_page()
                tab.goto(out.as_uri())
                assert tab.locator("svg").count() == 4
                assert tab.locator("svg rect").count() >= 4  # bars drawn
                assert tab.locator(".verdict.pass").is_visible()
                if shots:
                    tab.screenshot(path=str(Path(shots) / "report.png"))
            finally:
                browser.close()


class TestVerify:
    def test_intact_across_a_restart_and_a_spool_replay(self, trail: Trail) -> None:
        trail.write(audits=6, securities=3)
        trail.write(audits=6, securities=3)  # a second run on the same spool: its chains follow the first's
        done = trail.run("verify", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        result = json.loads(done.stdout)
        assert result["intact"] and result["records"] == 18 and len(result["writers"]) == 4
        assert sum(1 for w in result["writers"] if w["follows"]) == 2

    def test_a_forged_record_appended_to_the_audit_topic_fails(self, trail: Trail) -> None:
        trail.write(audits=5, securities=0)
        assert trail.run("verify").returncode == 0
        producer = Producer({"bootstrap.servers": trail.servers})
        producer.produce(trail.audit, b'{"event_id": "forged", "action": "user.delete"}', partition=0)
        assert producer.flush(30) == 0
        done = trail.run("verify")
        assert done.returncode == 1 and "NOT INTACT" in done.stdout and "unchained" in done.stdout
        assert f"{trail.audit}[0]@" in done.stdout and "event_id=forged" in done.stdout

    @pytest.mark.parametrize("tamper", ["removed", "reordered", "edited"])
    def test_a_tampered_copy_of_the_trail_fails(self, trail: Trail, tamper: str) -> None:
        trail.write(audits=8, securities=0)

        def order(msgs: list[Any]) -> list[Any]:
            if tamper == "removed":
                return msgs[:3] + msgs[4:]
            if tamper == "reordered":
                return [msgs[0], msgs[2], msgs[1], *msgs[3:]]
            edited = msgs[5].value.replace(b'"actor":"u-', b'"actor":"x-')
            assert edited != msgs[5].value
            msgs[5] = dataclasses.replace(msgs[5], value=edited)
            return msgs
        copy = trail.copy(trail.audit, order)
        done = logkafka_cli("verify", "-b", trail.servers, "--audit-topic", copy, "--security-topic", copy,
                            "--since", "2020-01-01", "--json")
        assert done.returncode == 1, done.stdout + done.stderr
        found = {p["kind"] for p in json.loads(done.stdout)["problems"]}
        expected = {"removed": "gap", "reordered": "reordered", "edited": "mismatch"}[tamper]
        assert found == {expected}, found

    def test_a_keyed_chain(self, kafka_broker: Any, tmp_path: Path) -> None:
        trail = Trail(kafka_broker.bootstrap_servers, tmp_path, key=b"s3cret-key-of-the-audit-trail")
        trail.write(audits=4, securities=2)
        assert trail.run("verify").returncode == 0
        wrong = logkafka_cli("verify", "-b", trail.servers, "--namespace", trail.namespace, "--since", "2020-01-01",
                             "--chain-key", "another-key-of-16-bytes-or-more")
        assert wrong.returncode == 1 and "mismatch" in wrong.stdout


class TestCommands:
    def test_usage_errors_name_the_option(self) -> None:
        done = logkafka_cli("report", "-b", "127.0.0.1:1", "--month", "11-2026")
        assert done.returncode == 2 and "--month: expected YYYY-MM" in done.stderr
        done = logkafka_cli("report", "-b", "127.0.0.1:1", "--format", "html")
        assert done.returncode == 2 and "-o FILE" in done.stderr
        done = logkafka_cli("verify", "-b", "127.0.0.1:1", "--chain-key", "short")
        assert done.returncode == 2 and "--chain-key: expected a secret of at least 16 bytes" in done.stderr
