"""The bound context: bind, unbind, bound, get_context, clear_context."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import logkafka
from logkafka import bind, bound, clear_context, get_context, unbind


@pytest.fixture(autouse=True)
def _empty_context() -> Iterator[None]:
    """Every test starts and ends with nothing bound."""
    clear_context()
    yield
    clear_context()


class TestBind:
    def test_a_new_thread_starts_empty(self) -> None:
        """What a thread binds stays on it: a thread started after it (no with_context) sees nothing bound."""
        bind(tenant_id="acme")
        seen: list[Any] = []
        worker = threading.Thread(target=lambda: seen.append(get_context()))
        worker.start()
        worker.join()
        assert seen == [{}] and get_context() == {"tenant_id": "acme"}

    def test_bind_adds(self) -> None:
        """bind adds its keys; later binds add more."""
        bind(correlation_id="c-1")
        bind(tenant_id="acme", user_id=7)
        assert get_context() == {"correlation_id": "c-1", "tenant_id": "acme", "user_id": 7}

    def test_bind_replaces_a_key(self) -> None:
        """Binding a key again replaces its value."""
        bind(step="one", keep=True)
        bind(step="two")
        assert get_context() == {"step": "two", "keep": True}

    def test_bind_nothing(self) -> None:
        """bind() without arguments changes nothing."""
        bind(a=1)
        bind()
        assert get_context() == {"a": 1}

    def test_unbind(self) -> None:
        """unbind removes the keys named; keys not bound are ignored."""
        bind(a=1, b=2, c=3)
        unbind("a", "c", "missing")
        assert get_context() == {"b": 2}
        unbind("nothing-here")
        assert get_context() == {"b": 2}

    def test_clear_context(self) -> None:
        """clear_context removes every key."""
        bind(a=1, b=2)
        clear_context()
        assert get_context() == {}
        bind(c=3)
        assert get_context() == {"c": 3}

    def test_get_context_returns_a_copy(self) -> None:
        """Changing the dict get_context returned does not change the context."""
        bind(a=1)
        ctx = get_context()
        ctx["a"] = 2
        ctx["b"] = 3
        assert get_context() == {"a": 1}
        assert get_context() is not get_context()

    def test_values_are_snapshotted(self) -> None:
        """Changing a bound list or dict afterwards does not change the context."""
        items = [1, 2]
        user: dict[str, Any] = {"id": 7, "roles": ["admin"]}
        bind(items=items, user=user)
        items.append(3)
        user["id"] = 8
        user["roles"].append("root")
        assert get_context() == {"items": [1, 2], "user": {"id": 7, "roles": ["admin"]}}

    def test_bound_values_are_snapshotted(self) -> None:
        """Changing a list given to bound() afterwards does not change the context."""
        items = ["a"]
        with bound(items=items):
            items.append("b")
            assert get_context() == {"items": ["a"]}

    def test_any_key(self) -> None:
        """Keys the standard library refuses in extra (message, name, args) can be bound."""
        bind(message="m", name="n", args="a")
        assert get_context() == {"message": "m", "name": "n", "args": "a"}


class TestBound:
    def test_restores_on_exit(self) -> None:
        """bound() binds its values in the block and restores the previous context on exit."""
        bind(a=1)
        with bound(b=2):
            assert get_context() == {"a": 1, "b": 2}
        assert get_context() == {"a": 1}

    def test_restores_what_the_block_changed(self) -> None:
        """Keys bound, unbound or overridden inside the block are back as they were on exit."""
        bind(a=1, b=2)
        with bound(a="inner"):
            assert get_context() == {"a": "inner", "b": 2}
            bind(c=3)
            unbind("b")
            assert get_context() == {"a": "inner", "c": 3}
        assert get_context() == {"a": 1, "b": 2}

    def test_restores_when_the_block_raises(self) -> None:
        """The previous context is restored when the block raises, and the exception propagates."""
        bind(a=1)
        with pytest.raises(KeyError, match="boom"), bound(b=2):
            bind(c=3)
            raise KeyError("boom")
        assert get_context() == {"a": 1}

    def test_nested(self) -> None:
        """Nested blocks each restore the context of their entry."""
        with bound(level1=1):
            with bound(level2=2):
                with bound(level1="shadow"):
                    assert get_context() == {"level1": "shadow", "level2": 2}
                assert get_context() == {"level1": 1, "level2": 2}
            assert get_context() == {"level1": 1}
        assert get_context() == {}

    def test_same_object_nested(self) -> None:
        """One bound() object entered twice, nested, restores correctly at each exit."""
        b = bound(x=1)
        with b:
            bind(y=2)
            with b:
                assert get_context() == {"x": 1, "y": 2}
                bind(z=3)
            assert get_context() == {"x": 1, "y": 2}
        assert get_context() == {}

    def test_reusable(self) -> None:
        """One bound() object can be used for several blocks in turn."""
        b = bound(x=1)
        for _ in range(2):
            with b:
                assert get_context() == {"x": 1}
            assert get_context() == {}

    def test_returns_itself(self) -> None:
        """with bound(...) as b gives the bound object."""
        b = bound(x=1)
        with b as entered:
            assert entered is b

    def test_async_with(self) -> None:
        """bound() works as async with, restoring on exit and when the block raises."""

        async def main() -> list[dict[str, Any]]:
            seen = []
            bind(a=1)
            async with bound(b=2):
                await asyncio.sleep(0)
                seen.append(get_context())
            seen.append(get_context())
            with pytest.raises(RuntimeError):
                async with bound(c=3):
                    seen.append(get_context())
                    raise RuntimeError
            seen.append(get_context())
            return seen

        assert asyncio.run(main()) == [{"a": 1, "b": 2}, {"a": 1}, {"a": 1, "c": 3}, {"a": 1}]


class TestIsolation:
    def test_asyncio_tasks(self) -> None:
        """Context bound in one asyncio task never shows in another running at the same time."""

        async def worker(n: int) -> list[dict[str, Any]]:
            seen = []
            bind(task=n)
            await asyncio.sleep(0.01)
            seen.append(get_context())
            with bound(step=n * 10):
                await asyncio.sleep(0.01)
                seen.append(get_context())
            await asyncio.sleep(0.01)
            seen.append(get_context())
            return seen

        async def main() -> tuple[list[list[dict[str, Any]]], dict[str, Any]]:
            results = await asyncio.gather(*(asyncio.create_task(worker(n)) for n in range(5)))
            return list(results), get_context()

        results, parent = asyncio.run(main())
        for n, seen in enumerate(results):
            assert seen == [{"task": n}, {"task": n, "step": n * 10}, {"task": n}]
        assert parent == {}

    def test_task_inherits_but_does_not_leak(self) -> None:
        """A task starts with its parent's context; what it binds stays in the task."""

        async def child() -> dict[str, Any]:
            bind(child=True)
            return get_context()

        async def main() -> tuple[dict[str, Any], dict[str, Any]]:
            bind(parent=True)
            in_child = await asyncio.create_task(child())
            return in_child, get_context()

        in_child, in_parent = asyncio.run(main())
        assert in_child == {"parent": True, "child": True}
        assert in_parent == {"parent": True}

    def test_new_thread_starts_empty(self) -> None:
        """A new thread sees an empty context, and what it binds does not reach the main thread."""
        bind(main="yes")
        seen: list[dict[str, Any]] = []

        def run() -> None:
            seen.append(get_context())
            bind(thread="yes")
            seen.append(get_context())

        t = threading.Thread(target=run)
        t.start()
        t.join(10)
        assert seen == [{}, {"thread": "yes"}]
        assert get_context() == {"main": "yes"}

    def test_threads_bind_concurrently(self) -> None:
        """Threads binding different values at the same time each read their own."""
        barrier = threading.Barrier(4)
        seen: dict[int, dict[str, Any]] = {}

        def run(n: int) -> None:
            bind(n=n)
            barrier.wait(10)  # every thread has bound before any reads
            seen[n] = get_context()

        threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert seen == {n: {"n": n} for n in range(4)}


class TestSharedInstances:
    def test_one_bound_in_two_tasks(self) -> None:
        """One bound instance open in two tasks at once: each exit restores its own task's context."""
        shared = bound(step="s")

        async def job(n: int, first_out: asyncio.Event, hold: asyncio.Event) -> dict[str, Any]:
            bind(job=n)
            async with shared:
                if n == 1:
                    await hold.wait()  # task 2 enters before task 1 leaves
                else:
                    hold.set()
                    await first_out.wait()  # task 1 leaves first
            if n == 1:
                first_out.set()
            return get_context()

        async def main() -> list[dict[str, Any]]:
            first_out, hold = asyncio.Event(), asyncio.Event()
            return await asyncio.gather(job(1, first_out, hold), job(2, first_out, hold))

        assert asyncio.run(main()) == [{"job": 1}, {"job": 2}]

    def test_exit_in_an_unrelated_context_changes_nothing(self) -> None:
        """Leaving a block in a context that never entered it leaves that context alone."""
        import contextvars

        shared = bound(step="s")
        shared.__enter__()
        other = contextvars.Context()
        assert other.run(lambda: (bind(here=1), shared.__exit__(None, None, None), get_context())[2]) == {"here": 1}
        assert get_context() == {"step": "s"}
        shared.__exit__(None, None, None)
        assert get_context() == {}


class TestWithContext:
    def test_a_thread_runs_in_the_callers_context(self) -> None:
        """A thread target wrapped by with_context sees what was bound when it was wrapped."""
        seen: list[dict[str, Any]] = []
        bind(correlation_id="req-1")
        t = threading.Thread(target=logkafka.with_context(lambda: seen.append(get_context())))
        bind(correlation_id="req-2")  # after wrapping: not seen by the thread
        t.start()
        t.join()
        assert seen == [{"correlation_id": "req-1"}]
        plain: list[dict[str, Any]] = []
        t = threading.Thread(target=lambda: plain.append(get_context()))
        t.start()
        t.join()
        assert plain == [{}]  # what with_context is for: a thread does not inherit the context

    def test_executor_tasks_keep_their_own(self) -> None:
        """Each submitted call runs in a copy: what one binds reaches neither the caller nor another call."""
        from concurrent.futures import ThreadPoolExecutor

        def work(n: int) -> dict[str, Any]:
            bind(n=n)
            return get_context()

        with bound(tenant_id="acme"):
            job = logkafka.with_context(work)
            with ThreadPoolExecutor(2) as pool:
                results = list(pool.map(job, range(6)))
            assert get_context() == {"tenant_id": "acme"}
        assert results == [{"tenant_id": "acme", "n": n} for n in range(6)]
        assert job(9) == {"tenant_id": "acme", "n": 9}  # called directly, still in its copy
        assert get_context() == {}

    def test_run_in_executor_carries_the_span(self) -> None:
        """loop.run_in_executor with with_context sees the task's context and its active span."""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        tracer = TracerProvider().get_tracer("test")

        def in_thread() -> tuple[dict[str, Any], int]:
            return get_context(), trace.get_current_span().get_span_context().span_id

        async def main() -> tuple[tuple[dict[str, Any], int], int]:
            with tracer.start_as_current_span("step") as span:
                bind(job="j-1")
                got = await asyncio.get_running_loop().run_in_executor(None, logkafka.with_context(in_thread))
                return got, span.get_span_context().span_id

        (ctx, seen_span), span_id = asyncio.run(main())
        assert ctx == {"job": "j-1"} and seen_span == span_id != 0

    def test_wraps(self) -> None:
        """The wrapper keeps the callable's name and passes arguments and the result through."""
        def add(a: int, b: int = 0) -> int:
            return a + b

        wrapped = logkafka.with_context(add)
        assert wrapped.__name__ == "add" and wrapped(2, b=3) == 5
