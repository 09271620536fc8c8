"""``logkafka ui``'s server side: entries, queries, the bounded store, ranges read by time, the app's
safety (token, Host, headers) and the command's refusals. The page itself: tests/test_ui_browser.py."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer

import logkafka
from logkafka._ui.app import COOKIE, CSP, Viewer, make_app
from logkafka._ui.entries import MAX_VALUE_CHARS, Entry, Query, entry_of
from logkafka._ui.history import HistoryError, RangeReader, decode_cursor, encode_cursor
from logkafka._ui.store import Store
from logkafka._ui.tailer import Tailer
from logkafka.testing import ProxiedBroker

STREAMS = {"app": "application", "app.audit": "audit", "app.security": "security"}


def formatted(fields: str = "default", fmt: str = "flat", **extra: Any) -> bytes:
    """A record as a JsonFormatter renders it."""
    record = logging.LogRecord("checkout.orders", logging.ERROR, "p", 1, "Payment %s", ("declined",), None)
    record.__dict__.update(extra)
    return logkafka.JsonFormatter(fields=fields, format=fmt, service_name="checkout").format(record).encode()


def entry(value: bytes | None, topic: str = "app", seq: int = 1, ts: int | None = 1_000, key: bytes | None = None,
          headers: Any = None) -> Entry:
    return entry_of(seq, topic, 0, seq, value, ts, key, headers, STREAMS)


def shown(e: Entry) -> dict[str, Any]:
    return json.loads(e.json)  # type: ignore[no-any-return]


class TestEntries:
    @pytest.mark.parametrize("fields", ["default", "ecs", "datadog", "otel"])
    @pytest.mark.parametrize("fmt", ["flat", "envelope"])
    def test_every_preset_and_format_gives_the_row(self, fields: str, fmt: str) -> None:
        """Each field preset, flat or enveloped: the row's service, level, logger, message, code, correlation id
        and tenant are found."""
        e = entry(formatted(fields, fmt, code="PAY_DECLINED", correlation_id="req-1", tenant_id="acme"))
        row = shown(e)
        assert (row["service"], row["level"], row["levelno"], row["logger"]) == (
            "checkout", "ERROR", 40, "checkout.orders"), row
        assert (row["message"], row["code"], row["correlation_id"], row["tenant_id"]) == (
            "Payment declined", "PAY_DECLINED", "req-1", "acme"), row
        assert row["flag"] is None and row["stream"] == "application" and isinstance(row["record"], dict)
        assert (e.correlation_id, e.tenant_id, e.service) == ("req-1", "acme", "checkout")

    def test_a_value_that_is_not_json_is_kept_raw_and_flagged(self) -> None:
        row = shown(entry(b"plain text <b>not json</b>"))
        assert row["flag"] == "not JSON" and row["raw"] == "plain text <b>not json</b>" and row["record"] is None

    def test_json_that_is_no_log_record_is_flagged(self) -> None:
        row = shown(entry(b'{"order": 7, "total": 9.5}'))
        assert row["flag"] == "not a log record" and row["record"] == {"order": 7, "total": 9.5}

    def test_a_huge_value_is_cut_and_says_so(self) -> None:
        row = shown(entry(b"x" * (MAX_VALUE_CHARS * 8)))
        assert row["flag"].startswith("cut to") and len(row["raw"]) == MAX_VALUE_CHARS

    def test_stream_from_the_record_else_from_the_topic(self) -> None:
        assert entry(formatted(stream="audit")).stream == "audit"  # its own field wins over the topic's stream
        assert entry(formatted(), topic="app.security").stream == "security"
        assert entry(formatted(), topic="elsewhere").stream == "application"

    def test_audit_and_security_fields(self) -> None:
        audit = shown(entry(formatted(stream="audit", actor="u-1", action="order.refund", resource="order:7",
                                      outcome="failure", diff={"old": {"s": "a"}, "new": {"s": "b"}})))
        assert audit["audit"]["actor"] == "u-1" and audit["audit"]["outcome"] == "failure"
        assert audit["audit"]["diff"] == {"old": {"s": "a"}, "new": {"s": "b"}}
        security = shown(entry(formatted(stream="security", event_type="login", user_id="u-2", resource="admin",
                                         decision="deny")))
        assert security["security"] == {"event_type": "login", "user_id": "u-2", "resource": "admin",
                                         "decision": "deny"}

    def test_the_time_is_the_kafka_timestamp_else_the_records(self) -> None:
        value = formatted()
        assert entry(value, ts=123_456).ts_ms == 123_456
        stamp = json.loads(value)["timestamp"]
        expected = int(time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone) * 1000
        assert entry(value, ts=None).ts_ms == expected + int(stamp[20:23])


class TestQuery:
    def test_every_parameter_filters_its_field(self) -> None:
        e = entry(formatted(code="PAY", correlation_id="req-1", tenant_id="acme"), key=b"KEY-7",
                  headers=[("h", b"Hdr-9")])
        passing = {"level": "ERROR", "stream": "application", "service": "checkout", "logger": "checkout",
                   "code": "PAY", "correlation_id": "req-1", "tenant_id": "acme,other", "q": "DECLINED"}
        failing = {"level": "CRITICAL", "stream": "audit", "service": "billing", "logger": "checkout.order",
                   "code": "OTHER", "correlation_id": "req-2", "tenant_id": "other", "q": "timeout"}
        for name in passing:
            assert Query.of({name: passing[name]})(e), name
            assert not Query.of({name: failing[name]})(e), name
        assert Query.of(passing)(e)
        assert Query.of({"q": "key-7"})(e) and Query.of({"q": "hdr-9"})(e)  # the key and headers too

    def test_logger_is_a_prefix_of_dotted_names(self) -> None:
        e = entry(formatted())
        assert Query.of({"logger": "checkout"})(e) and Query.of({"logger": "checkout.orders"})(e)
        assert not Query.of({"logger": "check"})(e)

    @pytest.mark.parametrize(("params", "named"), [({"level": "LOUD"}, "level"), ({"stream": "billing"}, "stream")])
    def test_a_bad_parameter_is_named(self, params: dict[str, str], named: str) -> None:
        with pytest.raises(ValueError, match=f"^{named}:"):
            Query.of(params)


class TestStore:
    def test_bounded_per_stream_and_in_bytes(self) -> None:
        store = Store(per_stream=100, max_bytes=200_000)
        value = formatted()
        store.add(entry(value, seq=store.next_seq(), topic=("app", "app.audit")[i % 2]) for i in range(20_000))
        sizes = store.sizes()
        assert max(sizes["entries"].values()) <= 100 and sizes["bytes"] <= 200_000
        assert sizes["dropped"] == 20_000 - sum(sizes["entries"].values())

    def test_recent_merges_the_streams_in_time_order(self) -> None:
        store = Store()
        stamps = [5, 1, 9, 3, 7, 2]
        store.add(entry(formatted(), topic=("app", "app.audit", "app.security")[i % 3], seq=store.next_seq(), ts=t)
                  for i, t in enumerate(stamps))
        assert [e.ts_ms for e in store.recent(Query(), 4)] == [3, 5, 7, 9]
        assert [e.stream for e in store.recent(Query.of({"stream": "audit"}), 10)] == ["audit", "audit"]

    def test_newer_gives_what_came_after_a_seq(self) -> None:
        store = Store()
        store.add([entry(formatted(), seq=store.next_seq()) for _ in range(5)])
        assert [e.seq for e in store.newer(3, Query()).entries] == [4, 5]
        assert store.newer(5, Query()).entries == []

    def test_a_burst_goes_out_in_parts_and_what_the_buffer_let_go_is_counted(self) -> None:
        """More new records than one look sends: the oldest first, the next look goes on from there; records
        the buffer let go before a slow page got them are counted, not silently skipped."""
        store = Store(per_stream=50)
        store.add([entry(formatted(), seq=store.next_seq()) for _ in range(30)])
        first = store.newer(0, Query(), limit=10)
        assert [e.seq for e in first.entries] == list(range(1, 11)) and first.upto == 10 and first.lost == 0
        second = store.newer(first.upto, Query(), limit=100)
        assert [e.seq for e in second.entries] == list(range(11, 31)) and second.upto == 30
        store.add([entry(formatted(), seq=store.next_seq()) for _ in range(60)])  # 90 added, 50 kept: 41..90
        behind = store.newer(30, Query(), limit=1000)
        assert behind.lost == 10 and [e.seq for e in behind.entries] == list(range(41, 91))

    def test_recent_is_the_newest_by_time_whatever_order_they_came_in(self) -> None:
        """Partitions are read one batch after another: the newest by time may have come first."""
        store = Store()
        stamps = [50, 60, 70, 10, 20, 30]  # partition 1's newer records read before partition 0's older ones
        store.add([entry(formatted(), seq=store.next_seq(), ts=t) for t in stamps])
        assert [e.ts_ms for e in store.recent(Query(), 3)] == [50, 60, 70]

    def test_rates_count_records_by_level_and_errors_by_minute(self) -> None:
        store = Store()
        now = int(time.time() * 1000)
        store.add([entry(formatted(), seq=store.next_seq(), ts=now) for _ in range(3)])
        rates = store.rates()
        assert sum(s.get("error", 0) for s in rates["seconds"]) == 3
        assert sum(m["errors"] for m in rates["minutes"]) == 3


def test_cursor_round_trip_and_bad_cursor() -> None:
    cursor = encode_cursor({"t/0": 5, "t/1": 9}, 1, 2)
    assert decode_cursor(cursor) == ({"t/0": 5, "t/1": 9}, 1, 2)
    with pytest.raises(HistoryError, match=r"^cursor:"):
        decode_cursor("not-a-cursor")


@pytest.fixture
def viewer_store() -> Store:
    store = Store()
    store.add([entry(formatted(correlation_id="req-1"), seq=store.next_seq())])
    return store


class Served:
    """The app served by uvicorn on a free loopback port, in a thread; requests name any ``Host``."""

    def __init__(self, store: Store, token: str | None = None, export: bool = True) -> None:
        import socket
        import threading

        import uvicorn

        ranges = RangeReader({"bootstrap.servers": "127.0.0.1:1", "socket.connection.setup.timeout.ms": 1000},
                             STREAMS)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(make_app(Viewer(store, ranges, token=token, export=export)),
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        assert wait(lambda: self.server.started, 10)

    def get(self, path: str, host: str = "127.0.0.1", headers: dict[str, str] | None = None) -> Reply:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers={"Host": f"{host}:{self.port}", **(headers or {})})
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()},
                         response.read().decode())
        finally:
            conn.close()

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


class Reply:
    def __init__(self, status: int, headers: dict[str, str], text: str) -> None:
        self.status_code, self.headers, self.text = status, headers, text

    def json(self) -> Any:
        return json.loads(self.text)


@pytest.fixture
def serve(viewer_store: Store) -> Iterator[Any]:
    servers: list[Served] = []

    def start(token: str | None = None, export: bool = True) -> Served:
        servers.append(Served(viewer_store, token, export))
        return servers[-1]
    yield start
    for s in servers:
        s.close()


class TestApp:
    def test_headers_forbid_inline_script_and_framing(self, serve: Any) -> None:
        response = serve().get("/")
        assert response.status_code == 200 and response.headers["content-security-policy"] == CSP
        assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"

    def test_records_and_a_bad_filter(self, serve: Any) -> None:
        c = serve()
        data = c.get("/api/records?correlation_id=req-1").json()
        assert [r["correlation_id"] for r in data["records"]] == ["req-1"]
        assert c.get("/api/records?correlation_id=req-2").json()["records"] == []
        bad = c.get("/api/records?level=LOUD")
        assert bad.status_code == 400 and bad.json()["error"].startswith("level:")
        assert c.get("/api/records?limit=0").status_code == 400

    def test_history_says_why_it_cannot_read(self, serve: Any) -> None:
        c = serve()
        assert c.get("/api/history").json()["error"].startswith("from:")
        assert c.get("/api/history?from=yesterday").json()["error"].startswith("from:")

    def test_only_requests_for_this_machine_without_a_token(self, serve: Any) -> None:
        c = serve()
        assert c.get("/api/status", host="localhost").status_code == 200
        refused = c.get("/api/status", host="attacker.example")
        assert refused.status_code == 403 and "127.0.0.1" in refused.text

    def test_the_token_by_header_cookie_or_first_load(self, serve: Any) -> None:
        token = "t0ken-" + uuid.uuid4().hex
        c = serve(token=token)
        assert c.get("/", host="10.1.2.3").status_code == 401
        assert c.get("/api/records", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/api/records", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        first = c.get(f"/?level=ERROR&token={token}", host="10.1.2.3")
        assert first.status_code == 303 and first.headers["location"] == "/?level=ERROR"  # the token leaves the URL
        cookie = first.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}={token};") and "httponly" in cookie.lower()
        assert c.get("/api/records", headers={"Cookie": f"{COOKIE}={token}"}).status_code == 200
        assert c.get("/api/records", headers={"Cookie": f"{COOKIE}=nope"}).status_code == 401

    def test_export_can_be_turned_off(self, serve: Any) -> None:
        lines = serve().get("/api/export").text.splitlines()
        assert [json.loads(line)["correlation_id"] for line in lines] == ["req-1"]
        assert serve(export=False).get("/api/export").status_code == 403


class TestReading:
    def produce(self, servers: str, topic: str, records: list[tuple[int, bytes]]) -> None:
        producer = Producer({"bootstrap.servers": servers})
        for i, (ts, value) in enumerate(records):
            producer.produce(topic, value, key=str(i).encode(), timestamp=ts)
        assert producer.flush(30) == 0

    def test_pages_of_a_range_give_each_record_once_in_time_order(self, kafka_broker: Any) -> None:
        """Records stamped across three partitions, read in pages of 7 from the middle of their time span: every
        record of [from, to] that the query selects comes once, in time order, and none outside."""
        topic = f"ui.range.{uuid.uuid4().hex[:8]}"
        kafka_broker.create_topic(topic, 3)
        base = int(time.time() * 1000) - 600_000
        values = [(base + i * 1000, formatted(seq=i) if i % 4 else formatted(seq=i, tenant_id="other"))
                  for i in range(120)]
        self.produce(kafka_broker.bootstrap_servers, topic, values)
        ranges = RangeReader({"bootstrap.servers": kafka_broker.bootstrap_servers}, {topic: "application"})
        query = Query.of({"q": "declined"})
        got, cursor, pages = [], None, 0
        while True:
            page = ranges.page(query, base + 10_000, base + 99_000, 7, cursor)
            got += [shown(e) for e in page.entries]
            pages += 1
            cursor = page.cursor
            if cursor is None:
                break
            assert pages < 40
        assert [r["record"]["seq"] for r in got] == list(range(10, 100))
        assert [r["ts"] for r in got] == sorted(r["ts"] for r in got)
        tenants = ranges.page(Query.of({"tenant_id": "other"}), base, base + 120_000, 1000)
        assert sorted(shown(e)["record"]["seq"] for e in tenants.entries) == list(range(0, 120, 4))

    def test_the_tailer_backfills_then_follows_and_says_when_kafka_is_away(self) -> None:
        """The reading thread starts with the newest records of each partition, adds what comes after, and
        tells the store when no broker answers and when one does again (a network cut, then restored)."""
        with ProxiedBroker() as broker:
            topic = f"ui.tail.{uuid.uuid4().hex[:8]}"
            broker.create_topic(topic, 1)
            self.produce(broker.bootstrap_servers, topic, [(0, formatted(seq=i)) for i in range(50)])
            store = Store()
            tailer = Tailer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "ui-test",
                             "reconnect.backoff.max.ms": 500}, {topic: "application"}, store, backfill=20).start()
            def newest(n: int) -> list[int]:
                return [shown(e)["record"]["seq"] for e in store.recent(Query(), n)]

            try:
                # (the newest 20 at least: this test broker's end-offset lookups are inexact, a real one's are not)
                assert wait(lambda: newest(20) == list(range(30, 50)))
                self.produce(broker.bootstrap_servers, topic, [(0, formatted(seq=50))])
                assert wait(lambda: newest(1) == [50])
                broker.proxy.cut()
                assert wait(lambda: store.kafka.state == "unreachable", 30)
                broker.proxy.restore()
                assert wait(lambda: store.kafka.state == "ok", 30)
                self.produce(broker.bootstrap_servers, topic, [(0, formatted(seq=51))])
                assert wait(lambda: newest(1) == [51], 30)
            finally:
                tailer.stop()


def wait(condition: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


class TestCommand:
    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "logkafka", "ui", "-b", "127.0.0.1:1", *args],
                              capture_output=True, text=True, timeout=60)

    def test_a_non_loopback_host_needs_a_token(self) -> None:
        done = self.run("--host", "0.0.0.0")
        assert done.returncode == 2 and "--host 0.0.0.0" in done.stderr and "--token" in done.stderr

    def test_a_short_token_is_refused(self) -> None:
        done = self.run("--host", "0.0.0.0", "--token", "short")
        assert done.returncode == 2 and "--token: use at least 16 characters" in done.stderr

    def test_without_the_extra_it_says_which_to_install(self) -> None:
        code = ("import sys; sys.modules['uvicorn'] = None\n"
                "from logkafka._cli import ui\n"
                "from logkafka._cli.common import CliError\n"
                "try:\n    ui.serve({}, {}, host='127.0.0.1', port=0, token=None, backfill=1, buffer=1, export=True)\n"
                "except CliError as exc:\n    print(exc)\n")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert "pip install 'logkafka[ui]'" in done.stdout, done.stderr


