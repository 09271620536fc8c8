"""Logger levels from a file at run time (LOGKAFKA_LEVELS_FILE / watch_levels): applied, set back, said.

Pure logic against real files and a real fork; the fleet case (gunicorn workers, Celery prefork
children) runs in tests/test_examples.py.
"""

from __future__ import annotations

import logging
import logging.config
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import logkafka


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    """Two fresh logger names, their levels reset afterwards."""
    base = f"lvl{uuid.uuid4().hex[:8]}"
    pair = (f"{base}.api", f"{base}.db")
    yield pair
    for name in pair:
        logging.getLogger(name).setLevel(logging.NOTSET)


@pytest.fixture
def watch() -> Iterator[Callable[..., logkafka.LevelWatcher]]:
    made: list[logkafka.LevelWatcher] = []

    def start(path: Path, interval: float = 0.05) -> logkafka.LevelWatcher:
        watcher = logkafka.watch_levels(path, interval=interval)
        assert watcher is not None
        made.append(watcher)
        return watcher

    yield start
    for watcher in made:
        watcher.stop()


def test_applied_now_changed_later_and_restored_when_removed(tmp_path: Path, names: tuple[str, str],
                                                             watch: Callable[..., logkafka.LevelWatcher],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    api, db = names
    logging.getLogger(db).setLevel(logging.ERROR)
    path = tmp_path / "levels"
    path.write_text(f"# levels for the fleet\n{api} = DEBUG\n{db}: warning  # quieter\n")
    watch(path)
    assert logging.getLogger(api).level == logging.DEBUG  # at once
    assert logging.getLogger(db).level == logging.WARNING
    path.write_text(f"{api} = ERROR\n")
    assert wait_for(lambda: logging.getLogger(api).level == logging.ERROR)
    assert wait_for(lambda: logging.getLogger(db).level == logging.ERROR)  # as before the file named it
    err = capsys.readouterr().err
    assert f"{api}=DEBUG" in err and f"{api}=ERROR" in err and f"{db}=ERROR (as before the file)" in err


def test_json_and_root(tmp_path: Path, names: tuple[str, str], watch: Callable[..., logkafka.LevelWatcher]) -> None:
    api, _ = names
    root = logging.getLogger()
    before = root.level
    path = tmp_path / "levels.json"
    path.write_text(f'{{"root": "ERROR", "{api}": 15}}')
    try:
        watcher = watch(path)
        assert (root.level, logging.getLogger(api).level) == (logging.ERROR, 15)
        path.write_text("{}")
        assert wait_for(lambda: root.level == before)
        assert watcher.applied == {}
    finally:
        root.setLevel(before)


def test_the_file_wins_over_a_later_setlevel(tmp_path: Path, names: tuple[str, str],
                                             watch: Callable[..., logkafka.LevelWatcher]) -> None:
    """dictConfig run after the watch began (it configures loggers after it builds the handlers) sets a
    named logger's level: the file sets it back, and that level is the one restored afterwards."""
    api, _ = names
    path = tmp_path / "levels"
    path.write_text(f"{api}=DEBUG\n")
    watch(path)
    logging.config.dictConfig({"version": 1, "incremental": True, "loggers": {api: {"level": "INFO"}}})
    assert wait_for(lambda: logging.getLogger(api).level == logging.DEBUG)
    path.write_text("\n")
    assert wait_for(lambda: logging.getLogger(api).level == logging.INFO)


def test_bad_lines_are_said_and_skipped(tmp_path: Path, names: tuple[str, str],
                                        watch: Callable[..., logkafka.LevelWatcher],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    api, db = names
    path = tmp_path / "levels"
    path.write_text(f"{api} = LOUD\njust a line\n{db} = INFO\n")
    watch(path)
    assert logging.getLogger(db).level == logging.INFO
    assert logging.getLogger(api).level == logging.NOTSET
    err = capsys.readouterr().err
    assert f"line 1: unknown level 'LOUD' for '{api}'" in err
    assert "line 2: expected 'logger = LEVEL', got 'just a line' (skipped)" in err


def test_a_missing_file_is_said_and_levels_stay(tmp_path: Path, names: tuple[str, str],
                                                watch: Callable[..., logkafka.LevelWatcher],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    api, _ = names
    path = tmp_path / "levels"
    path.write_text(f"{api}=DEBUG\n")
    watch(path)
    path.unlink()
    assert wait_for(lambda: "cannot read it" in capsys.readouterr().err)
    assert logging.getLogger(api).level == logging.DEBUG
    path.write_text(f"{api}=CRITICAL\n")
    assert wait_for(lambda: logging.getLogger(api).level == logging.CRITICAL)


def test_a_forked_child_keeps_watching(tmp_path: Path, names: tuple[str, str],
                                       watch: Callable[..., logkafka.LevelWatcher]) -> None:
    """A gunicorn worker or Celery child is a fork: it sees a change made after it was forked."""
    api, _ = names
    path = tmp_path / "levels"
    path.write_text(f"{api}=INFO\n")
    watch(path)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the level it sees once the file changed
        os.close(read)
        deadline = time.monotonic() + 20
        while logging.getLogger(api).level != logging.DEBUG and time.monotonic() < deadline:
            time.sleep(0.02)
        os.write(write, str(logging.getLogger(api).level).encode())
        os._exit(0)
    os.close(write)
    time.sleep(0.2)
    path.write_text(f"{api}=DEBUG\n")
    seen = os.read(read, 16)
    os.close(read)
    os.waitpid(pid, 0)
    assert int(seen) == logging.DEBUG


def test_bad_interval_names_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"^interval: expected a positive number"):
        logkafka.LevelWatcher(tmp_path / "x", interval=0)
    monkeypatch.setenv("LOGKAFKA_LEVELS_INTERVAL", "soon")
    with pytest.raises(ValueError, match=r"^LOGKAFKA_LEVELS_INTERVAL: expected a number of seconds"):
        logkafka.watch_levels(tmp_path / "y")


@pytest.mark.parametrize("enabled", [True, False])
def test_dict_config_does_not_disable_the_loggers_the_file_names(tmp_path: Path, enabled: bool) -> None:
    """A handler made by dictConfig (disable_existing_loggers left True) starts the watch from
    LOGKAFKA_LEVELS_FILE: the file's loggers get their levels after dictConfig, and are not disabled by it.
    A disabled handler (enabled=False) starts it too: the levels are the process's, not Kafka's."""
    import subprocess
    import sys
    import textwrap

    levels = tmp_path / "levels"
    levels.write_text("checkout.orders = DEBUG\n")
    repo = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "LOGKAFKA_LEVELS_FILE": str(levels), "LOGKAFKA_LEVELS_INTERVAL": "0.05",
           "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = textwrap.dedent("""
        import logging, logging.config, time
        logging.config.dictConfig({"version": 1, "handlers": {"kafka": {
            "class": "logkafka.KafkaLogHandler", "bootstrap_servers": "127.0.0.1:1", "spool_dir": False,
            "enabled": ENABLED}},
            "root": {"level": "INFO", "handlers": ["kafka"]}})
        log = logging.getLogger("checkout.orders")
        deadline = time.monotonic() + 10
        while log.level != logging.DEBUG and time.monotonic() < deadline:
            time.sleep(0.02)
        print(log.level, log.disabled, log.isEnabledFor(logging.DEBUG))
    """)
    run = subprocess.run([sys.executable, "-c", code.replace("ENABLED", str(enabled))], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["10", "False", "True"], (run.stdout, run.stderr)
