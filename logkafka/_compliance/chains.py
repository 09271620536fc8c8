"""Verifying the audit and security hash chains (see ``logkafka._chain``): per writer, the records
checked, gaps, records whose hash does not verify (edited or forged), duplicates, two different records
claiming one place (a forgery), records out of order in their partition, and records with no chain.

Streaming: a writer's records are taken in sequence order; one that comes early (its writer's records
spread over partitions) waits in a bounded buffer for the ones before it.
"""

from __future__ import annotations

import heapq
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from logkafka._chain import HEADER, Link, digest
from logkafka._compliance.period import Raw

_RECENT = 10_000  # hashes kept per writer to tell a duplicate from a different record at a place already seen
_PENDING = 200_000  # records of a writer waiting for earlier ones; past it the missing ones count as a gap
_LISTED = 1_000  # problems listed with their location (all are counted)


_EVENT_ID = re.compile(rb'"event_id"\s*:\s*"([^"\\]{1,200})"')


def _event_id(value: bytes | None) -> str | None:
    """A record's event id, found in its text (an envelope's is its payload's)."""
    found = _EVENT_ID.search(value or b"")
    return found.group(1).decode("utf-8", "replace") if found else None


def _slim(raw: Raw) -> Raw:
    """Where a record is, without its value and headers (kept while it waits for earlier records)."""
    found = _EVENT_ID.search(raw.value or b"")
    return Raw(raw.topic, raw.partition, raw.offset, raw.ts_ms, None, found.group(0) if found else None, None)


def _missing(first: int, last: int) -> str:
    if first == last:
        return f"record {first} of this writer is missing (removed?)"
    return f"records {first} to {last} of this writer are missing (removed?)"


def location(raw: Raw) -> dict[str, Any]:
    """Where a record is: topic, partition, offset, and its event id."""
    return {"topic": raw.topic, "partition": raw.partition, "offset": raw.offset, "event_id": _event_id(raw.value)}


@dataclass
class _Writer:
    name: str
    stream: str
    alg: str
    records: int = 0
    first_seq: int = 0
    first_prev: str = ""
    next: int = 0  # the next sequence number expected (0: none seen yet)
    last_hash: str = ""
    last_seq: int = 0
    pending: dict[int, tuple[Link, Raw]] = field(default_factory=dict)  # each Raw without its value (see _slim)
    early: dict[int, tuple[Link, Raw]] = field(default_factory=dict)  # before the first seen, not yet joined
    waiting: list[int] = field(default_factory=list)  # the pending places, a heap (its first is the earliest)
    recent: OrderedDict[int, str] = field(default_factory=OrderedDict)
    partition_seq: dict[tuple[str, int], int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("gaps", "missing", "mismatches", "duplicates", "conflicts", "reordered", "broken_links"), 0))


class Verifier:
    """Feed it every record of the audit and security topics of a period; :meth:`result` says what it found."""

    def __init__(self, key: bytes | None) -> None:
        self._key = key
        self._writers: dict[str, _Writer] = {}
        self.records = 0
        self.unchained = 0
        self.unverified = 0  # keyed records, and no key to check them with
        self.problems: list[dict[str, Any]] = []
        self.problem_count = 0

    def _problem(self, kind: str, writer: str | None, raw: Raw | None, detail: str) -> None:
        self.problem_count += 1
        if len(self.problems) < _LISTED:
            self.problems.append({"kind": kind, "writer": writer, "detail": detail,
                                  **(location(raw) if raw is not None else {})})

    def feed(self, raw: Raw) -> None:
        """Check one record."""
        self.records += 1
        header = None
        for name, value in reversed(raw.headers or ()):  # ours is added last
            if name == HEADER:
                header = value
                break
        link = Link.parse(header)
        if link is None:
            self.unchained += 1
            self._problem("unchained", None, raw, "no chain header: not written by a logkafka handler"
                          if header is None else "a chain header that is not one of ours")
            return
        w = self._writers.get(link.writer)
        if w is None:
            w = self._writers[link.writer] = _Writer(link.writer, link.writer.split(".", 1)[0], link.alg)
        w.records += 1
        if link.alg == "hmac-sha256" and self._key is None:
            self.unverified += 1
        elif digest(link.alg, self._key, link.writer, link.seq, link.prev, raw.key, raw.value or b"") != link.hash:
            w.counts["mismatches"] += 1
            self._problem("mismatch", w.name, raw, f"record {link.seq}: its hash does not verify: edited, or forged"
                          + ("" if self._key else " (without the key: or written with one)"))
        self._order(w, link, raw)
        self._place(w, link, raw)

    def _order(self, w: _Writer, link: Link, raw: Raw) -> None:
        where = (raw.topic, raw.partition)
        before = w.partition_seq.get(where)
        if before is not None and link.seq < before and link.seq not in w.recent:  # (a place seen: see _place)
            w.counts["reordered"] += 1
            self._problem("reordered", w.name, raw, f"record {link.seq} comes after record {before} in its partition")
        w.partition_seq[where] = max(before or 0, link.seq)

    def _place(self, w: _Writer, link: Link, raw: Raw) -> None:
        if w.next == 0:
            w.next, w.first_seq, w.first_prev = link.seq, link.seq, link.prev
        if link.seq < w.first_seq:  # earlier than any seen: read later from another partition
            self._early(w, link, raw)
            return
        if link.seq < w.next:
            seen = w.recent.get(link.seq)
            if seen is not None and seen != link.hash:
                w.counts["conflicts"] += 1
                self._problem("conflict", w.name, raw, f"another record already holds place {link.seq}: forged")
            else:
                w.counts["duplicates"] += 1  # delivered twice (at least once delivery), the same record
            return
        if link.seq > w.next:
            if link.seq in w.pending:
                w.counts["duplicates"] += 1
                return
            w.pending[link.seq] = (link, _slim(raw))
            heapq.heappush(w.waiting, link.seq)
            if len(w.pending) > _PENDING:
                self._skip_to(w, heapq.heappop(w.waiting))
            return
        self._accept(w, link, raw)
        self._drain(w)

    def _early(self, w: _Writer, link: Link, raw: Raw) -> None:
        """A record before the writer's first one seen: the chain grows backwards while the places join."""
        waiting = w.early.get(link.seq)
        if waiting is not None:
            if waiting[0].hash == link.hash:
                w.counts["duplicates"] += 1
            else:
                w.counts["conflicts"] += 1
                self._problem("conflict", w.name, raw, f"another record already holds place {link.seq}: forged")
            return
        w.early[link.seq] = (link, _slim(raw))
        self._join_early(w)
        if len(w.early) > _PENDING:
            self._early_gap(w)

    def _join_early(self, w: _Writer) -> None:
        while w.first_seq - 1 in w.early:
            link, raw = w.early.pop(w.first_seq - 1)
            self._join(w, link, raw, checked=True)

    def _join(self, w: _Writer, link: Link, raw: Raw, checked: bool) -> None:
        if checked and link.hash != w.first_prev:
            w.counts["broken_links"] += 1
            self._problem("broken_link", w.name, raw, f"record {link.seq + 1} does not follow record {link.seq}: "
                          "a record was replaced or inserted")
        w.first_seq, w.first_prev = link.seq, link.prev
        w.recent[link.seq] = link.hash
        if len(w.recent) > _RECENT:
            w.recent.popitem(last=False)

    def _early_gap(self, w: _Writer) -> None:
        """The early record nearest the first one joins it across a gap: the records between never came."""
        seq = max(w.early)
        link, raw = w.early.pop(seq)
        after = w.first_seq
        w.counts["gaps"] += 1
        w.counts["missing"] += after - seq - 1
        self._problem("gap", w.name, raw, f"{_missing(seq + 1, after - 1)} after record {seq}")
        self._join(w, link, raw, checked=False)
        self._join_early(w)

    def _drain(self, w: _Writer) -> None:
        while w.next in w.pending:
            self._accept(w, *w.pending.pop(w.next))
        while w.waiting and w.waiting[0] < w.next:  # taken already: off the heap
            heapq.heappop(w.waiting)

    def _accept(self, w: _Writer, link: Link, raw: Raw) -> None:
        if w.last_hash and link.prev != w.last_hash:
            w.counts["broken_links"] += 1
            self._problem("broken_link", w.name, raw, f"record {link.seq} does not follow record {link.seq - 1}: "
                          "a record was replaced or inserted")
        w.last_hash, w.last_seq, w.next = link.hash, link.seq, link.seq + 1
        w.recent[link.seq] = link.hash
        if len(w.recent) > _RECENT:
            w.recent.popitem(last=False)

    def _skip_to(self, w: _Writer, seq: int) -> None:
        """Records ``w.next`` to ``seq - 1`` never came: a gap, located at the record after it."""
        link, raw = w.pending.pop(seq)
        w.counts["gaps"] += 1
        w.counts["missing"] += seq - w.next
        self._problem("gap", w.name, raw, f"{_missing(w.next, seq - 1)} before record {seq}")
        w.last_hash = ""  # the record after a gap cannot be checked against the one before it
        self._accept(w, link, raw)
        self._drain(w)

    def result(self) -> dict[str, Any]:
        """What was found: ``intact`` when every record is chained, verifies, and no place is missing or taken
        twice; per writer its counts; the problems with where they are (the first 1,000)."""
        for w in self._writers.values():
            while w.pending:
                self._skip_to(w, min(w.pending))  # (the few left: the heap is not needed here)
            while w.early:
                self._early_gap(w)
        last = {w.last_hash: w.name for w in self._writers.values() if w.last_hash}
        writers = []
        for w in sorted(self._writers.values(), key=lambda w: w.name):
            follows = last.get(w.first_prev) if w.first_seq == 1 and w.first_prev else None
            writers.append({"writer": w.name, "stream": w.stream, "alg": w.alg, "records": w.records,
                            "first_seq": w.first_seq, "last_seq": w.last_seq, **w.counts,
                            "follows": follows, "restart": bool(w.first_seq == 1 and w.first_prev)})
        failing = ("gaps", "mismatches", "conflicts", "reordered", "broken_links")
        intact = self.unchained == 0 and not any(w[k] for w in writers for k in failing)
        return {"intact": intact, "records": self.records, "chained": self.records - self.unchained,
                "unchained": self.unchained, "unverified": self.unverified, "keyed": self._key is not None,
                "writers": writers, "problems": self.problems, "problem_count": self.problem_count}
