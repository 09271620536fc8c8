"""Acceptance tests for the failures other handlers are known for (shared/PITFALLS.md items 1, 2, 4, 7)."""

from __future__ import annotations

import asyncio
import logging
import logging.config
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from _support import ListHandler
from opentelemetry.sdk.trace import TracerProvider

import logkafka
from logkafka.testing import read_topic

Make = Callable[..., logkafka.KafkaLogHandler]



class GatedFormatter(logkafka.JsonFormatter):
    """A JsonFormatter whose rendering on the worker waits for a gate: formatting happens strictly later.

    It uses python-json-logger's ``process_log_record`` hook, which runs while the record is rendered.
    """

    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self.gate = gate

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:  # type: ignore[override]
        self.gate.wait(60)
        return super().process_log_record(log_data)  # type: ignore[no-any-return]


# -- 1. delivery at interpreter exit -------------------------------------------------------------

EXIT_SCRIPT = textwrap.dedent("""
    import atexit, logging, logging.config, sys, threading, time

    TOPIC, MODE, N = sys.argv[1], sys.argv[2], int(sys.argv[3])


    def configure():
        logging.config.dictConfig({
            "version": 1,
            "formatters": {"json": {"()": "logkafka.JsonFormatter"}},
            "handlers": {"kafka": {"class": "logkafka.KafkaLogHandler", "formatter": "json", "topic": TOPIC}},
            "root": {"level": "INFO", "handlers": ["kafka"]},
        })


    def log_all(log):
        for seq in range(N):
            log.info("record %d", seq, extra={"seq": seq, "mode": MODE})


    def main():
        configure()
        log = logging.getLogger("exit.test")
        if MODE == "main":
            log_all(log)
        elif MODE == "thread":
            go = threading.Event()

            def run():
                go.wait()
                time.sleep(0.3)  # main() has returned by now: the interpreter is shutting down
                log_all(log)

            t = threading.Thread(target=run, name="late-logger")  # not a daemon
            t.start()
            go.set()
            print("thread alive at return:", t.is_alive(), flush=True)
        elif MODE == "atexit":
            atexit.register(log_all, log)  # registered after logging: runs before logging.shutdown
        print("main returns", flush=True)


    main()
""")


class TestDeliveryAtExit:
    @pytest.mark.parametrize("mode", ["main", "thread", "atexit"])
    def test_every_record_delivered_at_exit(self, kafka_broker: Any, kafka_topic: str, mode: str) -> None:
        """A process that logs 10,000 records and just ends (no flush, no shutdown call) delivers each once."""
        n = 10_000
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers}
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-c", EXIT_SCRIPT, kafka_topic, mode, str(n)],
            env=env, capture_output=True, text=True, timeout=120,
        )
        took = time.monotonic() - t0
        assert proc.returncode == 0, proc.stderr
        assert "main returns" in proc.stdout
        if mode == "thread":
            assert "thread alive at return: True" in proc.stdout
        assert "Traceback" not in proc.stderr, proc.stderr
        assert "Logging error" not in proc.stderr, proc.stderr
        assert took < 60

        msgs = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=n, timeout=60)
        seqs = [m.data["seq"] for m in msgs]
        assert len(set(seqs)) == n, f"missing {n - len(set(seqs))} of {n}"
        assert len(msgs) == n, f"{len(msgs) - n} duplicates"
        assert set(seqs) == set(range(n))
        assert {m.data["mode"] for m in msgs} == {mode}
        assert len({m.data["event_id"] for m in msgs}) == n


# -- 2. dictConfig again while threads log -----------------------------------------------------------

class TestReconfigureWhileLogging:
    def test_dictconfig_five_times_while_eight_threads_log(
        self, kafka_broker: Any, kafka_topic: str, capsys: pytest.CaptureFixture[str],
        record_property: Callable[[str, object], None],
    ) -> None:
        """dictConfig replaces the Kafka handler 5 times under 8 logging threads: no deadlock, no error, no loss."""
        handed: set[tuple[int, int]] = set()  # (thread, seq) that entered some KafkaLogHandler

        class Seen(logging.Filter):
            def filter(self, record: logging.LogRecord) -> bool:
                t = getattr(record, "t", None)
                if t is not None:
                    handed.add((t, record.seq))  # type: ignore[attr-defined]
                return True

        config = {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"json": {"()": "logkafka.JsonFormatter"}},
            "filters": {"seen": {"()": Seen}},
            "handlers": {"kafka": {
                "class": "logkafka.KafkaLogHandler", "formatter": "json", "filters": ["seen"],
                "bootstrap_servers": kafka_broker.bootstrap_servers, "topic": kafka_topic,
                "key": "extra.t", "flush_timeout": 2,
            }},
            "root": {"level": "INFO", "handlers": ["kafka"]},
        }
        logging.raiseExceptions = True
        handlers: list[logkafka.KafkaLogHandler] = []

        def configure() -> None:
            logging.config.dictConfig(config)
            (h,) = [h for h in logging.getLogger().handlers if isinstance(h, logkafka.KafkaLogHandler)]
            handlers.append(h)

        configure()
        stop = threading.Event()
        logged: list[list[int]] = [[] for _ in range(8)]
        errors: list[BaseException] = []

        def keep_logging(t: int) -> None:
            root = logging.getLogger()
            seq = 0
            try:
                while not stop.is_set():
                    root.info("thread %d record %d", t, seq, extra={"t": t, "seq": seq})
                    logged[t].append(seq)
                    seq += 1
                    time.sleep(0.001)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=keep_logging, args=(t,), name=f"app-{t}") for t in range(8)]
        for th in threads:
            th.start()
        try:
            t0 = time.monotonic()
            for _ in range(5):
                time.sleep(0.4)
                configure()
            reconfigure_took = time.monotonic() - t0
            time.sleep(0.4)
        finally:
            stop.set()
            for th in threads:
                th.join(30)
        assert not any(th.is_alive() for th in threads), "a logging thread did not finish: deadlock"
        assert errors == []
        assert reconfigure_took < 60
        assert len({id(h) for h in handlers}) == 6
        assert handlers[-1].flush(timeout=30) is True

        sent = {(t, s) for t in range(8) for s in logged[t]}
        assert all(len(x) > 100 for x in logged)  # every thread logged throughout
        msgs = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=len(sent), timeout=60)
        got = Counter((m.data["t"], m.data["seq"]) for m in msgs if "t" in m.data)
        missing = sent - set(got)
        never_handed = missing - handed
        duplicates = sum(c - 1 for c in got.values())
        record_property("records", len(sent))
        record_property("duplicates", duplicates)
        print(f"{len(sent)} records logged, {len(msgs)} read, {duplicates} duplicates")
        assert not missing, (
            f"{len(missing)} of {len(sent)} records missing ({len(never_handed)} of them never reached a "
            f"KafkaLogHandler), e.g. {sorted(missing)[:10]}"
        )
        assert set(got) == sent
        for h in handlers:
            assert h.stats()["dropped_total"] == 0
        err = capsys.readouterr().err
        assert "Logging error" not in err, err
        assert "Traceback" not in err, err


# -- 4. no recursion ----------------------------------------------------------------------------------

class TestNoRecursion:
    def test_client_debug_logs_on_the_root_logger(
        self, make_handler: Make, kafka_broker: Any, kafka_topic: str, capsys: pytest.CaptureFixture[str],
    ) -> None:
        """librdkafka debug logs routed through logging on the worker never re-enter the handler."""
        root = logging.getLogger()
        root.setLevel(logging.DEBUG)
        logging.getLogger("confluent_kafka").setLevel(logging.DEBUG)
        logging.getLogger("logkafka").setLevel(logging.DEBUG)
        collect = ListHandler()
        handler = make_handler(producer_config={
            "debug": "broker,topic,msg", "logger": logging.getLogger("confluent_kafka.producer"),
        })
        root.addHandler(handler)
        root.addHandler(collect)
        app = logging.getLogger("app.recursion")
        for seq in range(200):
            app.info("app record %d", seq, extra={"seq": seq})
            if seq % 50 == 0:  # our own and the client's loggers, from the application's thread
                logging.getLogger("logkafka.worker").warning("own record %d", seq)
                logging.getLogger("confluent_kafka.producer").warning("client record %d", seq)
        assert handler.flush(timeout=30) is True

        msgs = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=200)
        assert len(msgs) == 200
        assert {m.data["logger"] for m in msgs} == {"app.recursion"}
        assert sorted(m.data["seq"] for m in msgs) == list(range(200))
        assert not any(m.data["logger"].startswith(("confluent_kafka", "logkafka")) for m in msgs)
        client = [r for r in collect.records if r.name.startswith("confluent_kafka")]
        # served by the handler's threads: the worker, or its reaper of delivery reports
        from_worker = [r for r in client if r.threadName in (f"logkafka-{kafka_topic}",
                                                             f"logkafka-{kafka_topic}-reports")]
        assert len(from_worker) > 0, "librdkafka's debug logs did not go through logging on the worker"
        assert any(r.levelno == logging.DEBUG for r in from_worker)
        assert len([r for r in collect.records if r.name == "app.recursion"]) == 200
        stats = handler.stats()
        assert (stats["delivered"], stats["failed"], stats["dropped_total"]) == (200, 0, 0)
        err = capsys.readouterr().err
        assert "RecursionError" not in err, err
        assert "Logging error" not in err, err
        assert "worker error" not in err, err

    def test_logging_from_inside_the_formatter(
        self, make_handler: Make, kafka_broker: Any, kafka_topic: str, capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A formatter that logs to an application logger on the worker thread causes no loop."""

        class ChattyFormatter(logkafka.JsonFormatter):
            def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:  # type: ignore[override]
                logging.getLogger("app.formatter").warning("formatting %s", log_data.get("seq"))
                return super().process_log_record(log_data)  # type: ignore[no-any-return]

        root = logging.getLogger()
        root.setLevel(logging.DEBUG)
        collect = ListHandler()
        handler = make_handler()
        handler.setFormatter(ChattyFormatter())
        root.addHandler(handler)
        root.addHandler(collect)
        app = logging.getLogger("app.recursion")
        for seq in range(200):
            app.info("app record %d", seq, extra={"seq": seq})
        assert handler.flush(timeout=30) is True

        msgs = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=200)
        assert len(msgs) == 200
        assert {m.data["logger"] for m in msgs} == {"app.recursion"}
        chatter = [r for r in collect.records if r.name == "app.formatter"]
        assert len(chatter) == 200
        assert {r.threadName for r in chatter} == {f"logkafka-{kafka_topic}"}
        err = capsys.readouterr().err
        assert "RecursionError" not in err, err
        assert "Logging error" not in err, err


# -- 7. context captured on the caller's thread --------------------------------------------------------

class TestContextCapturedAtCall:
    @pytest.mark.parametrize("gated", [False, True], ids=["live", "formatted-later"])
    def test_threads_and_tasks_keep_their_own_context(
        self, make_handler: Make, app_logger: logging.Logger, kafka_broker: Any, kafka_topic: str, gated: bool,
    ) -> None:
        """Threads and asyncio tasks logging at once each ship their own correlation id, trace and span."""
        tracer = TracerProvider().get_tracer("t")
        gate = threading.Event()
        handler = make_handler(key=None)
        if gated:
            handler.setFormatter(GatedFormatter(gate))
        else:
            gate.set()
        app_logger.addHandler(handler)
        expected: dict[tuple[str, bool], tuple[str, str]] = {}  # (unit, child span) -> (trace_id, span_id)
        per_unit = 60

        def ids(span: Any) -> tuple[str, str]:
            ctx = span.get_span_context()
            return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"

        def inside(name: str, j: int, child: bool) -> None:
            app_logger.info("inside %s", name, extra={"who": name, "inside": True, "child": child, "seq": j})

        def outside(name: str, j: int) -> None:
            app_logger.info("outside %s", name, extra={"who": name, "inside": False, "seq": j})

        start = threading.Event()

        def in_thread(name: str) -> None:
            start.wait(10)
            outside(name, 0)
            with logkafka.bound(correlation_id=name), tracer.start_as_current_span(name) as span:
                expected[(name, False)] = ids(span)
                for j in range(1, per_unit // 2):
                    inside(name, j, False)
                    if j % 5 == 0:
                        time.sleep(0.001)
                with tracer.start_as_current_span(f"{name}-child") as child:
                    expected[(name, True)] = ids(child)
                    for j in range(per_unit // 2, per_unit):
                        inside(name, j, True)
                        if j % 5 == 0:
                            time.sleep(0.001)
            outside(name, per_unit)

        async def in_task(name: str) -> None:
            outside(name, 0)
            async with logkafka.bound(correlation_id=name):
                with tracer.start_as_current_span(name) as span:
                    expected[(name, False)] = ids(span)
                    for j in range(1, per_unit // 2):
                        inside(name, j, False)
                        await asyncio.sleep(0)
                    with tracer.start_as_current_span(f"{name}-child") as child:
                        expected[(name, True)] = ids(child)
                        for j in range(per_unit // 2, per_unit):
                            inside(name, j, True)
                            await asyncio.sleep(0)
            outside(name, per_unit)

        async def all_tasks() -> None:
            await asyncio.gather(*(in_task(f"task-{i}") for i in range(4)))

        threads = [threading.Thread(target=in_thread, args=(f"thread-{i}",)) for i in range(4)]
        try:
            for th in threads:
                th.start()
            start.set()
            asyncio.run(all_tasks())
            for th in threads:
                th.join(30)
            assert not any(th.is_alive() for th in threads)
            if gated:
                assert handler.stats()["delivered"] == 0  # nothing formatted while the contexts were live
        finally:
            gate.set()
        assert handler.flush(timeout=30) is True

        total = 8 * (per_unit + 1)
        msgs = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=total)
        assert len(msgs) == total
        assert len({v[0] for v in expected.values()}) == 8  # one trace per unit
        assert len(set(expected.values())) == 16
        seen_units = Counter()
        for m in msgs:
            d = m.data
            who = d["who"]
            seen_units[who] += 1
            if d["inside"]:
                assert d["correlation_id"] == who
                assert (d["trace_id"], d["span_id"]) == expected[(who, d["child"])], d
            else:
                assert "correlation_id" not in d, d
                assert "trace_id" not in d and "span_id" not in d, d
        assert seen_units == {f"{kind}-{i}": per_unit + 1 for kind in ("thread", "task") for i in range(4)}

    def test_later_mutation_does_not_change_the_record(
        self, make_handler: Make, app_logger: logging.Logger, kafka_broker: Any, kafka_topic: str,
    ) -> None:
        """Mutating extra values, args, bound values or the exception after the call changes nothing shipped."""
        gate = threading.Event()
        handler = make_handler()
        handler.setFormatter(GatedFormatter(gate))
        app_logger.addHandler(handler)
        try:
            items = [1, 2, {"sku": "A-1"}]
            meta = {"attempt": 1, "tags": ["x"]}
            args_list = ["first"]
            cart = ["apple"]
            logkafka.bind(cart=cart, user="u-1")
            app_logger.info("items %s", args_list, extra={"items": items, "meta": meta, "seq": 0})
            items.append(3)
            items[2]["sku"] = "CHANGED"  # type: ignore[index]
            meta["attempt"] = 2
            meta["tags"].append("y")  # type: ignore[attr-defined]
            args_list[0] = "CHANGED"
            cart.append("pear")
            logkafka.bind(user="u-2")
            try:
                raise ValueError("original text")
            except ValueError as exc:
                app_logger.exception("failed", extra={"seq": 1})
                exc.args = ("CHANGED",)
            items.clear()
            assert handler.stats()["delivered"] == 0
        finally:
            gate.set()
        assert handler.flush(timeout=30) is True

        msgs = sorted(read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=2),
                      key=lambda m: m.data["seq"])
        assert len(msgs) == 2
        first, second = (m.data for m in msgs)
        assert first["items"] == [1, 2, {"sku": "A-1"}]
        assert first["meta"] == {"attempt": 1, "tags": ["x"]}
        assert first["message"] == "items ['first']"
        assert first["cart"] == ["apple"]
        assert first["user"] == "u-1"
        assert second["user"] == "u-2"
        assert second["cart"] == ["apple"]
        assert second["error"]["message"] == "original text"
        assert second["error"]["stack_trace"].endswith("ValueError: original text")
