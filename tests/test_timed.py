"""logkafka.timed: started / completed / failed records with the bound context and the duration."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _support import ListHandler

import logkafka
from logkafka.testing import read_topic


@pytest.fixture
def captured() -> Iterator[ListHandler]:
    """A ListHandler on the root logger at DEBUG."""
    root = logging.getLogger()
    h = ListHandler()
    h.addFilter(lambda r: r.name != "asyncio")  # its DEBUG "Using selector" line
    root.addHandler(h)
    root.setLevel(logging.DEBUG)
    yield h
    root.removeHandler(h)


def outcomes(h: ListHandler) -> list[tuple[str, str, int]]:
    return [(r.getMessage(), r.__dict__.get("code", ""), r.levelno) for r in h.records]


class TestContextManager:
    def test_started_and_completed(self, captured: ListHandler) -> None:
        """A block logs <name>_started, then <name>_completed with duration_ms, both with the context."""
        with logkafka.timed("import_batch", batch_id="b-7") as t:
            time.sleep(0.02)
            logging.getLogger("app").info("inside")
        assert outcomes(captured) == [("import_batch_started", "IMPORT_BATCH_STARTED", logging.INFO),
                                      ("inside", "", logging.INFO),
                                      ("import_batch_completed", "IMPORT_BATCH_COMPLETED", logging.INFO)]
        started, inside, completed = captured.records
        assert (started.getMessage(), started.__dict__["code"]) == ("import_batch_started", "IMPORT_BATCH_STARTED")
        assert inside.getMessage() == "inside"
        assert (completed.getMessage(), completed.__dict__["code"]) == ("import_batch_completed",
                                                                        "IMPORT_BATCH_COMPLETED")
        assert "duration_ms" not in started.__dict__
        assert completed.__dict__["duration_ms"] >= 20.0
        assert t.duration_ms == completed.__dict__["duration_ms"]
        assert logkafka.get_context() == {}

    def test_context_is_bound_inside_and_restored_after(self, captured: ListHandler) -> None:
        """The context is bound inside the block only; what was bound before is back after it."""
        logkafka.bind(tenant_id="acme")
        seen: dict[str, Any] = {}
        with logkafka.timed("step", batch_id="b-1"):
            seen = logkafka.get_context()
        assert seen == {"tenant_id": "acme", "batch_id": "b-1"}
        assert logkafka.get_context() == {"tenant_id": "acme"}

    def test_failed_logs_the_stack_and_reraises(self, captured: ListHandler) -> None:
        """An exception logs <name>_failed at ERROR with exc_info and the duration, and goes on."""
        with pytest.raises(KeyError, match="coupon"), logkafka.timed("apply_coupon"):
            time.sleep(0.005)
            {}["coupon"]
        _started, failed = captured.records
        assert (failed.getMessage(), failed.__dict__["code"], failed.levelno) == (
            "apply_coupon_failed", "APPLY_COUPON_FAILED", logging.ERROR)
        assert failed.exc_info is not None and failed.exc_info[0] is KeyError
        assert failed.__dict__["duration_ms"] >= 5  # the block's time, up to the raise
        assert logkafka.get_context() == {}

    def test_cancelled_is_not_a_failure(self, captured: ListHandler) -> None:
        """KeyboardInterrupt ends the block as <name>_cancelled at WARNING, without a stack trace."""
        with pytest.raises(KeyboardInterrupt), logkafka.timed("long_job"):
            raise KeyboardInterrupt
        cancelled = captured.records[-1]
        assert (cancelled.getMessage(), cancelled.levelno, cancelled.exc_info) == (
            "long_job_cancelled", logging.WARNING, None)

    def test_one_instance_in_two_tasks(self, captured: ListHandler) -> None:
        """A shared timed instance open in two tasks at once: each keeps its own context and duration."""
        step = logkafka.timed("step")

        bounds: dict[int, tuple[float, float]] = {}  # job -> (ms measured inside its block, ms around it)

        async def job(n: int, first_out: asyncio.Event, hold: asyncio.Event) -> dict[str, Any]:
            logkafka.bind(job=n)
            if n == 2:
                await asyncio.sleep(0.03)  # task 2 enters 30 ms after task 1
            before = time.perf_counter()
            async with step:
                start = time.perf_counter()
                if n == 1:
                    await hold.wait()
                else:
                    hold.set()
                    await first_out.wait()
                    await asyncio.sleep(0.05)  # task 2's block is the longer one
                end = time.perf_counter()
            bounds[n] = ((end - start) * 1000, (time.perf_counter() - before) * 1000)
            if n == 1:
                first_out.set()
            return logkafka.get_context()

        async def main() -> list[dict[str, Any]]:
            first_out, hold = asyncio.Event(), asyncio.Event()
            return await asyncio.gather(job(1, first_out, hold), job(2, first_out, hold))

        assert asyncio.run(main()) == [{"job": 1}, {"job": 2}]
        completed = [r.__dict__["duration_ms"] for r in captured.records if r.getMessage() == "step_completed"]
        assert len(completed) == 2
        done = dict(zip((1, 2), completed, strict=True))  # task 1's block ends first: task 2 waits for it
        # Each block's duration lies between what was measured inside it and around it: one task's start
        # taken for the other's would put task 1 30 ms below its inside (task 2 began later) or task 2
        # above its outside (task 1 began earlier), on any machine load.
        for n, (inside, around) in bounds.items():
            assert inside - 1 <= done[n] <= around + 1, (n, done[n], inside, around)
        assert done[1] >= 30.0 and done[2] >= 50.0

    def test_a_raising_filter_does_not_break_the_block(self, captured: ListHandler,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
        """A logging filter that raises is reported on stderr; the block runs and the context is restored."""
        def broken(record: logging.LogRecord) -> bool:
            raise RuntimeError("filter bug")

        lg = logging.getLogger("app.broken_filter")
        lg.addFilter(broken)
        try:
            ran = False
            with logkafka.timed("guarded", logger=lg, job="j"):
                ran = logkafka.get_context() == {"job": "j"}
        finally:
            lg.removeFilter(broken)
        assert ran and logkafka.get_context() == {}
        assert "filter bug" in capsys.readouterr().err

    def test_async_with(self, captured: ListHandler) -> None:
        """async with binds the context for the awaited block too."""
        async def main() -> dict[str, Any]:
            async with logkafka.timed("fetch", url="/x"):
                await asyncio.sleep(0.01)
                return logkafka.get_context()

        assert asyncio.run(main()) == {"url": "/x"}
        assert [r.getMessage() for r in captured.records] == ["fetch_started", "fetch_completed"]

    def test_records_point_at_the_callers_line(self, captured: ListHandler) -> None:
        """The records' file, function and line are those of the with statement, not logkafka's."""
        line = sys._getframe().f_lineno + 1
        with logkafka.timed("here"):
            pass
        for r in captured.records:
            assert (r.pathname, r.funcName, r.lineno) == (__file__, "test_records_point_at_the_callers_line", line)

    def test_logger_defaults_to_the_callers_module(self, captured: ListHandler) -> None:
        """Without logger=, the records go to the logger named after the module using timed."""
        with logkafka.timed("x"):
            pass
        with logkafka.timed("y", logger="jobs.nightly"):
            pass
        assert [r.name for r in captured.records] == [__name__, __name__, "jobs.nightly", "jobs.nightly"]

    def test_level(self, captured: ListHandler) -> None:
        """level= sets the level of started and completed; a disabled level logs nothing."""
        with logkafka.timed("quiet", level="DEBUG"):
            pass
        assert [r.levelno for r in captured.records] == [logging.DEBUG, logging.DEBUG]
        logging.getLogger().setLevel(logging.INFO)
        with logkafka.timed("quieter", level=logging.DEBUG):
            pass
        assert len(captured.records) == 2

    @pytest.mark.parametrize(("kwargs", "name"), [
        ({"name": ""}, "name"),
        ({"name": "has space"}, "name"),
        ({"name": 7}, "name"),
        ({"name": "ok", "level": "LOUD"}, "level"),
        ({"name": "ok", "logger": 42}, "logger"),
    ])
    def test_bad_settings_name_themselves(self, kwargs: dict[str, Any], name: str) -> None:
        """A bad argument is a ValueError naming it."""
        with pytest.raises(ValueError, match=f"^{name}:"):
            logkafka.timed(**kwargs)


class TestDecorator:
    def test_each_call_is_timed(self, captured: ListHandler) -> None:
        """A decorated function logs started/completed on every call, with the context bound inside."""
        @logkafka.timed("charge", provider="acme-pay")
        def charge(amount: int) -> dict[str, Any]:
            return {**logkafka.get_context(), "amount": amount}

        assert charge(5) == {"provider": "acme-pay", "amount": 5}
        assert charge(6)["amount"] == 6
        assert [r.getMessage() for r in captured.records] == ["charge_started", "charge_completed"] * 2
        assert charge.__name__ == "charge"

    def test_failed_call_reraises(self, captured: ListHandler) -> None:
        """A raising call logs <name>_failed with the stack trace, and the caller sees the exception."""
        @logkafka.timed("divide")
        def divide(a: int, b: int) -> float:
            return a / b

        with pytest.raises(ZeroDivisionError):
            divide(1, 0)
        failed = captured.records[-1]
        assert failed.getMessage() == "divide_failed" and failed.exc_info is not None
        assert failed.exc_info[0] is ZeroDivisionError

    def test_records_point_at_the_call(self, captured: ListHandler) -> None:
        """The records of a decorated call point at the line that called it."""
        @logkafka.timed("work")
        def work() -> None:
            pass

        line = sys._getframe().f_lineno + 1
        work()
        assert [(r.funcName, r.lineno) for r in captured.records] == [("test_records_point_at_the_call", line)] * 2

    def test_coroutine_function(self, captured: ListHandler) -> None:
        """An async function is timed over its await, and concurrent calls keep their own context."""
        @logkafka.timed("fetch")
        async def fetch(n: int) -> Any:
            logkafka.bind(n=n)
            await asyncio.sleep(0.01 * (3 - n))
            logging.getLogger("app").info("fetched")
            return logkafka.get_context()

        async def main() -> list[Any]:
            return await asyncio.gather(*(fetch(n) for n in range(3)))

        assert asyncio.run(main()) == [{"n": 0}, {"n": 1}, {"n": 2}]
        fetched = [r for r in captured.records if r.getMessage() == "fetched"]
        completed = [r for r in captured.records if r.getMessage() == "fetch_completed"]
        assert len(fetched) == 3 and len(completed) == 3
        # each call's own duration: at least its own sleep (10, 20, 30 ms), not the gather's
        durations = sorted(r.__dict__["duration_ms"] for r in completed)
        assert all(d >= floor for d, floor in zip(durations, (10, 20, 30), strict=True)), durations
        assert durations[0] < 30, durations

    def test_generator_functions_are_refused(self) -> None:
        """Decorating a generator function is a TypeError: timing its creation would be a lie."""
        def gen() -> Iterator[int]:
            yield 1

        with pytest.raises(TypeError, match="generator"):
            logkafka.timed("gen")(gen)


class TestInKafka:
    def test_records_in_the_topic(self, make_handler: Callable[..., logkafka.KafkaLogHandler],
                                  kafka_broker: Any, kafka_topic: str, app_logger: logging.Logger) -> None:
        """The three records reach Kafka with the code, the bound context, duration_ms and the error."""
        handler = make_handler()
        app_logger.addHandler(handler)
        logkafka.bind(correlation_id="req-9")
        with logkafka.timed("sync_accounts", logger=app_logger, account_count=3):
            app_logger.info("syncing")
        with pytest.raises(RuntimeError), logkafka.timed("sync_invoices", logger=app_logger):
            raise RuntimeError("ledger locked")
        assert handler.flush(30)
        got = {m.data["message"]: m.data for m in read_topic(kafka_broker.bootstrap_servers, kafka_topic,
                                                            expected=5)}
        assert set(got) == {"sync_accounts_started", "syncing", "sync_accounts_completed",
                            "sync_invoices_started", "sync_invoices_failed"}
        for name in ("sync_accounts_started", "syncing", "sync_accounts_completed"):
            assert got[name]["account_count"] == 3 and got[name]["correlation_id"] == "req-9"
        assert got["sync_accounts_completed"]["code"] == "SYNC_ACCOUNTS_COMPLETED"
        assert isinstance(got["sync_accounts_completed"]["duration_ms"], float)
        failed = got["sync_invoices_failed"]
        assert failed["level"] == "ERROR" and "account_count" not in failed
        assert failed["error"]["type"] == "RuntimeError" and "ledger locked" in failed["error"]["message"]
        assert "Traceback" in failed["error"]["stack_trace"]
