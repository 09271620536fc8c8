"""The disk spool: records that cannot go to Kafka now wait here, in order.

One directory per destination (topic and cluster) under ``spool_dir``. Each
writer appends to its own segment file, named so that names sort by age
(``<time ns>-<pid>-<random>.seg``), and holds an exclusive ``flock`` on it
while it is open. A replayer claims a segment with a non-blocking ``flock``:
a segment that another live writer or replayer holds is skipped, so two
processes sharing a ``spool_dir`` never corrupt or double-replay a file, and
the segments of a crashed process are free to claim.

A segment holds one record per line, ``[topic, key, value, timestamp_ms]`` as
JSON (then ``[[name, value], ...]`` when the record has Kafka headers). A write
that the disk refuses half way (full, gone) is cut back to its last whole line,
so what is counted as written is exactly what is there; the records not written
are handed back (:meth:`Spool.take_unwritten`) to go to Kafka from memory. A
line that is torn (the process died in the middle of it) or unreadable is
skipped and counted; it never stops the replay.

A replay commits its progress in small steps: ``<segment>.pos`` holds the byte
offset up to which every record was settled, so a replay cut short (SIGKILL,
SIGTERM) resumes there and sends again at most one step's records.

The worker thread writes batches; with ``durability="disk"`` the caller writes
its own record before ``emit()`` returns (:meth:`Spool.write_through`). One lock
serialises the two.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

_FSYNC_INTERVAL = 1.0  # seconds, for spool_fsync="interval"
_SUFFIX = ".seg"
_POS = ".pos"  # a segment's replay progress: the byte offset settled so far
_TOPIC_IN_NAME = 200  # characters of the topic in a destination directory's name
_PENDING_MAX = 4 << 20  # bytes appended before append() writes them without waiting for commit()
_RETRY_AFTER = 5.0  # seconds after a refused write before the spool is tried again

Headers = list[tuple[str, str | bytes | None]]
#: A record as the spool takes it: (topic, key, value, timestamp_ms, headers).
Record = tuple[str, bytes | None, bytes, int, Headers | None]


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
    size: int = 0  # bytes of its line


def _text(v: str | bytes | None) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else (v or "")


def line_of(topic: str, key: bytes | None, value: bytes, timestamp_ms: int,
            headers: list[tuple[str, str | bytes | None]] | None = None) -> bytes:
    """One record as a spool line (JSON, newline-terminated)."""
    k = None if key is None else key.decode("utf-8", "replace")
    if headers:
        text = value.decode("utf-8", "replace")
        try:  # text values (as logkafka makes them) go as they are
            return orjson.dumps([topic, k, text, timestamp_ms, headers]) + b"\n"
        except TypeError:  # bytes (from a delivery report)
            return orjson.dumps([topic, k, text, timestamp_ms, [[n, _text(v)] for n, v in headers]]) + b"\n"
    return orjson.dumps([topic, k, value.decode("utf-8", "replace"), timestamp_ms]) + b"\n"




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


class Segment:
    """A claimed segment: read its records (from the progress committed so far), then delete it or release it."""

    def __init__(self, path: str, fd: int, spool: Spool | None = None, own: bool = False) -> None:
        self.path = path
        self._fd = fd
        self._spool = spool
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
                if self._spool is not None:
                    self._spool._read_line(self.path, self.own, self.offset)
                if not raw.endswith(b"\n"):
                    self._torn_line()  # the last line of a crashed writer
                    continue
                try:
                    topic, key, value, ts, *more = orjson.loads(raw)
                    headers: list[tuple[str, str | bytes | None]] | None = (
                        [(str(n), str(v).encode()) for n, v in more[0]] if more and more[0] else None)
                    rec = SpooledRecord(str(topic), None if key is None else str(key).encode(),
                                        str(value).encode(), int(ts), headers, len(raw))
                except Exception:
                    self._torn_line()
                    continue
                yield rec

    def _torn_line(self) -> None:
        self.torn += 1
        if self._spool is not None:
            self._spool.torn += 1

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
        if self._spool is not None:
            self._spool._unread_line(self.path, self.own, self.offset)

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
            except FileNotFoundError:
                pass
            except OSError:
                pass
        if self._spool is not None:
            self._spool._forget(self.path)
        self.release()

    def release(self) -> None:
        """Give the segment back (replay stopped): it stays for later, from its committed progress."""
        if self._fd >= 0:
            os.close(self._fd)  # closing drops the lock
            self._fd = -1


class Spool:
    """Append-only segments in one destination directory (see the module docstring)."""

    def __init__(self, directory: str, *, max_bytes: int, fsync: str, segment_bytes: int | None = None,
                 batch_bytes: int = _PENDING_MAX) -> None:
        self.directory = directory
        self.batch_bytes = batch_bytes  # appended bytes written without waiting for commit() (memory held)
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.segment_bytes = segment_bytes or max(64 * 1024, min(64 * 1024 * 1024, max_bytes // 8))
        self._lock = threading.Lock()
        self._fd = -1  # the open segment, written with os.write (no buffer: what was written is known)
        self._pending: list[bytes] = []  # lines appended, not yet written (commit() writes them)
        self._pending_records: list[Record] = []  # the same records, handed back if the disk refuses them
        self._pending_bytes = 0
        self._unwritten: list[Record] = []  # refused by the disk: for the worker to send from memory
        self._path: str | None = None
        self._size = 0  # of the open segment
        self._synced_at = time.monotonic()
        self._dirty = False
        #: Segments this spool wrote and has not seen settled: path -> records not read back yet.
        self._own: dict[str, int] = {}
        self._read_to: dict[str, int] = {}  # path -> byte offset up to which our records were read back
        self._index = 0  # of the open segment, counting this spool's segments
        self._indexes: dict[str, int] = {}
        self.refused_at = -1e9  # monotonic time of the last refused write
        self.spooled = 0  # records written
        self.dropped = 0  # records lost to spool_max_bytes (oldest segments removed)
        self.torn = 0  # torn or unreadable lines skipped in replays
        self.errors = 0  # records the disk refused (handed back, not lost: see take_unwritten)
        self.inherited = 0  # records of other processes (or earlier runs) read back from their segments
        self.handed_over = 0  # records of ours whose segment another process took
        self.last_error: str | None = None

    # -- writing -------------------------------------------------------------------------
    def usable(self) -> bool:
        """Whether writes are tried: not within a few seconds of the disk refusing one."""
        return time.monotonic() - self.refused_at >= _RETRY_AFTER

    def append(self, topic: str, key: bytes | None, value: bytes, timestamp_ms: int,
               headers: list[tuple[str, str | bytes | None]] | None = None) -> bool:
        """Add one record; it is written by the next :meth:`commit` (the worker commits after
        each batch, so a batch costs one write call). Returns False if a commit failed."""
        line = line_of(topic, key, value, timestamp_ms, headers)
        self._pending.append(line)
        self._pending_records.append((topic, key, value, timestamp_ms, headers))
        self._pending_bytes += len(line)
        if self._pending_bytes >= self.batch_bytes:
            return self.commit()
        return True

    def commit(self) -> bool:
        """Write the appended records (whole lines, one write call per segment), then fsync as the policy
        says. False if the disk refused some: those are counted in ``errors`` and handed back."""
        if not self._pending:
            return True
        with self._lock:
            lines, records = self._pending, self._pending_records
            self._pending, self._pending_records, self._pending_bytes = [], [], 0
            written = self._write(lines)
            if written < len(lines):
                self._unwritten.extend(records[written:])
                return False
            return True

    def write_through(self, topic: str, key: bytes | None, value: bytes, timestamp_ms: int,
                      headers: Headers | None = None) -> bool:
        """Write one record now, on the calling thread (fsync as the policy says); False if the disk refused it.

        A refused record is not kept here: the caller sends it another way.
        """
        line = line_of(topic, key, value, timestamp_ms, headers)
        with self._lock:
            fd, path = self._fd, self._path
            if fd >= 0 and path is not None and self._size + len(line) <= self.segment_bytes \
                    and self.fsync != "always":
                try:  # the common case, one write call: a short one goes the careful way below
                    written = os.write(fd, line)
                except OSError:
                    written = -1
                if written == len(line):
                    self._size += written
                    self.spooled += 1
                    self._dirty = True
                    self._own[path] += 1
                    if self.fsync == "interval" and time.monotonic() - self._synced_at >= _FSYNC_INTERVAL:
                        try:
                            self._sync()
                        except OSError as exc:
                            self.last_error = f"spool fsync failed: {exc}"
                    return True
                if written > 0:
                    try:
                        os.ftruncate(fd, self._size)  # cut the torn line back off
                    except OSError:
                        pass
            return self._write([line]) == 1

    def take_unwritten(self) -> list[Record]:
        """The records the disk refused since the last call (they are not in the spool)."""
        with self._lock:
            out, self._unwritten = self._unwritten, []
        return out

    def _write(self, lines: list[bytes]) -> int:
        """Write ``lines`` (under the lock); the number written whole. A partial write is cut back."""
        start = 0
        try:
            while start < len(lines):
                if self._fd < 0 or self._size >= self.segment_bytes:
                    self._open_new()
                room, end = self.segment_bytes - self._size, start
                while end < len(lines) and (end == start or room >= len(lines[end])):
                    room -= len(lines[end])
                    end += 1
                done = self._write_lines(lines, start, end)
                start += done
                if start < end:
                    raise OSError(self._short_error or "short write")
            if self.fsync == "always" or (self.fsync == "interval"
                                          and time.monotonic() - self._synced_at >= _FSYNC_INTERVAL):
                self._sync()
            return start
        except OSError as exc:
            self.errors += len(lines) - start
            self.last_error = f"spool write failed: {exc.strerror or exc}"
            self.refused_at = time.monotonic()
            self._close_current()
            return start

    _short_error: str | None = None

    def _write_lines(self, lines: list[bytes], start: int, end: int) -> int:
        """Write lines[start:end] to the open segment; the number of whole lines written."""
        data = memoryview(b"".join(lines[start:end]))
        done = 0
        self._short_error = None
        try:
            while done < len(data):
                n = os.write(self._fd, data[done:])
                if n <= 0:
                    break
                done += n
        except OSError as exc:
            self._short_error = exc.strerror or str(exc)
        whole, used = 0, 0
        for i in range(start, end):
            if used + len(lines[i]) > done:
                break
            used += len(lines[i])
            whole += 1
        if used < done or done < len(data):  # a torn last line: cut it off, so the file holds whole lines
            try:
                os.ftruncate(self._fd, self._size + used)
            except OSError:
                pass
        if whole:
            self._size += used
            self.spooled += whole
            self._dirty = True
            if self._path is not None:
                self._own[self._path] = self._own.get(self._path, 0) + whole
        return whole

    def _sync(self) -> None:
        if self._fd >= 0 and self._dirty:
            os.fsync(self._fd)
            self._dirty = False
        self._synced_at = time.monotonic()

    def sync(self) -> None:
        """fsync the open segment if it has unsynced records."""
        with self._lock:
            self._sync()

    def tick(self) -> None:
        """Called by the worker now and then: the "interval" fsync of a quiet spool."""
        if self.fsync == "interval" and self._dirty and time.monotonic() - self._synced_at >= _FSYNC_INTERVAL:
            with self._lock:
                try:
                    self._sync()
                except OSError as exc:
                    self.last_error = f"spool fsync failed: {exc}"

    def _open_new(self) -> None:
        self._close_current()
        os.makedirs(self.directory, exist_ok=True)
        self._enforce_limit()
        name = f"{time.time_ns():020d}-{os.getpid()}-{os.urandom(4).hex()}{_SUFFIX}"
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
        self._index += 1
        self._fd, self._path, self._size = fd, path, 0
        self._own[path] = 0
        self._indexes[path] = self._index

    def open_index(self) -> int:
        """The index of the segment records are written to now (any record written so far is in it or older)."""
        return self._index

    def own_index_at_most(self, index: int) -> bool:
        """Whether a segment of ours with an index up to ``index`` is still there (not settled)."""
        with self._lock:
            return any(i <= index for i in self._indexes.values())

    def rotate(self, sync: bool = True) -> None:
        """Close the open segment so that it can be claimed for replay (its fsync outside the lock:
        callers writing meanwhile go to a new segment and do not wait for it)."""
        self.commit()
        with self._lock:
            fd, dirty = self._fd, self._dirty
            self._fd, self._dirty = -1, False
            self._close_current()  # forgets the segment (and removes it if it holds nothing)
        if fd >= 0:
            try:
                if dirty and sync and self.fsync != "never":
                    os.fsync(fd)
            except OSError:
                pass
            finally:
                os.close(fd)

    def _close_current(self) -> None:
        fd, path = self._fd, self._path
        self._fd, self._path = -1, None
        self._size = 0
        if fd >= 0:
            try:
                if self._dirty and self.fsync != "never":
                    os.fsync(fd)
            except OSError:
                pass
            finally:
                self._dirty = False
                os.close(fd)
        if path is not None and not self._own.get(path):  # nothing written: no file to leave behind
            self._own.pop(path, None)
            self._indexes.pop(path, None)
            try:
                if os.path.getsize(path) == 0:
                    os.unlink(path)
            except OSError:
                pass

    def close(self, sync: bool = True) -> None:
        """Write what is appended and close the open segment (fsync first unless ``spool_fsync="never"``,
        or ``sync`` is False: at the process's end the kernel has the records, and an fsync on a busy
        disk could outlast the time the exit has)."""
        self.rotate(sync)

    def after_fork_in_child(self) -> None:
        """Forget the parent's open segment (its lock belongs to the parent) and its records."""
        fd = self._fd
        self._lock = threading.Lock()
        self._fd, self._path = -1, None
        self._size = 0
        self._dirty = False
        self._pending, self._pending_records, self._pending_bytes = [], [], 0  # the parent's: the parent writes them
        self._own, self._indexes, self._read_to = {}, {}, {}
        if fd >= 0:
            try:
                os.close(fd)  # the child's copy of the descriptor; the parent keeps its own
            except OSError:
                pass

    # -- accounting ---------------------------------------------------------------------------
    def _read_line(self, path: str, own: bool, end: int) -> None:
        """A line of ``path`` ending at byte ``end`` was read back: a record of ours leaves the spool's
        count the first time it is read; one read again (a replay released without progress), or
        another process's, comes in as inherited."""
        if own:
            with self._lock:
                if end > self._read_to.get(path, 0) and self._own.get(path):
                    self._read_to[path] = end
                    self._own[path] -= 1
                    return
        self.inherited += 1

    def _unread_line(self, path: str, own: bool, start: int) -> None:
        if own:
            with self._lock:
                if path in self._own and self._read_to.get(path, 0) > start:
                    self._read_to[path] = start
                    self._own[path] += 1
                    return
        self.inherited -= 1

    def _forget(self, path: str) -> None:
        with self._lock:
            self._own.pop(path, None)
            self._indexes.pop(path, None)
            self._read_to.pop(path, None)

    def waiting(self) -> int:
        """Records of ours in the spool not yet read back: appended, or written to a segment."""
        with self._lock:
            return len(self._pending) + sum(self._own.values())

    # -- reading -----------------------------------------------------------------------------
    def _segments(self) -> list[str]:
        """The destination's segments, oldest first; ours that are gone count as handed over."""
        paths = self._listing()
        if self._own:
            present = set(paths)
            with self._lock:
                for path in [p for p in self._own if p not in present and p != self._path]:
                    if os.path.exists(path):
                        continue  # made after the listing
                    self.handed_over += self._own.pop(path)  # another process replayed (or removed) it
                    self._indexes.pop(path, None)
                    self._read_to.pop(path, None)
        return paths

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
        """Bytes in this destination's segments (not counting what replays have settled)."""
        total = 0
        for path in self._segments():
            try:
                total += max(0, os.path.getsize(path) - settled_offset(path))
            except OSError:
                pass
        return total

    def claim(self, own_up_to: int | None = None, older_than_ns: int | None = None) -> Segment | None:
        """The oldest segment no live process holds, locked for us; None if there is none.

        With ``own_up_to``, segments of ours newer than that index are left (a waiting
        flush does not cover them); with ``older_than_ns``, other processes' segments
        made after that time (``time.time_ns()``) are left too.
        """
        newest = None if older_than_ns is None else f"{older_than_ns:020d}"
        for path in self._segments():
            if path == self._path:
                continue  # ours, still being written: rotate() first
            if own_up_to is not None and self._indexes.get(path, 0) > own_up_to:
                continue  # ours, newer than what a waiting flush covers
            if newest is not None and path not in self._indexes and os.path.basename(path) > newest:
                continue  # another process's, newer than the flush
            segment = self.claim_path(path)
            if segment is not None:
                return segment
        return None

    def _enforce_limit(self) -> None:
        """Remove the oldest segments while the destination holds more than ``max_bytes`` (under the lock)."""
        segments = self._listing()  # under the lock: no handed-over accounting here
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
            seg = self._claim(path)
            if seg is None:
                continue
            lines = seg.count_lines()
            own = self._own.pop(path, None)
            # another process's records (or ours read back before) become ours, and are lost
            self.inherited += lines - min(lines, own or 0)
            self._indexes.pop(path, None)
            self._read_to.pop(path, None)
            seg.delete()
            self.dropped += lines
            total -= sizes.get(path, 0)

    def _listing(self) -> list[str]:
        """The segment files of the destination, oldest first (none when it is not made yet, or unreadable)."""
        try:
            names = [n for n in os.listdir(self.directory) if n.endswith(_SUFFIX)]
        except OSError:
            return []
        return [os.path.join(self.directory, n) for n in sorted(names)]

    def claim_path(self, path: str) -> Segment | None:
        """Claim one given segment (see :meth:`claim`)."""
        return self._claim(path, account=True)

    def _claim(self, path: str, account: bool = False) -> Segment | None:
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
        own = path in self._own
        return Segment(path, fd, self if account else None, own)

    def stats(self) -> dict[str, Any]:
        """Counters of the spool."""
        return {"spooled": self.spooled, "spool_dropped": self.dropped, "spool_torn": self.torn,
                "spool_errors": self.errors, "spool_bytes": self.bytes()}
