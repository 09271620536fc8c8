"""Shared fixtures: logging state restored after every test, handlers that are always closed.

Also the ``broker`` marker, applied here to every test that needs a broker or starts a process or a
server (``pytest -m "not broker"`` is the fast loop), and the number of workers ``-n auto`` starts.
"""

from __future__ import annotations

import dis
import inspect
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import logkafka
from logkafka import testing

TESTS = Path(__file__).resolve().parent

# Fixtures that start or need a broker; any fixture depending on one of them counts too (fixture closure).
BROKER_FIXTURES = frozenset({"kafka_broker", "kafka_topic", "make_handler", "proxied_broker", "kafka_log_handler",
                             "own_broker"})
# What a test, its fixtures or the test-module helpers they call can name to start a process or a server.
_SPAWNING_MODULES = frozenset({"subprocess", "multiprocessing", "pty", "uvicorn", "gunicorn", "socketserver",
                               "http.server", "wsgiref.simple_server", "werkzeug.serving"})
_SPAWNING_OS = frozenset({"fork", "forkpty", "posix_spawn", "posix_spawnp", "spawnv", "spawnl", "system", "popen"})
_SPAWNING_OBJECTS = (testing.LocalBroker, testing.ProxiedBroker, testing.TcpProxy, subprocess.Popen,
                     subprocess.run, subprocess.call, subprocess.check_call, subprocess.check_output)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: two workers per CPU, at least 4, at most 8 (most tests wait on a broker, not a CPU).

    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` overrides it; ``-n N`` and ``-n 0`` as usual.
    """
    override = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "").strip()
    if override.isdigit():
        return int(override)
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return min(8, max(4, 2 * cpus))


def pytest_configure(config: pytest.Config) -> None:
    """Put this interpreter's scripts directory first on PATH, so that the console script the tests run
    (``logkafka``) is the one installed with it, also when its virtualenv is not activated."""
    scripts = sysconfig.get_path("scripts")
    script = os.path.join(scripts, "logkafka")
    if os.path.isfile(script) and shutil.which("logkafka") != script:
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")


def _is_ours(obj: object) -> bool:
    """A function or class defined in the tests directory (helpers are searched, libraries are not)."""
    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    file = getattr(module, "__file__", None)
    return file is not None and Path(file).resolve().is_relative_to(TESTS)


def _names(code: types.CodeType) -> tuple[set[str], set[str], set[tuple[str, str]]]:
    """The global names, attribute names and ``from module import name`` pairs ``code`` (and the functions
    nested in it) uses; ``import module`` counts as the global name ``module``."""
    globals_, attrs, imported = set(), set(), set()
    module = ""
    for ins in dis.get_instructions(code):
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
            globals_.add(str(ins.argval))
        elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD"):
            attrs.add(str(ins.argval))
        elif ins.opname == "IMPORT_NAME":
            module = str(ins.argval)
            globals_.add(module)
        elif ins.opname == "IMPORT_FROM":
            imported.add((module, str(ins.argval)))
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            more = _names(const)
            globals_ |= more[0]
            attrs |= more[1]
            imported |= more[2]
    return globals_, attrs, imported


def _functions(obj: object) -> list[types.FunctionType]:
    """The plain functions of ``obj``: itself, or a class's methods (static, class and properties too)."""
    if isinstance(obj, types.FunctionType):
        inner = inspect.unwrap(obj)  # a @contextmanager helper: the generator function it wraps
        return [obj, inner] if isinstance(inner, types.FunctionType) and inner is not obj else [obj]
    if not isinstance(obj, type):
        return []
    found = []
    for value in vars(obj).values():
        value = getattr(value, "__func__", None) or getattr(value, "fget", None) or value
        if isinstance(value, types.FunctionType):
            found.append(value)
    return found


def _spawning(obj: object) -> bool:
    return (isinstance(obj, types.ModuleType) and obj.__name__ in _SPAWNING_MODULES) or any(
        obj is spawning for spawning in _SPAWNING_OBJECTS)


def _spawns(func: types.FunctionType, cls: type | None, seen: set[object]) -> bool:
    """Whether ``func``, or a helper of the tests directory it names, starts a process or a server."""
    if func in seen:
        return False
    seen.add(func)
    globals_, attrs, imported = _names(func.__code__)
    if globals_ & _SPAWNING_MODULES or attrs & {"LocalBroker", "ProxiedBroker", "TcpProxy"}:
        return True
    if func.__globals__.get("os") is os and "os" in globals_ and attrs & _SPAWNING_OS:
        return True
    found: list[tuple[object, type | None]] = []
    for name in globals_:
        obj = func.__globals__.get(name)
        found.append((obj, obj if isinstance(obj, type) else cls))
    for module, name in imported:
        obj = getattr(sys.modules.get(module), name, None)
        found.append((obj, obj if isinstance(obj, type) else cls))
    if cls is not None:  # self.helper(), cls.helper()
        found += [(getattr(cls, name, None), cls) for name in attrs]
    for obj, owner in found:
        if _spawning(obj):
            return True
        if _is_ours(obj) and any(_spawns(f, owner, seen) for f in _functions(obj)):
            return True
    return False


def _needs_broker(item: pytest.Item) -> bool:
    """A broker fixture in the test's fixture closure, or a process or server started by it or its fixtures."""
    if BROKER_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    seen: set[object] = set()
    cls = getattr(item, "cls", None)
    func = getattr(item, "function", None)
    if isinstance(func, types.FunctionType) and _spawns(func, cls, seen):
        return True
    fixtureinfo = getattr(item, "_fixtureinfo", None)
    for name, defs in getattr(fixtureinfo, "name2fixturedefs", {}).items():
        if name == _GUARD:
            continue
        for fixturedef in defs:
            fixture = getattr(fixturedef, "func", None)
            fixture = getattr(fixture, "__func__", fixture)  # a fixture defined as a method of the test class
            if isinstance(fixture, types.FunctionType) and _is_ours(fixture) and _spawns(fixture, cls, seen):
                return True
    return False


_GUARD = "_unmarked_tests_start_no_process"  # the fixture below: it names subprocess, and starts nothing


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``broker`` every test that uses a broker or starts a process or a server (see README, Development)."""
    for item in items:
        if item.get_closest_marker("broker") is None and _needs_broker(item):
            item.add_marker(pytest.mark.broker)


@pytest.fixture(autouse=True)
def _unmarked_tests_start_no_process(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A test that starts a process without the ``broker`` marker fails at teardown, so that
    ``-m "not broker"`` stays fast: the analysis above missed it, and it needs ``@pytest.mark.broker``."""
    if request.node.get_closest_marker("broker") is not None:
        yield
        return
    started: list[str] = []
    execute_child = subprocess.Popen._execute_child  # type: ignore[attr-defined]

    def record(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> Any:
        started.append(repr(args)[:300])
        return execute_child(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "_execute_child", record)
    yield
    monkeypatch.setattr(subprocess.Popen, "_execute_child", execute_child)
    if started:
        pytest.fail(f"{request.node.nodeid} started a process ({started[0]}) but is not marked broker: "
                    "mark it @pytest.mark.broker (tests/conftest.py could not tell)", pytrace=False)


def _attached_handlers() -> set[logging.Handler]:
    """Every handler attached to the root logger or to any named logger right now."""
    found = set(logging.getLogger().handlers)
    for lg in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(lg, logging.Logger):
            found.update(lg.handlers)
    return found


@pytest.fixture(autouse=True)
def _own_spool_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test spools into its own directory (handlers made by dictConfig and subprocesses too)."""
    monkeypatch.setenv("LOGKAFKA_SPOOL_DIR", str(tmp_path / "spool"))


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Restore root handlers and level, every logger's settings and the bound context."""
    root = logging.getLogger()
    saved_root = (root.level, root.handlers[:])
    saved = {
        name: (lg.level, lg.propagate, lg.disabled, lg.handlers[:])
        for name, lg in list(logging.Logger.manager.loggerDict.items())
        if isinstance(lg, logging.Logger)
    }
    before = _attached_handlers()
    raise_exceptions = logging.raiseExceptions
    logkafka.clear_context()
    yield
    added = _attached_handlers() - before
    root.setLevel(saved_root[0])
    root.handlers[:] = saved_root[1]
    for name, lg in list(logging.Logger.manager.loggerDict.items()):
        if not isinstance(lg, logging.Logger):
            continue
        if name in saved:
            lg.level, lg.propagate, lg.disabled, handlers = saved[name]
            lg.handlers[:] = handlers
        else:
            lg.handlers[:] = []
            lg.setLevel(logging.NOTSET)
            lg.propagate, lg.disabled = True, False
    logging.Logger.manager._clear_cache()  # type: ignore[attr-defined]
    for handler in added:  # e.g. made by dictConfig in the test
        handler.close()
    logging.raiseExceptions = raise_exceptions
    logkafka.clear_context()


@pytest.fixture
def make_handler(kafka_broker: Any, kafka_topic: str) -> Iterator[Callable[..., logkafka.KafkaLogHandler]]:
    """A factory of KafkaLogHandlers on the test's topic; each is detached and closed afterwards."""
    made: list[logkafka.KafkaLogHandler] = []

    def make(**kwargs: Any) -> logkafka.KafkaLogHandler:
        kwargs.setdefault("bootstrap_servers", kafka_broker.bootstrap_servers)
        kwargs.setdefault("topic", kafka_topic)
        handler = logkafka.KafkaLogHandler(**kwargs)
        made.append(handler)
        return handler

    yield make
    for handler in made:
        for lg in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
            if isinstance(lg, logging.Logger) and handler in lg.handlers:
                lg.removeHandler(handler)
        handler.close()


@pytest.fixture
def made() -> Iterator[list[logkafka.KafkaLogHandler]]:
    """Handlers a test makes itself (appended to this list), closed afterwards."""
    handlers: list[logkafka.KafkaLogHandler] = []
    yield handlers
    for handler in handlers:
        handler.close()


@pytest.fixture
def app_logger() -> logging.Logger:
    """A logger of its own for the test, at DEBUG, not propagating to the root logger."""
    lg = logging.getLogger(f"app.{uuid.uuid4().hex[:8]}")
    lg.setLevel(logging.DEBUG)
    lg.propagate = False
    return lg


@pytest.fixture
def own_broker() -> Iterator[testing.LocalBroker]:
    """A broker of the test's own, which it may freeze, kill or restart without disturbing other tests."""
    with testing.LocalBroker() as broker:
        yield broker
