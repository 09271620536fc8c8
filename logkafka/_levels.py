"""Logger levels read from a file while the process runs: a fleet's levels change without a restart.

The file (``LOGKAFKA_LEVELS_FILE``, or :func:`watch_levels`) names loggers and levels, one a line
(``checkout.orders = DEBUG``; ``root`` for the root logger; ``#`` starts a comment), or as one JSON
object. A thread looks at it every few seconds and applies what changed; a logger taken out of the
file gets back the level it had before. Every process watches for itself, forked children too
(gunicorn workers, Celery prefork children), so one edit (a Kubernetes ConfigMap, say) reaches all.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

from logkafka._report import report
from logkafka._values import level_of

DEFAULT_INTERVAL = 2.0
_ROOT_NAMES = ("root", "")


class LevelWatcher:
    """Applies the levels of one file now and whenever it changes (see the module's docstring)."""

    def __init__(self, path: str | os.PathLike[str], interval: float = DEFAULT_INTERVAL) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0:
            raise ValueError(f"interval: expected a positive number of seconds, got {interval!r}")
        self.path = os.fspath(path)
        self.interval = float(interval)
        self.applied: dict[str, int] = {}  #: the levels the file set, by logger name
        self._before: dict[str, int] = {}  # each such logger's level before the file set it
        self._seen: Any = None  # what the file looked like when last read (stat), or the error
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """Read the file if it changed since the last look and apply it; True when levels changed.

        The file is the authority for the loggers it names: a level set by other code meanwhile (such
        as ``dictConfig`` run after the watch began) is set back, and becomes the level the logger gets
        when the file no longer names it."""
        with self._lock:
            for name, level in self.applied.items():
                logger = _logger(name)
                if logger.level != level:
                    self._before[name] = logger.level
                    logger.setLevel(level)
            try:
                st = os.stat(self.path)
                seen: Any = (st.st_ino, st.st_mtime_ns, st.st_size)
            except OSError as exc:
                seen = f"cannot read it ({exc.strerror or exc})"
            if seen == self._seen:
                return False
            self._seen = seen
            if isinstance(seen, str):
                report("levels", f"levels file {self.path}: {seen}; levels left as they are", interval=0.0)
                return False
            try:
                with open(self.path, encoding="utf-8") as f:
                    text = f.read()
            except OSError as exc:
                report("levels", f"levels file {self.path}: cannot read it ({exc.strerror or exc}); "
                       "levels left as they are", interval=0.0)
                return False
            return self._apply(self._parse(text))

    def _parse(self, text: str) -> dict[str, int]:
        pairs: list[tuple[int, str, Any]] = []
        if text.lstrip().startswith("{"):
            try:
                data = json.loads(text)
            except ValueError as exc:
                report("levels", f"levels file {self.path}: not valid JSON ({exc}); levels left as they are",
                       interval=0.0)
                return dict(self.applied)
            if isinstance(data, dict):
                pairs = [(0, str(k), v) for k, v in data.items()]
        else:
            for n, raw in enumerate(text.splitlines(), 1):
                line = raw.split("#", 1)[0].strip()
                if not line:
                    continue
                name, sep, word = line.partition("=") if "=" in line else line.partition(":")
                if not sep:
                    report("levels", f"levels file {self.path}: line {n}: expected 'logger = LEVEL', "
                           f"got {raw.strip()!r} (skipped)", interval=0.0)
                    continue
                pairs.append((n, name.strip(), word.strip()))
        levels: dict[str, int] = {}
        for n, name, value in pairs:
            found = _level(value)
            if found is None:
                where = f"line {n}: " if n else ""
                report("levels", f"levels file {self.path}: {where}unknown level {value!r} for {name or 'root'!r} "
                       "(DEBUG, INFO, WARNING, ERROR, CRITICAL or a number; skipped)", interval=0.0)
                continue
            levels["root" if name in _ROOT_NAMES else name] = found
        return levels

    def _apply(self, levels: dict[str, int]) -> bool:
        changed = []
        for name, level in levels.items():
            logger = _logger(name)
            if name not in self._before:
                self._before[name] = logger.level
            if logger.level != level:
                logger.setLevel(level)
                changed.append(f"{name}={logging.getLevelName(level)}")
        for name in [n for n in self.applied if n not in levels]:
            before = self._before.pop(name)
            _logger(name).setLevel(before)
            changed.append(f"{name}={logging.getLevelName(before)} (as before the file)")
        self.applied = levels
        if changed:
            report("levels", f"levels from {self.path}: {', '.join(changed)}", interval=0.0)
        return bool(changed)

    def start(self, *, now: bool = True) -> LevelWatcher:
        """Apply the file (now, or first thing in the thread when ``now`` is False), then watch it from a
        daemon thread (again in a forked child). A watcher already watching is left as it is."""
        if self._thread is not None and self._thread.is_alive():
            return self
        if now:
            self.check()
        self._stop.clear()
        run = self._watch_file if now else self._check_then_watch
        self._thread = threading.Thread(target=run, name="logkafka-levels", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (levels stay as they are)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.interval + 1)
        _WATCHERS.pop(self.path, None)

    def _check_then_watch(self) -> None:
        self._check()
        self._watch_file()

    def _watch_file(self) -> None:
        while not self._stop.wait(self.interval):
            self._check()

    def _check(self) -> None:
        try:
            self.check()
        except Exception as exc:  # never let the watch die silently
            report("levels", f"levels file {self.path}: {exc}", interval=60.0)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        stopped = self._stop.is_set()
        self._stop = threading.Event()
        if self._thread is not None and not stopped:
            self._thread = threading.Thread(target=self._watch_file, name="logkafka-levels", daemon=True)
            self._thread.start()


def _level(value: Any) -> int | None:
    """``level_of(value)``, or None for what is no level (a JSON true is not level 1)."""
    if isinstance(value, bool):
        return None
    try:
        return level_of(value)
    except ValueError:
        return None


def _logger(name: str) -> logging.Logger:
    return logging.getLogger() if name in _ROOT_NAMES else logging.getLogger(name)


_WATCHERS: dict[str, LevelWatcher] = {}


def env_interval() -> float:
    """``LOGKAFKA_LEVELS_INTERVAL`` in seconds (default 2); ``ValueError`` naming it when malformed."""
    raw = os.environ.get("LOGKAFKA_LEVELS_INTERVAL")
    try:
        interval = float(raw) if raw else DEFAULT_INTERVAL
    except ValueError:
        raise ValueError(f"LOGKAFKA_LEVELS_INTERVAL: expected a number of seconds, got {raw!r}") from None
    if not interval > 0:
        raise ValueError(f"LOGKAFKA_LEVELS_INTERVAL: must be positive, got {raw!r}")
    return interval


def watch_levels(path: str | os.PathLike[str] | None = None, *, interval: float | None = None) -> LevelWatcher | None:
    """Apply the logger levels in ``path`` (default ``$LOGKAFKA_LEVELS_FILE``) now and whenever the file
    changes, looked at every ``interval`` seconds (default ``$LOGKAFKA_LEVELS_INTERVAL``, else 2). Forked
    children keep watching. One watcher per file; None when no file is named."""
    return _watch(path, interval, now=True)


def watch_levels_later(interval: float) -> LevelWatcher | None:
    """``watch_levels()`` for ``$LOGKAFKA_LEVELS_FILE``, first applied by the watching thread: a handler
    being made by ``dictConfig`` holds logging's lock, so the file's levels land after dictConfig has
    configured (and disabled) loggers, not before."""
    return _watch(None, interval, now=False)


def _watch(path: str | os.PathLike[str] | None, interval: float | None, now: bool) -> LevelWatcher | None:
    if path is None:
        path = os.environ.get("LOGKAFKA_LEVELS_FILE") or None
        if path is None:
            return None
    if interval is None:
        interval = env_interval()
    key = os.fspath(path)
    watcher = _WATCHERS.get(key)
    if watcher is None:
        watcher = _WATCHERS[key] = LevelWatcher(key, interval).start(now=now)
    return watcher


def _after_fork_in_child() -> None:
    for watcher in list(_WATCHERS.values()):
        try:
            watcher._after_fork_in_child()
        except Exception as exc:  # never let a fork fail because of logging
            report("levels", f"could not watch {watcher.path} after fork: {exc}")


os.register_at_fork(after_in_child=_after_fork_in_child)
