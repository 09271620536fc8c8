"""The disk spool: records that cannot go to Kafka now wait here, in order.

One directory per destination (topic and cluster) under ``spool_dir``. Each
writer appends to its own segment file, named so that names sort by age
(``<time ns>-<pid>-<random>.seg``), and holds an exclusive ``flock`` on it
while it is open. A replayer claims a segment with a non-blocking ``flock``:
a segment that another live writer or replayer holds is skipped, so two
processes sharing a ``spool_dir`` never corrupt or double-replay a file, and
the segments of a crashed process are free to claim.

A segment holds one record per line, ``[topic, key, value, timestamp_ms]`` as
JSON (then ``[[name, value], ...]`` when the record has Kafka headers), written
with one ``write`` call. A line that is torn (the process died
in the middle of it) or unreadable is skipped and counted; it never stops the
replay. Only the worker thread touches the spool, never the caller.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson

FSYNC_POLICIES = ("always", "interval", "never")
_FSYNC_INTERVAL = 1.0  # seconds, for spool_fsync="interval"
_SUFFIX = ".seg"
_TOPIC_IN_NAME = 200  # characters of the topic in a destination directory's name


def default_spool_dir() -> str:
    """A per-user directory: ``$XDG_CACHE_HOME/logkafka/spool``, else ``~/.cache/logkafka/spool``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "logkafka", "spool")


def destination_dir(spool_dir: str, topic: str, bootstrap_servers: str) -> str:
    """The directory of one destination: the topic and a short hash of the cluster's address."""
    digest = hashlib.sha1(bootstrap_servers.encode(), usedforsecurity=False).hexdigest()[:10]
    if len(topic) > _TOPIC_IN_NAME:  # a file name has at most 255 bytes; the hash keeps long names apart
        whole = hashlib.sha1(topic.encode(), usedforsecurity=False).hexdigest()[:10]
        topic = f"{topic[:_TOPIC_IN_NAME]}~{whole}"
    return os.path.join(spool_dir, f"{topic}-{digest}")


@dataclass
class SpooledRecord:
    """One record read back from a segment."""

    topic: str
    key: bytes | None
    value: bytes
    timestamp_ms: int
    headers: list[tuple[str, str | bytes | None]] | None = None


def _text(v: str | bytes | None) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else (v or "")


def _line(topic: str, key: bytes | None, value: bytes, timestamp_ms: int,
          headers: list[tuple[str, str | bytes | None]] | None = None) -> bytes:
    k = None if key is None else key.decode("utf-8", "replace")
    if headers:
        text = value.decode("utf-8", "replace")
        try:  # text values (as logkafka makes them) go as they are
            return orjson.dumps([topic, k, text, timestamp_ms, headers]) + b"\n"
        except TypeError:  # bytes (from a delivery report)
            return orjson.dumps([topic, k, text, timestamp_ms, [[n, _text(v)] for n, v in headers]]) + b"\n"
    return orjson.dumps([topic, k, value.decode("utf-8", "replace"), timestamp_ms]) + b"\n"


class Segment:
    """A claimed segment: read its records, then delete it (or release it)."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self._fd = fd
        self.torn = 0  # lines skipped: torn or unreadable

    def records(self) -> Iterator[SpooledRecord]:
        """The segment's records, oldest first; bad lines are skipped and counted in ``torn``."""
        with os.fdopen(os.dup(self._fd), "rb") as f:
            f.seek(0)
            for raw in f:
                if not raw.endswith(b"\n"):
                    self.torn += 1  # the last line of a crashed writer
                    continue
                try:
                    topic, key, value, ts, *more = orjson.loads(raw)
                    headers: list[tuple[str, str | bytes | None]] | None = (
                        [(str(n), str(v).encode()) for n, v in more[0]] if more and more[0] else None)
                    yield SpooledRecord(str(topic), None if key is None else str(key).encode(),
                                        str(value).encode(), int(ts), headers)
                except Exception:
                    self.torn += 1

    def delete(self) -> None:
        """Remove the segment: its records are delivered (or spooled again)."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.release()

    def release(self) -> None:
        """Give the segment back unread (replay stopped): it stays for later."""
        if self._fd >= 0:
            os.close(self._fd)  # closing drops the lock
            self._fd = -1


class Spool:
    """Append-only segments in one destination directory (see the module docstring)."""

    def __init__(self, directory: str, *, max_bytes: int, fsync: str, segment_bytes: int | None = None) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.segment_bytes = segment_bytes or max(64 * 1024, min(64 * 1024 * 1024, max_bytes // 8))
        self._file: IO[bytes] | None = None
        self._pending: list[bytes] = []  # lines appended, not yet written (commit() writes them)
        self._pending_bytes = 0
        self._path: str | None = None
        self._size = 0  # of the open segment
        self._synced_at = time.monotonic()
        self._dirty = False
        self.spooled = 0  # records appended
        self.dropped = 0  # records lost to spool_max_bytes (oldest segments removed)
        self.torn = 0  # torn or unreadable lines skipped in replays
        self.errors = 0  # appends that failed (disk full, permissions): the record is lost, counted
        self.last_error: str | None = None

    # -- writing -------------------------------------------------------------------------
    def append(self, topic: str, key: bytes | None, value: bytes, timestamp_ms: int,
               headers: list[tuple[str, str | bytes | None]] | None = None) -> bool:
        """Add one record; it is written by the next :meth:`commit` (the worker commits after
        each batch, so a batch costs one write call). Returns False if a commit failed."""
        line = _line(topic, key, value, timestamp_ms, headers)
        self._pending.append(line)
        self._pending_bytes += len(line)
        if self._pending_bytes >= 4 << 20:
            return self.commit()
        return True

    def commit(self) -> bool:
        """Write the appended records (whole lines, one write call), then fsync as the policy says.
        False, with the records counted in ``errors``, if the disk refused them."""
        lines = self._pending
        if not lines:
            return True
        self._pending, self._pending_bytes = [], 0
        start = 0
        try:
            while start < len(lines):
                f = self._file
                if f is None or self._size >= self.segment_bytes:
                    f = self._open_new()
                room, end = self.segment_bytes - self._size, start
                while end < len(lines) and (end == start or room >= len(lines[end])):
                    room -= len(lines[end])
                    end += 1
                data = b"".join(lines[start:end])
                f.write(data)
                f.flush()  # a crash tears at most the last line, which replay skips
                self._size += len(data)
                self.spooled += end - start
                self._dirty = True
                start = end
            if self.fsync == "always":
                self.sync()
            elif self.fsync == "interval" and time.monotonic() - self._synced_at >= _FSYNC_INTERVAL:
                self.sync()
            return True
        except OSError as exc:
            self.errors += len(lines) - start
            self.last_error = f"spool write failed: {exc}"
            self._close_current()
            return False

    def sync(self) -> None:
        """fsync the open segment if it has unsynced records."""
        f = self._file
        if f is not None and self._dirty:
            os.fsync(f.fileno())
            self._dirty = False
        self._synced_at = time.monotonic()

    def tick(self) -> None:
        """Called by the worker now and then: the "interval" fsync of a quiet spool."""
        if self.fsync == "interval" and self._dirty and time.monotonic() - self._synced_at >= _FSYNC_INTERVAL:
            try:
                self.sync()
            except OSError as exc:
                self.errors += 1
                self.last_error = f"spool fsync failed: {exc}"

    def _open_new(self) -> IO[bytes]:
        self._close_current()
        os.makedirs(self.directory, exist_ok=True)
        self._enforce_limit()
        name = f"{time.time_ns():020d}-{os.getpid()}-{os.urandom(4).hex()}{_SUFFIX}"
        path = os.path.join(self.directory, name)
        f = open(path, "ab")
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # ours alone until closed
        self._file, self._path, self._size = f, path, 0
        return f

    def rotate(self) -> None:
        """Close the open segment so that it can be claimed for replay."""
        self.commit()
        self._close_current()

    def _close_current(self) -> None:
        f = self._file
        self._file = self._path = None
        self._size = 0
        if f is not None:
            try:
                if self._dirty and self.fsync != "never":
                    os.fsync(f.fileno())
            except OSError:
                pass
            finally:
                self._dirty = False
                f.close()

    def close(self) -> None:
        """Write what is appended and close the open segment (fsync first unless ``spool_fsync="never"``)."""
        self.rotate()

    def after_fork_in_child(self) -> None:
        """Forget the parent's open segment (its lock belongs to the parent)."""
        f = self._file
        self._file = self._path = None
        self._size = 0
        self._dirty = False
        self._pending, self._pending_bytes = [], 0  # the parent's: the parent writes them
        if f is not None:
            try:
                os.close(f.fileno())  # the child's copy of the descriptor; the parent keeps its own
            except OSError:
                pass

    # -- reading -----------------------------------------------------------------------------
    def _segments(self) -> list[str]:
        try:
            names = [n for n in os.listdir(self.directory) if n.endswith(_SUFFIX)]
        except OSError:  # not made yet, or unreadable: nothing of ours to replay
            return []
        return [os.path.join(self.directory, n) for n in sorted(names)]

    @staticmethod
    def has_records(directory: str) -> bool:
        """Whether a destination directory holds a non-empty segment (without opening a spool)."""
        try:
            with os.scandir(directory) as entries:
                return any(e.name.endswith(_SUFFIX) and e.stat().st_size > 0 for e in entries)
        except OSError:
            return False

    def pending(self) -> bool:
        """Whether any segment (ours or another process's) holds records."""
        return bool(self._pending) or self._size > 0 or self.bytes() > 0

    def bytes(self) -> int:
        """Bytes in this destination's segments."""
        total = 0
        for path in self._segments():
            try:
                total += os.path.getsize(path)
            except OSError:
                pass
        return total

    def claim(self) -> Segment | None:
        """The oldest segment no live process holds, locked for us; None if there is none."""
        for path in self._segments():
            if path == self._path:
                continue  # ours, still being written: rotate() first
            segment = self.claim_path(path)
            if segment is not None:
                return segment
        return None

    def _enforce_limit(self) -> None:
        """Remove the oldest segments while the destination holds more than ``max_bytes``."""
        segments = self._segments()
        sizes = {}
        for p in segments:
            try:
                sizes[p] = os.path.getsize(p)
            except OSError:
                pass
        total = sum(sizes.values()) + self.segment_bytes
        for path in segments:
            if total <= self.max_bytes:
                return
            seg = self.claim_path(path)
            if seg is None:
                continue
            lines = sum(1 for _ in seg.records()) + seg.torn
            seg.delete()
            self.dropped += lines
            total -= sizes.get(path, 0)

    def claim_path(self, path: str) -> Segment | None:
        """Claim one given segment (see :meth:`claim`)."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # a live writer or another replayer holds it
            return None
        try:
            now = os.stat(path)
        except FileNotFoundError:  # deleted by its replayer between listdir and flock
            os.close(fd)
            return None
        held = os.fstat(fd)
        if (now.st_ino, now.st_dev) != (held.st_ino, held.st_dev):
            # replaced after we opened it (`logkafka replay` rewrites a segment with what is left):
            # the file we hold has records already delivered; the new one is claimed next time
            os.close(fd)
            return None
        return Segment(path, fd)

    def stats(self) -> dict[str, Any]:
        """Counters of the spool."""
        return {"spooled": self.spooled, "spool_dropped": self.dropped, "spool_torn": self.torn,
                "spool_errors": self.errors, "spool_bytes": self.bytes()}
