"""Tamper evidence for audit and security records: each writer's records form a hash chain.

A writer is one process's audit stream, or its security stream (a forked child is a writer of its
own). Each of its records carries the Kafka header ``logkafka.chain``::

    v1 <alg> <writer> <seq> <prev> <hash>

``seq`` counts the writer's records from 1; ``prev`` is the hash of its record ``seq - 1`` (``-`` for the
first, or, after a restart, the last hash of the previous run's writer of the same stream, when the
spool kept it); ``hash`` covers the writer, seq, prev, key and value, exactly as they are sent.
``alg`` is ``sha256``, or ``hmac-sha256`` with ``audit_chain_key``: then no one without the key can
make a record that verifies. See the README's "Compliance" for what this proves and what it cannot.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import uuid
from collections.abc import Callable
from typing import NamedTuple

from logkafka._message import Message

HEADER = "logkafka.chain"
VERSION = "v1"


class Link(NamedTuple):
    """One record's chain member, as its header says."""

    alg: str
    writer: str
    seq: int
    prev: str  # "" for none
    hash: str

    def header(self) -> bytes:
        return f"{VERSION} {self.alg} {self.writer} {self.seq} {self.prev or '-'} {self.hash}".encode()

    @classmethod
    def parse(cls, value: bytes | str | None) -> Link | None:
        """The link of a header value; None when it is not one of ours (missing, malformed)."""
        if value is None:
            return None
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        parts = text.split(" ")
        if len(parts) != 6 or parts[0] != VERSION or not parts[3].isdigit():
            return None
        return cls(parts[1], parts[2], int(parts[3]), "" if parts[4] == "-" else parts[4], parts[5])


def digest(alg: str, key: bytes | None, writer: str, seq: int, prev: str, record_key: bytes | None,
           value: bytes) -> str:
    """The hash of one chain member (hex): what the writer puts in its header and the verifier recomputes. The
    topic is not in it: a copy of the trail (a mirror, a backup cluster's renamed topic) still verifies."""
    data = b"%s\0%s\0%d\0%s\0%d\0" % (VERSION.encode(), writer.encode(), seq, prev.encode(),
                                         -1 if record_key is None else len(record_key))
    data += (record_key or b"") + value  # the key's length is in the prefix: key and value cannot be confused
    if alg == "hmac-sha256":
        if key is None:
            raise ValueError("hmac-sha256 needs the key")
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


class Chain:
    """The chain of one writer: links its records in the order they are written (callers hold ``lock``)."""

    def __init__(self, stream: str, key: bytes | None, head_path: str | None) -> None:
        self.stream = stream
        self._key = key
        self._alg = "hmac-sha256" if key else "sha256"
        self._head_path = head_path  # where the last hash is kept, for the next run to name
        self._pid = os.getpid()
        self.writer = self._new_writer()
        self.seq = 0
        self.prev = _read_head(head_path)  # the previous run's last hash, when the spool kept it

    def _new_writer(self) -> str:
        return f"{self.stream}.{uuid.uuid4().hex}"

    def link(self, message: Message) -> tuple[Message, tuple[int, str]]:
        """``message`` with its chain header, and what :meth:`unlink` needs to take it back."""
        if os.getpid() != self._pid:  # a forked child: a writer of its own, with no predecessor
            self._pid, self.writer, self.seq, self.prev = os.getpid(), self._new_writer(), 0, ""
        before = (self.seq, self.prev)
        topic, key, value, ts, headers = message
        seq = self.seq + 1
        h = digest(self._alg, self._key, self.writer, seq, self.prev, key, value)
        header = (HEADER, Link(self._alg, self.writer, seq, self.prev, h).header())
        self.seq, self.prev = seq, h
        _write_head(self._head_path, h)
        return Message(topic, key, value, ts, [*headers, header] if headers else [header]), before

    def unlink(self, before: tuple[int, str]) -> None:
        """The record linked last was not written: its place in the chain goes to the next one."""
        self.seq, self.prev = before
        _write_head(self._head_path, self.prev)


class Chains:
    """The chains of a worker serving the audit and security streams; one lock orders their links."""

    def __init__(self, key: bytes | None, head_path: Callable[[str], str | None]) -> None:
        self.lock = threading.Lock()
        self._key = key
        self._head_path = head_path
        self._chains: dict[str, Chain] = {}

    def of(self, stream: str) -> Chain:
        """The chain of ``stream`` (made on its first record; callers hold ``lock``)."""
        chain = self._chains.get(stream)
        if chain is None:
            chain = self._chains[stream] = Chain(stream, self._key, self._head_path(stream))
        return chain

    def linked(self, stream: str, message: Message) -> Message:
        """``message`` linked into the chain of ``stream``."""
        with self.lock:
            return self.of(stream).link(message)[0]

    def write(self, stream: str, message: Message, write: Callable[[Message], bool]) -> bool:
        """Link ``message`` and ``write`` it, in one order (the spool replays in the order it was written); a
        write that fails gives the record's place in the chain back. Whether it was written."""
        with self.lock:
            chain = self.of(stream)
            linked, before = chain.link(message)
            if write(linked):
                return True
            chain.unlink(before)
            return False


def _read_head(path: str | None) -> str:
    if path is None:
        return ""
    try:
        with open(path, encoding="ascii") as f:
            head = f.read().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return head if len(head) == 64 and all(c in "0123456789abcdef" for c in head) else ""


def _write_head(path: str | None, head: str) -> None:
    """Keep the chain's last hash (atomically; no fsync: a lost head only leaves the next run unlinked)."""
    if path is None:
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="ascii") as f:
            f.write(head)
        os.replace(tmp, path)
    except OSError:
        pass
