"""logkafka.events: the async publisher API of the earlier design, on KafkaLogHandler."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest
from _support import ListHandler, assert_valid

import logkafka
from logkafka import _report, events
from logkafka._process import handlers as live_handlers
from logkafka.events import Decision, LoggingEventPublisher, LoggingEventPublisherContext, LogLevel, Outcome
from logkafka.testing import ConsumedMessage, free_port, read_topic

T = TypeVar("T")
STREAMS = ("application", "audit", "security")
HOSTILE = {k: f"v-{k}" for k in ("message", "msg", "args", "name", "levelname", "exc_info", "asctime", "module",
                                  "created", "stack_info", "taskName", "_lk_stream", "stream", "code", "context")}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def make_namespace(broker: Any) -> str:
    ns = f"ev{uuid.uuid4().hex[:8]}"
    for stream in STREAMS:
        broker.create_topic(f"{ns}.logging.{stream}.v1", 3)
    return ns


def read(broker: Any, ns: str, stream: str, expected: int) -> list[ConsumedMessage]:
    msgs = read_topic(broker.bootstrap_servers, f"{ns}.logging.{stream}.v1", expected=expected)
    return sorted(msgs, key=lambda m: (m.partition, m.offset))


def unreachable() -> str:
    """A loopback address where nothing listens."""
    return f"127.0.0.1:{free_port()}"


def logkafka_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("logkafka-")}


@pytest.fixture
def reports(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, float]]:
    """logkafka's stderr rate limiter, emptied: clear it to see the next report."""
    last: dict[str, float] = {}
    monkeypatch.setattr(_report, "_last", last)
    monkeypatch.setattr(_report, "_suppressed", {})
    yield last


@pytest.fixture(autouse=True)
def _no_default_publisher() -> Iterator[None]:
    """No test leaves the default publisher behind."""
    run(events.shutdown())
    yield
    run(events.shutdown())


class TestAgainstTheBroker:
    def test_application_log_arrives_with_its_fields(self, kafka_broker: Any) -> None:
        ns = make_namespace(kafka_broker)
        publisher = LoggingEventPublisher(kafka_broker.bootstrap_servers, namespace=ns)

        async def place_order() -> tuple[bool, bool]:
            await publisher.start()
            ok = await publisher.publish_application_log(
                "checkout", "checkout-1", "warning", "orders.api", "order 100% placed", "ORDER_PLACED",
                context={"order_id": 7, "items": ["a", "b"]}, correlation_id="req-1")
            flushed = await publisher.flush(30)
            await publisher.stop()
            return ok, flushed

        assert run(place_order()) == (True, True)
        (m,) = read(kafka_broker, ns, "application", 1)
        d = m.data
        assert_valid(d, "application", "flat")
        assert (d["service"], d["instance_id"], d["level"], d["logger"]) == (
            "checkout", "checkout-1", "WARNING", "orders.api")
        assert (d["message"], d["code"], d["correlation_id"]) == ("order 100% placed", "ORDER_PLACED", "req-1")
        assert d["context"] == {"order_id": 7, "items": ["a", "b"]}
        assert "order_id" not in d and "stream" not in d
        assert m.key == b"checkout"
        assert (d["module"], d["function"]) == ("test_events", "place_order")  # the service's call site
        assert m.headers["correlation_id"] == b"req-1"

    def test_audit_and_security_arrive_keyed_by_tenant(self, kafka_broker: Any) -> None:
        ns = make_namespace(kafka_broker)
        publisher = LoggingEventPublisher(kafka_broker.bootstrap_servers, namespace=ns, service_name="billing")

        async def main() -> list[bool]:
            try:
                with logkafka.bound(tenant_id="initech"):
                    return [
                        await publisher.publish_audit_log(
                            "acme", "invoice.update", "alice", "invoice:7", Outcome.SUCCESS, "req-2",
                            {"reason": "typo"}, diff={"old": {"total": 1}, "new": {"total": 2}},
                            ip_address="10.0.0.1", user_agent="curl/8"),
                        await publisher.publish_audit_log(None, "invoice.delete", "bob", "invoice:8", "failure"),
                        await publisher.publish_security_log(
                            "globex", "authorization", "bob", "api", Decision.DENY, "req-3", {"rule": "r1"}),
                    ]
            finally:
                await publisher.stop()

        assert run(main()) == [True, True, True]
        audit = read(kafka_broker, ns, "audit", 2)
        (sec,) = read(kafka_broker, ns, "security", 1)
        assert len(audit) == 2
        by_action = {m.data["action"]: m for m in audit}
        upd, dele = by_action["invoice.update"], by_action["invoice.delete"]
        for m in (upd, dele, sec):
            assert_valid(m.data, None, "flat")
            assert m.data["service"] == "billing"
        assert upd.key == b"acme" and upd.data["tenant_id"] == "acme"
        assert dele.key == b"initech" and dele.data["tenant_id"] == "initech"  # None: the bound tenant
        assert sec.key == b"globex" and sec.data["tenant_id"] == "globex"
        u = upd.data
        assert (u["stream"], u["logger"], u["level"], u["outcome"]) == ("audit", "logkafka.audit", "INFO", "success")
        assert u["message"] == "audit: alice invoice.update invoice:7: success"
        assert (u["actor"], u["resource"], u["correlation_id"]) == ("alice", "invoice:7", "req-2")
        assert u["diff"] == {"old": {"total": 1}, "new": {"total": 2}} and u["context"] == {"reason": "typo"}
        assert (u["ip_address"], u["user_agent"]) == ("10.0.0.1", "curl/8")
        assert dele.data["level"] == "WARNING" and dele.data["outcome"] == "failure"
        s = sec.data
        assert (s["stream"], s["logger"], s["level"], s["decision"]) == (
            "security", "logkafka.security", "WARNING", "deny")
        assert (s["event_type"], s["user_id"], s["resource"], s["correlation_id"]) == (
            "authorization", "bob", "api", "req-3")
        assert s["context"] == {"rule": "r1"}

    def test_levels_by_name_number_and_enum(self, kafka_broker: Any) -> None:
        ns = make_namespace(kafka_broker)
        levels: list[Any] = ["debug", 40, LogLevel.WARN, " Critical ", logging.INFO]

        async def main() -> list[bool]:
            async with LoggingEventPublisherContext(kafka_broker.bootstrap_servers, namespace=ns) as publisher:
                return [await publisher.publish_application_log("svc", "i-1", level, "lv", f"m{i}", "LV")
                        for i, level in enumerate(levels)]

        assert run(main()) == [True] * 5
        msgs = read(kafka_broker, ns, "application", 5)  # one key: one partition, in order
        assert [m.data["level"] for m in msgs] == ["DEBUG", "ERROR", "WARNING", "CRITICAL", "INFO"]
        assert [m.data["message"] for m in msgs] == ["m0", "m1", "m2", "m3", "m4"]

    def test_context_manager_starts_and_stops(self, kafka_broker: Any) -> None:
        ns = make_namespace(kafka_broker)
        manager = LoggingEventPublisherContext(kafka_broker.bootstrap_servers, namespace=ns)

        async def main() -> tuple[bool, bool, bool, bool]:
            assert not manager.publisher.started
            async with manager as publisher:
                assert publisher is manager.publisher
                started = publisher.started
                ok = await publisher.publish_application_log("svc", "i-1", "INFO", "cm", "inside", "CM")
            after = await publisher.publish_application_log("svc", "i-1", "INFO", "cm", "after", "CM")
            return started, ok, publisher.started, after

        assert run(main()) == (True, True, False, False)
        msgs = read(kafka_broker, ns, "application", 1)
        assert [m.data["message"] for m in msgs] == ["inside"]  # delivered by stop(); "after" never sent

    def test_hostile_context_keys_arrive_nested(self, kafka_broker: Any) -> None:
        """PITFALLS 6: no context key can make the record raise; each stream nests them under "context"."""
        ns = make_namespace(kafka_broker)

        async def main() -> list[bool]:
            async with LoggingEventPublisherContext(kafka_broker.bootstrap_servers, namespace=ns) as publisher:
                return [
                    await publisher.publish_application_log("svc", "i-1", "INFO", "h", "hostile", "H",
                                                            context=HOSTILE),
                    await publisher.publish_audit_log("t1", "update", "alice", "doc:1", "success", context=HOSTILE),
                    await publisher.publish_security_log("t1", "authentication", "bob", "login", "allow",
                                                         context=HOSTILE),
                ]

        assert run(main()) == [True, True, True]
        for stream in STREAMS:
            (m,) = read(kafka_broker, ns, stream, 1)
            assert_valid(m.data, stream, "flat")
            assert m.data["context"] == HOSTILE, stream
        (app,) = read(kafka_broker, ns, "application", 1)
        assert (app.data["message"], app.data["code"], app.data["logger"]) == ("hostile", "H", "h")

    def test_each_service_and_instance_its_own_identity(self, kafka_broker: Any) -> None:
        """service_name and instance_id of each call are the record's fields and key, not the handler's."""
        ns = make_namespace(kafka_broker)

        async def main() -> list[bool]:
            async with LoggingEventPublisherContext(kafka_broker.bootstrap_servers, namespace=ns,
                                                    service_name="base") as publisher:
                return [
                    await publisher.publish_application_log("alpha", "a-1", "INFO", "x", "one", "C"),
                    await publisher.publish_application_log("beta", "b-1", "INFO", "x", "two", "C"),
                    await publisher.publish_application_log("alpha", "a-2", "INFO", "x", "three", "C"),
                    await publisher.publish_application_log("alpha", "a-1", "INFO", "x", "four", "C"),
                ]

        assert run(main()) == [True] * 4
        msgs = read(kafka_broker, ns, "application", 4)
        got = sorted((m.data["message"], m.data["service"], m.data["instance_id"], m.key) for m in msgs)
        assert got == [("four", "alpha", "a-1", b"alpha"), ("one", "alpha", "a-1", b"alpha"),
                       ("three", "alpha", "a-2", b"alpha"), ("two", "beta", "b-1", b"beta")]

    def test_module_functions_use_one_default_publisher(self, kafka_broker: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
        ns = make_namespace(kafka_broker)
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_broker.bootstrap_servers)
        monkeypatch.setenv("LOGKAFKA_NAMESPACE", ns)

        async def main() -> list[bool]:
            results = [
                await events.publish_application_log("svc", "i-1", "INFO", "default", "hello", "HELLO",
                                                     {"k": 1}, "cid-9"),
                await events.publish_audit_log("acme", "login", "alice", "session", "success"),
                await events.publish_security_log("acme", "authentication", "alice", "login", "allow"),
            ]
            assert events.default_publisher().started
            return results

        try:
            publisher = events.default_publisher()
            assert run(main()) == [True, True, True]  # a second event loop, the same publisher
            assert events.default_publisher() is publisher
        finally:
            run(events.shutdown())
        assert not publisher.started and events._default is None
        (app,) = read(kafka_broker, ns, "application", 1)
        assert (app.data["code"], app.data["context"], app.data["correlation_id"]) == ("HELLO", {"k": 1}, "cid-9")
        assert read(kafka_broker, ns, "audit", 1)[0].data["action"] == "login"
        assert read(kafka_broker, ns, "security", 1)[0].data["event_type"] == "authentication"
        assert events.default_publisher() is not publisher  # shutdown() forgot it: a new one next time


class TestFalseNeverRaises:
    BAD_CALLS: ClassVar[list[tuple[str, str, tuple[Any, ...], dict[str, Any]]]] = [
        ("audit outcome", "publish_audit_log", ("t", "update", "alice", "doc", "ok"), {}),
        ("audit outcome case", "publish_audit_log", ("t", "update", "alice", "doc", "SUCCESS"), {}),
        ("empty action", "publish_audit_log", ("t", "", "alice", "doc", "success"), {}),
        ("empty tenant", "publish_audit_log", ("", "update", "alice", "doc", "success"), {}),
        ("bad diff", "publish_audit_log", ("t", "update", "alice", "doc", "success"), {"diff": {"before": {}}}),
        ("security decision", "publish_security_log", ("t", "authn", "bob", "api", "maybe"), {}),
        ("security user", "publish_security_log", ("t", "authn", 3, "api", "allow"), {}),
        ("unknown level name", "publish_application_log", ("svc", "i", "LOUD", "app", "m", "C"), {}),
        ("unnamed level number", "publish_application_log", ("svc", "i", 25, "app", "m", "C"), {}),
        ("bool level", "publish_application_log", ("svc", "i", True, "app", "m", "C"), {}),
        ("empty code", "publish_application_log", ("svc", "i", "INFO", "app", "m", ""), {}),
        ("context not a mapping", "publish_application_log", ("svc", "i", "INFO", "app", "m", "C", ["a"]), {}),
        ("message not text", "publish_application_log", ("svc", "i", "INFO", "app", 5, "C"), {}),
        ("empty service", "publish_application_log", ("", "i", "INFO", "app", "m", "C"), {}),
        ("reserved logger", "publish_application_log", ("svc", "i", "INFO", "logkafka.x", "m", "C"), {}),
    ]

    @pytest.mark.parametrize(("case", "method", "args", "kwargs"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
    def test_bad_argument_gives_false_and_a_reason(self, case: str, method: str, args: tuple[Any, ...],
                                                   kwargs: dict[str, Any], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   reports: dict[str, float]) -> None:
        publisher = LoggingEventPublisher(unreachable(), spool_dir=tmp_path / "spool", flush_timeout=0.5)
        try:
            capsys.readouterr()
            assert run(getattr(publisher, method)(*args, **kwargs)) is False
            err = capsys.readouterr().err
            assert err.startswith(f"logkafka: {method}: not published: "), err
            assert publisher.stats()["handlers"] == []  # refused before anything was built
            reports.clear()
            assert run(getattr(events, method)(*args, **kwargs)) is False  # the module-level function too
            assert f"logkafka: {method}: not published: " in capsys.readouterr().err
        finally:
            run(publisher.stop())

    def test_the_same_calls_fixed_are_accepted(self, tmp_path: Path) -> None:
        """The good twins of the bad calls above return True: the refusals are about the argument."""
        publisher = LoggingEventPublisher(unreachable(), spool_dir=tmp_path / "spool", flush_timeout=0.5)

        async def main() -> list[bool]:
            try:
                return [
                    await publisher.publish_audit_log("t", "update", "alice", "doc", "success"),
                    await publisher.publish_security_log("t", "authn", "bob", "api", "allow"),
                    await publisher.publish_application_log("svc", "i", "INFO", "app", "m", "C", {"a": 1}),
                    await publisher.publish_application_log("svc", "i", logging.WARNING, "app", "m", "C"),
                ]
            finally:
                await publisher.stop()

        assert run(main()) == [True] * 4

    def test_never_started_starts_lazily_stopped_stays_stopped(self, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str],
                                                               reports: dict[str, float]) -> None:
        publisher = LoggingEventPublisher(unreachable(), spool_dir=tmp_path / "spool", flush_timeout=0.5)

        async def main() -> list[Any]:
            lazily = await publisher.publish_application_log("svc", "i", "INFO", "app", "m", "C")
            started = publisher.started
            await publisher.start()  # twice is fine
            await publisher.stop()
            await publisher.stop()  # idempotent
            capsys.readouterr()
            after = [
                await publisher.publish_application_log("svc", "i", "INFO", "app", "m", "C"),
                await publisher.publish_audit_log("t", "update", "alice", "doc", "success"),
                await publisher.publish_security_log("t", "authn", "bob", "api", "allow"),
            ]
            said = capsys.readouterr().err
            await publisher.start()  # an explicit start() revives it
            again = await publisher.publish_application_log("svc", "i", "INFO", "app", "m", "C")
            await publisher.stop()
            return [lazily, started, after, said, again]

        lazily, started, after, said, again = run(main())
        assert (lazily, started) == (True, True)
        assert after == [False, False, False]
        assert "publish_application_log: not published: the publisher is stopped" in said
        assert again is True

    def test_start_reports_a_bad_setting_publish_gives_false(self) -> None:
        publisher = LoggingEventPublisher(unreachable(), namespace="a b")
        with pytest.raises(ValueError, match=r"^namespace:"):
            run(publisher.start())
        assert run(publisher.publish_audit_log("t", "update", "alice", "doc", "success")) is False
        with pytest.raises(TypeError):
            LoggingEventPublisher(unreachable(), no_such_option=1)

    def test_a_full_queue_gives_false_exactly_for_the_dropped(self, tmp_path: Path) -> None:
        """True means queued: with a one-record queue and drop_newest, the False answers are the drops."""
        publisher = LoggingEventPublisher(unreachable(), spool_dir=tmp_path / "spool", queue_size=1,
                                          overflow="drop_newest", flush_timeout=0.5, service_name="svc",
                                          instance_id="i")

        async def main() -> tuple[list[bool], dict[str, Any]]:
            try:
                results = [await publisher.publish_application_log("svc", "i", "INFO", "app", f"m{n}", "C")
                           for n in range(2000)]
                return results, publisher.stats()
            finally:
                await publisher.stop()

        results, stats = run(main())
        (only,) = stats["handlers"]  # the call's identity is the handler's own: one handler
        dropped = only["stats"]["dropped"].get("drop_newest", 0)
        assert results.count(False) == dropped > 0
        assert results.count(True) == 2000 - dropped


class TestDisabled:
    @pytest.mark.parametrize("how", ["argument", "false", "0", "NO", " Off "])
    def test_every_call_false_nothing_built(self, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
        if how != "argument":
            monkeypatch.setenv("KAFKA_ENABLE_LOGGING_EVENTS", how)
        built: list[Any] = []
        real = logkafka.KafkaLogHandler

        def spy(*args: Any, **kwargs: Any) -> Any:
            built.append(args)
            return real(*args, **kwargs)

        monkeypatch.setattr(events, "KafkaLogHandler", spy)
        threads, handlers = logkafka_threads(), set(live_handlers())

        async def main(publisher: LoggingEventPublisher) -> list[bool]:
            await publisher.start()
            results = [
                await publisher.publish_application_log("svc", "i", "INFO", "app", "m", "C"),
                await publisher.publish_audit_log("t", "update", "alice", "doc", "success"),
                await publisher.publish_security_log("t", "authn", "bob", "api", "allow"),
            ]
            if how != "argument":  # the environment turns the default publisher off too
                results += [
                    await events.publish_application_log("svc", "i", "INFO", "app", "m", "C"),
                    await events.publish_audit_log("t", "update", "alice", "doc", "success"),
                    await events.publish_security_log("t", "authn", "bob", "api", "allow"),
                ]
                assert events.default_publisher().enable_events is False
            await publisher.stop()
            return results

        publisher = LoggingEventPublisher(unreachable(), enable_events=how != "argument")
        t0 = time.monotonic()
        results = run(main(publisher))
        assert time.monotonic() - t0 < 5.0  # no wait on the unreachable broker (that would take its flush_timeout)
        assert results == [False] * len(results) and len(results) in (3, 6)
        assert not publisher.started and publisher.enable_events is False
        assert built == []
        assert logkafka_threads() <= threads
        assert set(live_handlers()) <= handlers

    def test_env_values_that_leave_it_on(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("KAFKA_ENABLE_LOGGING_EVENTS", raising=False)
        assert LoggingEventPublisher(unreachable()).enable_events is True
        for value in ("true", "1", "YES", ""):
            monkeypatch.setenv("KAFKA_ENABLE_LOGGING_EVENTS", value)
            assert LoggingEventPublisher(unreachable()).enable_events is True, value


class TestNoBroker:
    def test_publish_returns_at_once_stop_within_flush_timeout(self, tmp_path: Path) -> None:
        """Kafka unreachable: accepted records are spooled, publish does not wait, stop() waits flush_timeout."""
        spool = tmp_path / "spool"
        publisher = LoggingEventPublisher(unreachable(), spool_dir=spool, flush_timeout=1.0, namespace="nb")

        async def main() -> tuple[list[bool], float, float]:
            t0 = time.monotonic()
            results = [
                await publisher.publish_application_log("svc", "i", "ERROR", "app", "no broker", "NO_BROKER"),
                await publisher.publish_audit_log("acme", "update", "alice", "doc", "success"),
                await publisher.publish_security_log("acme", "authn", "bob", "api", "deny"),
            ]
            published = time.monotonic() - t0
            t1 = time.monotonic()
            await publisher.stop()
            return results, published, time.monotonic() - t1

        results, published, stopped = run(main())
        assert results == [True, True, True]
        # bounds that catch a wait on Kafka (the default flush_timeout is 10 s), not a slow machine
        assert published < 5.0, published
        assert stopped < 1.0 + 9.0, stopped
        # nothing lost: each record is in the spool once, whole, for the next handler on it to replay
        records = []
        for segment in spool.rglob("*.seg"):
            for line in segment.read_bytes().splitlines():
                topic, _key, value, _ts, *_headers = json.loads(line)
                records.append((topic, json.loads(value)))
        assert len(records) == 3, records
        by_topic = {topic.rsplit(".", 2)[-2]: value for topic, value in records}
        assert by_topic["application"]["code"] == "NO_BROKER" and by_topic["application"]["message"] == "no broker"
        assert by_topic["audit"]["actor"] == "alice" and by_topic["audit"]["action"] == "update", by_topic
        assert by_topic["security"]["user_id"] == "bob" and by_topic["security"]["decision"] == "deny", by_topic

    def test_stop_leaves_the_event_loop_free(self, tmp_path: Path) -> None:
        """stop() closes the handler in a thread: other tasks keep running while it waits on Kafka.

        The "broker" accepts connections and never answers (a frozen one): the handler cannot
        know it is unreachable, so close() waits its flush_timeout (a refused connection it would
        know at once, and spool without waiting)."""
        frozen = socket.socket()
        frozen.bind(("127.0.0.1", 0))
        frozen.listen(16)
        publisher = LoggingEventPublisher(f"127.0.0.1:{frozen.getsockname()[1]}", spool_dir=tmp_path / "spool",
                                          flush_timeout=1.0)

        async def main() -> tuple[int, float]:
            assert await publisher.publish_application_log("svc", "i", "INFO", "app", "m", "C")
            ticks = 0
            done = asyncio.Event()

            async def tick() -> None:
                nonlocal ticks
                while not done.is_set():
                    ticks += 1
                    await asyncio.sleep(0.02)

            ticker = asyncio.create_task(tick())
            t0 = time.monotonic()
            await publisher.stop()
            took = time.monotonic() - t0
            done.set()
            await ticker
            return ticks, took

        try:
            ticks, took = run(main())
        finally:
            frozen.close()
        assert took >= 0.5  # it did wait on the unreachable broker...
        assert ticks >= 5, (ticks, took)  # ...while the loop went on (blocked, it would tick once)

    def test_the_applications_logging_is_untouched(self, tmp_path: Path) -> None:
        """No logger is made or given a handler; the app's root handlers never see publisher records."""
        seen = ListHandler()
        root = logging.getLogger()
        root.handlers[:] = [seen]
        root.setLevel(logging.DEBUG)
        name = f"app.unique{uuid.uuid4().hex[:8]}"
        publisher = LoggingEventPublisher(unreachable(), spool_dir=tmp_path / "spool", flush_timeout=0.5)

        async def main() -> list[bool]:
            try:
                return [
                    await publisher.publish_application_log("svc", "i", "INFO", name, "m", "C"),
                    await publisher.publish_audit_log("t", "update", "alice", "doc", "success"),
                    await publisher.publish_security_log("t", "authn", "bob", "api", "allow"),
                ]
            finally:
                await publisher.stop()

        assert run(main()) == [True] * 3
        assert [r.name for r in seen.records if r.name != "asyncio"] == []  # asyncio's own debug line aside
        assert name not in logging.Logger.manager.loggerDict
        assert root.handlers == [seen]

    def test_too_many_identities(self, tmp_path: Path) -> None:
        publisher = LoggingEventPublisher(unreachable(), spool_dir=tmp_path / "spool", flush_timeout=0.5,
                                          service_name="base", instance_id="b")

        async def main() -> list[bool]:
            try:
                return [await publisher.publish_application_log(f"svc{n}", "i", "INFO", "app", "m", "C")
                        for n in range(events.MAX_IDENTITIES)]
            finally:
                await publisher.stop()

        results = run(main())
        # the publisher's own identity (base/b) takes one place: MAX_IDENTITIES - 1 others fit
        assert results == [True] * (events.MAX_IDENTITIES - 1) + [False]


def test_records_are_json_with_the_bound_context(tmp_path: Path) -> None:
    """What the handler would ship, read from the spool: bound context shows unless the call overrides it."""
    spool = tmp_path / "spool"
    publisher = LoggingEventPublisher(unreachable(), spool_dir=spool, flush_timeout=0.5)

    async def main() -> list[bool]:
        try:
            with logkafka.bound(correlation_id="bound-cid", user_id="u-1"):
                return [
                    await publisher.publish_application_log("svc", "i", "INFO", "app", "bound", "B1"),
                    await publisher.publish_application_log("svc", "i", "INFO", "app", "given", "B2",
                                                            correlation_id="given-cid"),
                ]
        finally:
            await publisher.stop()

    assert run(main()) == [True, True]
    lines = [json.loads(line) for p in sorted(spool.rglob("*.seg")) for line in p.read_text().splitlines()]
    values = {json.loads(rec[2])["code"]: json.loads(rec[2]) for rec in lines}
    assert values["B1"]["correlation_id"] == "bound-cid" and values["B1"]["user_id"] == "u-1"
    assert values["B2"]["correlation_id"] == "given-cid" and values["B2"]["user_id"] == "u-1"
