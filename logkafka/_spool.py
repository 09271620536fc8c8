"""The disk spool: records that cannot go to Kafka now wait here, in order.

One directory per destination (topic and cluster) under ``spool_dir``. Each
writer appends to its own segment file, named so that names sort by age
(``<time ns>-<pid>-<random>.seg``), and holds an exclusive ``flock`` on it
while it is open. A replayer claims a segment with a non-blocking ``flock``:
a segment that another live writer or replayer holds is skipped, so two
processes sharing a ``spool_dir`` never corrupt or double-replay a file, and
the segments of a crashed process are free to claim.

A record whose delivery failed goes back ahead of the records that followed
it: into a segment written whole and named ``<stem>+<time ns>-<pid>-<n>.seg``,
which sorts right before the segment ``<stem>.seg`` (the one it was replayed
from, or the first one made after spooling began) and after the earlier ones
written for that stem (:meth:`Spool.write_front`).

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

import hashlib
import os
import threading
import time
from typing import Any

from logkafka._message import Headers, Message, new_message
from logkafka._segment import (
    SUFFIX,
    Ledger,
    Segment,
    SpooledRecord,
    Writer,
    claim,
    clear_progress,
    line_of,
    new_stem,
    segments_in,
    settled_offset,
    write_whole,
)

__all__ = ["SUFFIX", "Segment", "Spool", "SpooledRecord", "clear_progress", "default_spool_dir", "destination_dir",
           "line_of", "new_stem", "settled_offset"]

_TOPIC_IN_NAME = 200  # characters of the topic in a destination directory's name
_PENDING_MAX = 4 << 20  # bytes appended before append() writes them without waiting for commit()
_RETRY_AFTER = 5.0  # seconds after a refused write before the spool is tried again


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


class Spool:
    """Append-only segments in one destination directory (see the module docstring)."""

    def __init__(self, directory: str, *, max_bytes: int, fsync: str, segment_bytes: int | None = None,
                 batch_bytes: int = _PENDING_MAX) -> None:
        self.directory = directory
        self.batch_bytes = batch_bytes  # appended bytes written without waiting for commit() (memory held)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(64 * 1024, min(64 * 1024 * 1024, max_bytes // 8))
        self._lock = threading.Lock()
        self._ledger = Ledger()
        self._writer = Writer(directory, fsync, self._ledger)
        self._pending: list[bytes] = []  # lines appended, not yet written (commit() writes them)
        self._pending_records: list[Message] = []  # the same records, handed back if the disk refuses them
        self._pending_bytes = 0
        self._unwritten: list[Message] = []  # refused by the disk: for the worker to send from memory
        self._refused_at = -1e9  # monotonic time of the last refused write
        self.spooled = 0  # records written
        self.dropped = 0  # records lost to spool_max_bytes (oldest segments removed)
        self.errors = 0  # records the disk refused (handed back, not lost: see take_unwritten)
        self.last_error: str | None = None
        self._seq = 0  # segments written by write_front()

    @property
    def fsync(self) -> str:
        """The fsync policy: "always", "interval" or "never" (no more fsyncs once the process ends)."""
        return self._writer.fsync

    torn = property(lambda self: self._ledger.torn, doc="Torn or unreadable lines skipped in replays.")
    inherited = property(lambda self: self._ledger.inherited,
                         doc="Records of other processes (or earlier runs) read back from their segments.")
    handed_over = property(lambda self: self._ledger.handed_over,
                           doc="Records of ours whose segment another process took.")

    # -- writing -------------------------------------------------------------------------
    def usable(self) -> bool:
        """Whether writes are tried: not within a few seconds of the disk refusing one."""
        return time.monotonic() - self._refused_at >= _RETRY_AFTER

    def ending(self) -> None:
        """The process ends: no fsync from now on. The kernel has every record written, and an fsync on a
        busy disk (or a file made behind another process's journal commit) could outlast the exit's time."""
        self._writer.fsync = "never"

    def retry_now(self) -> None:
        """Try writes again at once, even within a few seconds of the disk refusing one (at the end)."""
        self._refused_at = -1e9

    def append(self, topic: str, key: bytes | None, value: bytes, timestamp_ms: int,
               headers: Headers | None = None) -> bool:
        """Add one record; it is written by the next :meth:`commit` (the worker commits after
        each batch, so a batch costs one write call). Returns False if a commit failed."""
        line = line_of(topic, key, value, timestamp_ms, headers)
        self._pending.append(line)
        self._pending_records.append(new_message(Message, (topic, key, value, timestamp_ms, headers)))
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
            writer = self._writer
            # the common case, one write call: a short one goes the careful way below
            if (writer.size + len(line) <= self.segment_bytes and self.fsync != "always"
                    and writer.write_one(line)):
                self.spooled += 1
                if writer.sync_due():
                    try:
                        writer.sync()
                    except OSError as exc:
                        self.last_error = f"spool fsync failed: {exc}"
                return True
            return self._write([line]) == 1

    def write_front(self, stem: str, messages: list[Message]) -> bool:
        """Write ``messages`` to a new segment named to sort right before the segment named ``stem`` (and
        after earlier ones written for it): failed records go back ahead of the records that followed them.
        False if the disk refused it: the records are handed back (see :meth:`take_unwritten`)."""
        lines = [line_of(*m) for m in messages]
        self._seq += 1
        path = os.path.join(self.directory, f"{stem}+{time.time_ns():020d}-{os.getpid()}-{self._seq:06d}{SUFFIX}")
        with self._lock:
            try:
                self._enforce_limit()
                write_whole(path, lines, sync=self.fsync != "never")
            except OSError as exc:
                self._refuse(exc, len(messages))
                self._unwritten.extend(messages)
                return False
            self._ledger.adopt(path, len(lines))
            self.spooled += len(lines)
            return True

    def take_unwritten(self) -> list[Message]:
        """The records the disk refused since the last call (they are not in the spool)."""
        with self._lock:
            out, self._unwritten = self._unwritten, []
        return out

    def _write(self, lines: list[bytes]) -> int:
        """Write ``lines`` (under the lock); the number written whole. A partial write is cut back."""
        writer = self._writer
        start = 0
        try:
            while start < len(lines):
                if writer.fd < 0 or writer.size >= self.segment_bytes:
                    writer.close()
                    self._enforce_limit()
                    writer.open_new()
                room, end = self.segment_bytes - writer.size, start
                while end < len(lines) and (end == start or room >= len(lines[end])):
                    room -= len(lines[end])
                    end += 1
                done = writer.write_lines(lines, start, end)
                self.spooled += done
                start += done
                if start < end:
                    raise OSError(writer.short_error or "short write")
            if writer.sync_due():
                writer.sync()
            return start
        except OSError as exc:
            self._refuse(exc, len(lines) - start)
            writer.close()
            return start

    def _refuse(self, exc: OSError, records: int) -> None:
        """The disk refused ``records`` records: counted, said, and writes not tried for a few seconds."""
        self.errors += records
        self.last_error = f"spool write failed: {exc.strerror or exc}"
        self._refused_at = time.monotonic()

    def sync(self) -> None:
        """fsync the open segment if it has unsynced records."""
        with self._lock:
            self._writer.sync()

    def tick(self) -> None:
        """Called by the worker now and then: the "interval" fsync of a quiet spool."""
        if self.fsync == "interval" and self._writer.dirty and self._writer.sync_due():
            with self._lock:
                try:
                    self._writer.sync()
                except OSError as exc:
                    self.last_error = f"spool fsync failed: {exc}"

    def open_index(self) -> int:
        """The index of the segment records are written to now (any record written so far is in it or older)."""
        return self._ledger.index

    def own_index_at_most(self, index: int) -> bool:
        """Whether a segment of ours with an index up to ``index`` is still there (not settled)."""
        return self._ledger.index_at_most(index)

    def rotate(self) -> None:
        """Close the open segment so that it can be claimed for replay (its fsync outside the lock:
        callers writing meanwhile go to a new segment and do not wait for it)."""
        self.commit()
        with self._lock:
            fd, dirty = self._writer.detach()  # forgets the segment (and removes it if it holds nothing)
        if fd >= 0:
            try:
                if dirty and self.fsync != "never":
                    os.fsync(fd)
            except OSError:
                pass
            finally:
                os.close(fd)

    def close(self) -> None:
        """Write what is appended and close the open segment (fsync first unless ``spool_fsync="never"``,
        or the process ends: see :meth:`ending`)."""
        self.rotate()

    def after_fork_in_child(self) -> None:
        """Forget the parent's open segment (its lock belongs to the parent) and its records."""
        self._lock = threading.Lock()
        self._writer.forget_after_fork()
        self._pending, self._pending_records, self._pending_bytes = [], [], 0  # the parent's: the parent writes them
        ledger = self._ledger
        self._ledger = Ledger()
        self._ledger.inherited, self._ledger.handed_over, self._ledger.torn = (
            ledger.inherited, ledger.handed_over, ledger.torn)
        self._writer = Writer(self.directory, self.fsync, self._ledger)

    def waiting(self) -> int:
        """Records of ours in the spool not yet read back: appended, or written to a segment."""
        with self._lock:
            return len(self._pending) + self._ledger.waiting()

    # -- reading -----------------------------------------------------------------------------
    def _segments(self) -> list[str]:
        """The destination's segments, oldest first; ours that are gone count as handed over."""
        paths = segments_in(self.directory)
        with self._lock:
            self._ledger.gone(set(paths), self._writer.path)
        return paths

    @staticmethod
    def has_records(directory: str) -> bool:
        """Whether a destination directory holds a non-empty segment (without opening a spool)."""
        try:
            with os.scandir(directory) as entries:
                return any(e.name.endswith(SUFFIX) and e.stat().st_size > 0 for e in entries)
        except OSError:
            return False

    def pending(self) -> bool:
        """Whether any segment (ours or another process's) holds records."""
        return bool(self._pending) or self._writer.size > 0 or self.bytes() > 0

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
        ledger = self._ledger
        for path in self._segments():
            if path == self._writer.path:
                continue  # ours, still being written: rotate() first
            index = ledger.index_of(path)
            if own_up_to is not None and (index or 0) > own_up_to:
                continue  # ours, newer than what a waiting flush covers
            if newest is not None and index is None and os.path.basename(path) > newest:
                continue  # another process's, newer than the flush
            segment = self.claim_path(path)
            if segment is not None:
                return segment
        return None

    def claim_path(self, path: str) -> Segment | None:
        """Claim one given segment (see :meth:`claim`)."""
        return claim(path, self._ledger, self._ledger.is_ours(path))

    def _enforce_limit(self) -> None:
        """Remove the oldest segments while the destination holds more than ``max_bytes`` (under the lock)."""
        segments = segments_in(self.directory)  # under the lock: no handed-over accounting here
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
            seg = claim(path)
            if seg is None:
                continue
            lines = seg.count_lines()
            own = self._ledger.forget(path)
            # another process's records (or ours read back before) become ours, and are lost
            self._ledger.inherited += lines - min(lines, own)
            seg.delete()
            self.dropped += lines
            total -= sizes.get(path, 0)

    def stats(self) -> dict[str, Any]:
        """Counters of the spool."""
        return {"spooled": self.spooled, "spool_dropped": self.dropped, "spool_torn": self.torn,
                "spool_errors": self.errors, "spool_bytes": self.bytes()}
