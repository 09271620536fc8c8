"""Spool segments: the line format, the segment a spool writes to, a claimed segment being read back,
and the ledger of this process's own segments (see ``_spool`` for the whole design)."""

from __future__ import annotations

import base64
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from logkafka import _json
from logkafka._message import Headers

SUFFIX = ".seg"
_POS = ".pos"  # a segment's replay progress: the byte offset settled so far
FSYNC_INTERVAL = 1.0  # seconds, for spool_fsync="interval"


@dataclass
class SpooledRecord:
    """One record read back from a segment."""

    topic: str
    key: bytes | None
    value: bytes
    timestamp_ms: int
    headers: Headers | None = None
    size: int = 0  # bytes of its line


def _text(v: str | bytes | None) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else (v or "")


def line_of(topic: str, key: bytes | None, value: bytes, timestamp_ms: int, headers: Headers | None = None) -> bytes:
    """One record as a spool line (JSON, newline-terminated): a value that is not UTF-8 text (OTLP protobuf)
    as ``{"b64": ...}``."""
    k = None if key is None else key.decode("utf-8", "replace")
    try:
        text: Any = value.decode("utf-8")
    except UnicodeDecodeError:
        text = {"b64": base64.b64encode(value).decode()}
    if headers:
        try:  # text values (as logkafka makes them) go as they are
            return _json.dumps([topic, k, text, timestamp_ms, headers]) + b"\n"
        except TypeError:  # bytes (from a delivery report)
            return _json.dumps([topic, k, text, timestamp_ms, [[n, _text(v)] for n, v in headers]]) + b"\n"
    return _json.dumps([topic, k, text, timestamp_ms]) + b"\n"


def _value_of(stored: Any) -> bytes:
    """A spool line's value as the bytes it was (see :func:`line_of`)."""
    if isinstance(stored, dict):
        return base64.b64decode(stored["b64"])
    return str(stored).encode()


def settled_offset(path: str) -> int:
    """The byte offset of a segment up to which a replay settled every record (0: none)."""
    try:
        with open(path + _POS, "rb") as f:
            return max(0, int(f.read().strip() or b"0"))
    except (OSError, ValueError):
        return 0


def clear_progress(path: str) -> None:
    """Forget a segment's replay progress (before its content is rewritten)."""
    try:
        os.unlink(path + _POS)
    except OSError:
        pass


def segments_in(directory: str) -> list[str]:
    """The segment files of a destination, oldest first (none when it is not made yet, or unreadable)."""
    try:
        names = [n for n in os.listdir(directory) if n.endswith(SUFFIX)]
    except OSError:
        return []
    return [os.path.join(directory, n) for n in sorted(names)]


class Ledger:
    """This process's own segments: their order, and how many of their records were not read back yet.

    A record of ours leaves the count the first time it is read back; one read again (a
    replay released without progress), or another process's, comes in as inherited.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.index = 0  # of the open segment, counting this spool's segments
        self._own: dict[str, int] = {}  # path -> records not read back yet
        self._read_to: dict[str, int] = {}  # path -> byte offset up to which our records were read back
        self._indexes: dict[str, int] = {}
        self.inherited = 0  # records of other processes (or earlier runs) read back from their segments
        self.handed_over = 0  # records of ours whose segment another process took
        self.torn = 0  # torn or unreadable lines skipped in replays

    def opened(self, path: str) -> None:
        """A new segment of ours: written to from now on."""
        with self._lock:
            self.index += 1
            self._own[path] = 0
            self._indexes[path] = self.index

    def adopt(self, path: str, records: int) -> None:
        """A whole segment of ours, written at once (not the open one): it counts as older than the open one."""
        with self._lock:
            self._own[path] = records
            self._indexes[path] = self.index

    def wrote(self, path: str, records: int) -> None:
        with self._lock:
            self._own[path] = self._own.get(path, 0) + records

    def holds(self, path: str) -> bool:
        """Whether ``path`` is ours and holds records not read back."""
        return bool(self._own.get(path))

    def is_ours(self, path: str) -> bool:
        return path in self._own

    def index_of(self, path: str) -> int | None:
        return self._indexes.get(path)

    def index_at_most(self, index: int) -> bool:
        """Whether a segment of ours with an index up to ``index`` is still there (not settled)."""
        with self._lock:
            return any(i <= index for i in self._indexes.values())

    def read_line(self, path: str, own: bool, end: int) -> None:
        """A line of ``path`` ending at byte ``end`` was read back."""
        if own:
            with self._lock:
                if end > self._read_to.get(path, 0) and self._own.get(path):
                    self._read_to[path] = end
                    self._own[path] -= 1
                    return
        self.inherited += 1

    def unread_line(self, path: str, own: bool, start: int) -> None:
        """The line of ``path`` starting at byte ``start`` was not handed on: it waits again."""
        if own:
            with self._lock:
                if path in self._own and self._read_to.get(path, 0) > start:
                    self._read_to[path] = start
                    self._own[path] += 1
                    return
        self.inherited -= 1

    def forget(self, path: str) -> int:
        """``path`` is gone (settled, removed, or taken by another process): the records of ours it held."""
        with self._lock:
            self._indexes.pop(path, None)
            self._read_to.pop(path, None)
            return self._own.pop(path, 0)

    def waiting(self) -> int:
        """Records of ours written to segments and not read back yet."""
        with self._lock:
            return sum(self._own.values())

    def gone(self, present: set[str], writing: str | None) -> None:
        """Segments of ours missing from a listing (``present``) were taken by another process."""
        with self._lock:
            missing = [p for p in self._own if p not in present and p != writing]
        for path in missing:
            if os.path.exists(path):
                continue  # made after the listing
            self.handed_over += self.forget(path)  # another process replayed (or removed) it


class Segment:
    """A claimed segment: read its records (from the progress committed so far), then delete it or release it."""

    def __init__(self, path: str, fd: int, ledger: Ledger | None = None, own: bool = False) -> None:
        self.path = path
        self._fd = fd
        self._ledger = ledger
        self.own = own  # written by this process's spool (its records are in its ledger already)
        self.torn = 0  # lines skipped: torn or unreadable
        self.start = settled_offset(path)  # byte offset of the first record not settled by an earlier replay
        self.offset = self.start  # byte offset after the last record read
        self.read = 0  # lines read (records and torn ones)

    def records(self) -> Iterator[SpooledRecord]:
        """The segment's records from its committed progress on, oldest first; bad lines are skipped
        and counted in ``torn``. ``offset`` follows the reading."""
        with os.fdopen(os.dup(self._fd), "rb") as f:
            f.seek(self.start)
            self.offset = self.start
            for raw in f:
                self.offset += len(raw)
                self.read += 1
                if self._ledger is not None:
                    self._ledger.read_line(self.path, self.own, self.offset)
                if not raw.endswith(b"\n"):
                    self._torn_line()  # the last line of a crashed writer
                    continue
                try:
                    topic, key, value, ts, *more = _json.loads(raw)
                    headers: Headers | None = (
                        [(str(n), str(v).encode()) for n, v in more[0]] if more and more[0] else None)
                    rec = SpooledRecord(str(topic), None if key is None else str(key).encode(),
                                        _value_of(value), int(ts), headers, len(raw))
                except Exception:
                    self._torn_line()
                    continue
                yield rec

    def _torn_line(self) -> None:
        self.torn += 1
        if self._ledger is not None:
            self._ledger.torn += 1

    def count_lines(self) -> int:
        """Lines from the committed progress on (records and torn ones), without parsing them."""
        n = 0
        with os.fdopen(os.dup(self._fd), "rb") as f:
            f.seek(self.start)
            tail = b""
            for chunk in iter(lambda: f.read(1 << 20), b""):
                n += chunk.count(b"\n")
                tail = chunk[-1:]
            if tail and tail != b"\n":
                n += 1  # a torn last line
        return n

    def unread(self, raw_len: int) -> None:
        """The last record read was not handed on: it counts as waiting in the spool again."""
        self.offset -= raw_len
        self.read -= 1
        if self._ledger is not None:
            self._ledger.unread_line(self.path, self.own, self.offset)

    def commit_progress(self, offset: int | None = None) -> None:
        """Record that every record before ``offset`` (default: all read so far) is settled."""
        offset = self.offset if offset is None else offset
        tmp = f"{self.path}{_POS}.{os.getpid()}"
        try:
            with open(tmp, "wb") as f:
                f.write(str(offset).encode())
            os.replace(tmp, self.path + _POS)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def delete(self) -> None:
        """Remove the segment: its records are delivered (or spooled again)."""
        for path in (self.path, self.path + _POS):
            try:
                os.unlink(path)
            except OSError:
                pass
        if self._ledger is not None:
            self._ledger.forget(self.path)
        self.release()

    def release(self) -> None:
        """Give the segment back (replay stopped): it stays for later, from its committed progress."""
        if self._fd >= 0:
            os.close(self._fd)  # closing drops the lock
            self._fd = -1


def claim(path: str, ledger: Ledger | None = None, own: bool = False) -> Segment | None:
    """Lock the segment at ``path`` for reading; None when a live writer or replayer holds it, or it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
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
    return Segment(path, fd, ledger, own)


def new_stem() -> str:
    """A segment name (without its suffix) that sorts after every segment made so far and before every one made
    later (as :meth:`Writer.open_new` names them)."""
    return f"{time.time_ns():020d}-{os.getpid()}-{os.urandom(4).hex()}"


def write_whole(path: str, lines: list[bytes], *, sync: bool) -> None:
    """Write a segment at once: made under another name, then renamed, so no replayer sees it half written.
    Raises ``OSError`` (and leaves nothing behind) when the disk refuses it."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    making = path + ".new"
    try:
        fd = os.open(making, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            data = memoryview(b"".join(lines))
            done = 0
            while done < len(data):
                n = os.write(fd, data[done:])
                if n <= 0:
                    raise OSError("short write")
                done += n
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(making, path)
    except OSError:
        try:
            os.unlink(making)
        except OSError:
            pass
        raise


class Writer:
    """The segment a spool appends to now (written with os.write, no buffer: what was written is known).

    Callers hold the spool's lock.
    """

    def __init__(self, directory: str, fsync: str, ledger: Ledger) -> None:
        self.directory = directory
        self.fsync = fsync
        self._ledger = ledger
        self.fd = -1
        self.path: str | None = None
        self.size = 0  # of the open segment
        self.dirty = False
        self._synced_at = time.monotonic()
        self.short_error: str | None = None  # why the last write_lines() came up short

    def open_new(self) -> None:
        """Close the open segment and start a new one, locked by us until closed."""
        self.close()
        os.makedirs(self.directory, exist_ok=True)
        name = new_stem() + SUFFIX
        path = os.path.join(self.directory, name)
        # Made under another name, locked, then renamed: no replayer (another process, or this one's
        # worker) can claim a segment before its writer holds the lock.
        making = path + ".new"
        fd = os.open(making, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # ours alone until closed
            os.rename(making, path)
        except OSError:
            os.close(fd)
            try:
                os.unlink(making)
            except OSError:
                pass
            raise
        self.fd, self.path, self.size = fd, path, 0
        self._ledger.opened(path)

    def write_one(self, line: bytes) -> bool:
        """Write one line to the open segment in one write call when it fits; False when it did not go
        that way (not open, no room, a short write: cut back), so the careful way must be taken."""
        fd, path = self.fd, self.path
        if fd < 0 or path is None:
            return False
        try:
            written = os.write(fd, line)
        except OSError:
            written = -1
        if written == len(line):
            self.size += written
            self.dirty = True
            self._ledger.wrote(path, 1)
            return True
        if written > 0:
            try:
                os.ftruncate(fd, self.size)  # cut the torn line back off
            except OSError:
                pass
        return False

    def write_lines(self, lines: list[bytes], start: int, end: int) -> int:
        """Write lines[start:end] to the open segment; the number of whole lines written."""
        data = memoryview(b"".join(lines[start:end]))
        done = 0
        self.short_error = None
        try:
            while done < len(data):
                n = os.write(self.fd, data[done:])
                if n <= 0:
                    break
                done += n
        except OSError as exc:
            self.short_error = exc.strerror or str(exc)
        whole, used = 0, 0
        for i in range(start, end):
            if used + len(lines[i]) > done:
                break
            used += len(lines[i])
            whole += 1
        if used < done or done < len(data):  # a torn last line: cut it off, so the file holds whole lines
            try:
                os.ftruncate(self.fd, self.size + used)
            except OSError:
                pass
        if whole:
            self.size += used
            self.dirty = True
            if self.path is not None:
                self._ledger.wrote(self.path, whole)
        return whole

    def sync_due(self) -> bool:
        """Whether the fsync policy asks for an fsync after a write now."""
        return self.fsync == "always" or (self.fsync == "interval"
                                          and time.monotonic() - self._synced_at >= FSYNC_INTERVAL)

    def sync(self) -> None:
        """fsync the open segment if it has unsynced records."""
        if self.fd >= 0 and self.dirty:
            os.fsync(self.fd)
            self.dirty = False
        self._synced_at = time.monotonic()

    def detach(self) -> tuple[int, bool]:
        """Take the open segment's descriptor and whether it is dirty (to fsync and close outside the lock);
        the segment is forgotten as by :meth:`close`."""
        fd, dirty = self.fd, self.dirty
        self.fd, self.dirty = -1, False
        self.close()
        return fd, dirty

    def close(self) -> None:
        """Close the open segment (fsync first unless the policy is "never"); one that holds nothing is removed."""
        fd, path = self.fd, self.path
        self.fd, self.path = -1, None
        self.size = 0
        if fd >= 0:
            try:
                if self.dirty and self.fsync != "never":
                    os.fsync(fd)
            except OSError:
                pass
            finally:
                self.dirty = False
                os.close(fd)
        if path is not None and not self._ledger.holds(path):  # nothing written: no file to leave behind
            self._ledger.forget(path)
            try:
                if os.path.getsize(path) == 0:
                    os.unlink(path)
            except OSError:
                pass

    def forget_after_fork(self) -> None:
        """In a forked child: the parent's open segment is the parent's (its lock too)."""
        fd = self.fd
        self.fd, self.path, self.size, self.dirty = -1, None, 0, False
        if fd >= 0:
            try:
                os.close(fd)  # the child's copy of the descriptor; the parent keeps its own
            except OSError:
                pass
