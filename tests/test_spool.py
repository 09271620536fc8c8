"""The disk spool on its own: segments, locking between processes, torn lines, the size limit."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from logkafka._spool import Spool, destination_dir


def spool_at(path: Path, **kwargs: object) -> Spool:
    kwargs.setdefault("max_bytes", 1 << 30)
    kwargs.setdefault("fsync", "never")
    return Spool(str(path), **kwargs)  # type: ignore[arg-type]


def replay_all(spool: Spool) -> list[tuple[str, bytes | None, bytes, int]]:
    out = []
    while (seg := spool.claim()) is not None:
        out += [(r.topic, r.key, r.value, r.timestamp_ms) for r in seg.records()]  # torn lines: counted by the spool
        seg.delete()
    return out


class TestSegments:
    def test_failed_records_go_back_ahead_of_their_segment(self, tmp_path: Path) -> None:
        """write_front(stem): the records come back right before the segment named ``stem`` (after the
        segments before it), each batch after the ones written for that stem before it."""
        from logkafka._message import Message

        spool = spool_at(tmp_path, segment_bytes=4096)
        for i in range(300):
            spool.append("t", None, b"%d" % i, 1)
        spool.commit()
        spool.rotate()
        segments = sorted(p.name for p in tmp_path.glob("*.seg"))
        assert len(segments) >= 2
        second = segments[1].removesuffix(".seg")
        first_count = (tmp_path / segments[0]).read_bytes().count(b"\n")
        assert spool.write_front(second, [Message("t", None, b"f1", 1, None), Message("t", None, b"f2", 1, None)])
        assert spool.write_front(second, [Message("t", None, b"f3", 1, None)])
        assert spool.spooled == 303 and spool.waiting() == 303
        values = [value for _, _, value, _ in replay_all(spool)]
        assert values == [b"%d" % i for i in range(first_count)] + [b"f1", b"f2", b"f3"] + [
            b"%d" % i for i in range(first_count, 300)]

    def test_records_come_back_in_order(self, tmp_path: Path) -> None:
        """Appended records are read back whole and in order, keys and timestamps included."""
        spool = spool_at(tmp_path, segment_bytes=4096)  # several segments
        sent = [("t", None if i % 3 == 0 else f"k{i}".encode(), f'{{"n":{i},"s":"ü\\n"}}'.encode(), 1000 + i)
                for i in range(500)]
        for rec in sent:
            assert spool.append(*rec)
        assert spool.spooled == 0  # appended, not written yet: commit() writes a batch in one call
        assert spool.commit()
        assert spool.spooled == 500
        spool.rotate()
        assert len(os.listdir(tmp_path)) > 3
        assert replay_all(spool) == sent
        assert os.listdir(tmp_path) == []

    def test_open_segment_is_not_claimed_until_rotated(self, tmp_path: Path) -> None:
        """The segment being written is not handed out for replay; after rotate() it is."""
        spool = spool_at(tmp_path)
        spool.append("t", None, b"1", 1)
        assert spool.claim() is None
        assert spool.pending()
        spool.rotate()
        seg = spool.claim()
        assert seg is not None
        assert [r.value for r in seg.records()] == [b"1"]

    def test_a_segment_replaced_while_claiming_is_not_claimed(self, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
        """A segment rewritten (os.replace) between open and lock: the old file, already sent, is not handed out."""
        import fcntl

        spool = spool_at(tmp_path)
        for i in range(3):
            spool.append("t", None, f"{i}".encode(), i)
        spool.commit()
        spool.rotate()
        (path,) = [str(tmp_path / name) for name in os.listdir(tmp_path)]
        real_flock = fcntl.flock

        def rewrite_then_lock(fd: int, op: int) -> None:
            # what `logkafka replay` does after delivering records 0 and 1: keep only record 2
            with open(path, "rb") as f:
                rest = f.read().splitlines(keepends=True)[2:]
            with open(path + ".new", "wb") as f:
                f.writelines(rest)
            os.replace(path + ".new", path)
            monkeypatch.setattr(fcntl, "flock", real_flock)
            real_flock(fd, op)

        monkeypatch.setattr(fcntl, "flock", rewrite_then_lock)
        assert spool.claim_path(path) is None
        seg = spool.claim_path(path)
        assert seg is not None and [r.value for r in seg.records()] == [b"2"]

    def test_torn_last_line_is_skipped_and_counted(self, tmp_path: Path) -> None:
        """A crash in the middle of a line: that line is skipped and counted, the others replay."""
        spool = spool_at(tmp_path)
        for i in range(3):
            spool.append("t", None, str(i).encode(), i)
        spool.rotate()
        (seg_path,) = tmp_path.iterdir()
        with open(seg_path, "ab") as f:
            f.write(b'["t",null,"half a rec')  # no newline: the writer died here
        with open(seg_path, "rb") as f:
            data = f.read()
        with open(seg_path, "wb") as f:  # and a garbled line in the middle
            f.write(data.replace(b'"1"', b'"1', 1))
        assert [v for _, _, v, _ in replay_all(spool)] == [b"0", b"2"]
        assert spool.torn == 2

    def test_size_limit_drops_oldest_segments_and_counts(self, tmp_path: Path) -> None:
        """Beyond max_bytes the oldest segments go; every record lost that way is counted."""
        spool = spool_at(tmp_path, max_bytes=200_000, segment_bytes=64 * 1024)
        value = b"x" * 1000
        for i in range(1000):
            spool.append("t", None, value, i)
        spool.rotate()
        assert spool.bytes() <= 200_000
        kept = replay_all(spool)
        assert spool.dropped > 0
        assert len(kept) + spool.dropped == 1000
        assert [ts for *_, ts in kept] == list(range(1000 - len(kept), 1000))  # the newest are kept

    def test_disk_error_is_counted_not_raised(self, tmp_path: Path) -> None:
        """A spool that cannot be written (a file where the directory should be) counts, never raises."""
        blocked = tmp_path / "file"
        blocked.write_text("not a directory")
        spool = spool_at(blocked / "sub")
        assert spool.append("t", None, b"v", 1) is True
        assert spool.commit() is False
        assert spool.errors == 1 and spool.last_error

    @pytest.mark.parametrize("fsync", ["always", "interval", "never"])
    def test_fsync_policies_write_the_same(self, tmp_path: Path, fsync: str) -> None:
        """Every fsync policy keeps every record."""
        spool = spool_at(tmp_path, fsync=fsync)
        for i in range(20):
            spool.append("t", None, b"v", i)
        spool.tick()
        spool.close()
        assert len(replay_all(spool)) == 20

    def test_destinations_are_separate(self, tmp_path: Path) -> None:
        """Each topic and cluster has its own directory."""
        a = destination_dir(str(tmp_path), "logs.a", "h1:9092")
        assert a != destination_dir(str(tmp_path), "logs.b", "h1:9092")
        assert a != destination_dir(str(tmp_path), "logs.a", "h2:9092")
        assert a == destination_dir(str(tmp_path), "logs.a", "h1:9092")


WRITER = textwrap.dedent("""
    import sys, time
    from logkafka._spool import Spool
    spool = Spool(sys.argv[1], max_bytes=1 << 30, fsync="always")
    for i in range(100):
        spool.append("t", None, b"other-%d" % i, i)
    spool.commit()
    print("written", flush=True)
    time.sleep(30)  # holds its open segment (and its lock) until killed
""")


class TestTwoProcesses:
    def test_live_writers_segment_is_not_replayed_and_a_dead_ones_is(self, tmp_path: Path) -> None:
        """Two processes on one spool directory: a live writer's segment is never claimed by the
        other; once the writer is killed, its records are replayed exactly once."""
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE)
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == b"written"
            mine = spool_at(tmp_path)
            mine.append("t", None, b"mine", 0)
            mine.rotate()
            first = replay_all(mine)
            assert [v for _, _, v, _ in first] == [b"mine"]  # the live writer's segment stays
            other = spool_at(tmp_path)
            assert other.claim() is None
        finally:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        second = replay_all(mine)
        assert [v for _, _, v, _ in second] == [b"other-%d" % i for i in range(100)]
        assert replay_all(spool_at(tmp_path)) == []

    def test_a_claimed_segment_is_not_claimed_twice(self, tmp_path: Path) -> None:
        """While one replayer holds a segment, another gets the next one or none."""
        writer = spool_at(tmp_path, segment_bytes=64 * 1024)
        for i in range(2):
            writer.append("t", None, str(i).encode(), i)
            writer.rotate()
        a, b = spool_at(tmp_path), spool_at(tmp_path)
        first, second = a.claim(), b.claim()
        assert first is not None and second is not None and first.path != second.path
        assert b.claim() is None
        first.release()  # given back unread: claimable again
        again = b.claim()
        assert again is not None and again.path == first.path


class TestFsyncPolicies:
    """What each ``spool_fsync`` policy syncs, seen from a handler whose records all go to the spool."""

    @pytest.mark.parametrize("policy", ["always", "interval", "never"])
    def test_when_segments_are_synced(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str) -> None:
        """"interval" syncs about once a second while records come, and a quiet spool's last records
        within about a second; "always" syncs every write; "never" never does (until close)."""
        import logging
        import threading
        import time

        import logkafka
        from logkafka.testing import free_port

        synced: list[float] = []  # when a spool segment was fsynced
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            real_fsync(fd)
            if os.readlink(f"/proc/self/fd/{fd}").endswith(".seg"):
                synced.append(time.monotonic())

        monkeypatch.setattr(os, "fsync", fsync)
        # nothing listens on the port, and librdkafka may hold 10 records: the rest go to the spool
        handler = logkafka.KafkaLogHandler(f"127.0.0.1:{free_port()}", "spool.fsync", spool_dir=str(tmp_path),
                                           spool_fsync=policy, flush_timeout=1,
                                           producer_config={"queue.buffering.max.messages": 10})
        lg = logging.getLogger(f"spool.fsync.{policy}")
        lg.handlers[:] = [handler]
        lg.propagate = False
        try:
            start = time.monotonic()
            while time.monotonic() - start < 3.5:  # ~700 records over 3.5 s: many spool writes
                lg.warning("record")
                time.sleep(0.005)
            last = time.monotonic()
            threading.Event().wait(2.0)
            stats = handler.stats()
            assert stats["spooled"] > 500 and stats["spool_errors"] == 0, stats
            during = [t for t in synced if t <= last]
            after = [t for t in synced if t > last]
            if policy == "always":
                assert len(during) > 50, len(during)  # a sync per write (the worker writes per turn)
            elif policy == "interval":
                # Not more often than once a second (measured on one clock: holds under any load); the upper
                # bounds are wide, for a loaded machine: they catch a spool that stops syncing, not jitter.
                assert 1 <= len(during) <= 4, [round(t - start, 2) for t in synced]
                gaps = [b - a for a, b in itertools.pairwise(during)]
                assert all(0.9 <= g <= 5.0 for g in gaps), gaps
                assert after and after[0] - last <= 5.0, [round(t - last, 2) for t in after]
            else:
                assert synced == []
        finally:
            handler.close()


def spooled_numbers(directory: Path) -> list[int]:
    """The ``n`` of every record left in the spool: each segment from its replay progress (``.pos``) on."""
    import orjson

    from logkafka._spool import settled_offset

    out = []
    for seg in sorted(directory.rglob("*.seg")):
        data = seg.read_bytes()[settled_offset(str(seg)):]
        out += [orjson.loads(orjson.loads(line)[2])["n"] for line in data.splitlines()]
    return out


class TestCloseWhileReplaying:
    @pytest.mark.parametrize("count", [50, 3_000])
    @pytest.mark.parametrize("pause", [0.0, 0.05, 0.3])
    def test_disk_durability_close_keeps_each_record_once(self, tmp_path: Path, count: int, pause: float) -> None:
        """durability="disk", no broker: at close every record is in the spool exactly once, none counted failed."""
        import logging
        import uuid

        from logkafka import KafkaLogHandler
        from logkafka.testing import free_port

        handler = KafkaLogHandler(bootstrap_servers=f"127.0.0.1:{free_port()}", topic="t", durability="disk",
                                  flush_timeout=1, spool_dir=str(tmp_path))
        lg = logging.getLogger(f"app.close.{uuid.uuid4().hex[:6]}")
        lg.propagate = False
        lg.setLevel(logging.INFO)
        lg.addHandler(handler)
        try:
            for n in range(count):
                lg.info("record %d", n, extra={"n": n})
            time.sleep(pause)  # the worker may be replaying the segment when close() comes
        finally:
            lg.removeHandler(handler)
            handler.close()
        spooled = spooled_numbers(tmp_path)
        assert sorted(spooled) == list(range(count))
        assert handler.stats()["failed"] == 0

    def test_frozen_broker_close_mid_replay_keeps_each_record_once(self, tmp_path: Path) -> None:
        """durability="disk", broker frozen (connections open, no answers): the worker is replaying the
        segment when close() purges the producer; the spool then holds every record exactly once."""
        import logging
        import uuid

        from logkafka import KafkaLogHandler
        from logkafka.testing import LocalBroker

        broker = LocalBroker().start()
        try:
            broker.create_topic("t", 1)
            handler = KafkaLogHandler(bootstrap_servers=broker.bootstrap_servers, topic="t", durability="disk",
                                      flush_timeout=1, spool_dir=str(tmp_path))
            lg = logging.getLogger(f"app.close.{uuid.uuid4().hex[:6]}")
            lg.propagate = False
            lg.setLevel(logging.INFO)
            lg.addHandler(handler)
            try:
                lg.info("before the freeze", extra={"n": -1})
                assert handler.flush(30)  # the broker answered: the handler knows it reachable
                broker.pause()
                for n in range(50):
                    lg.info("record %d", n, extra={"n": n})
                time.sleep(1.0)  # the thread's first look at the broker (0.2 s, unanswered), then the replay
                assert handler.stats()["in_flight"] > 0  # produced from the segment, unanswered
            finally:
                lg.removeHandler(handler)
                handler.close()
        finally:
            broker.stop()
        spooled = spooled_numbers(tmp_path)
        assert sorted(spooled) == list(range(50))  # record -1 was delivered before the freeze
        assert handler.stats()["failed"] == 0


class _FailedMessage:
    """What a failed delivery report's message offers (confluent-kafka's ``Message`` cannot be made in Python)."""

    def __init__(self, value: bytes) -> None:
        self._value = value

    def topic(self) -> str:
        return "t"

    def key(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)

    def headers(self) -> None:
        return None


def test_a_permanent_delivery_error_is_counted_failed_and_said_not_spooled(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's row "a permanent delivery error (not authorized, invalid topic)": counted as failed and
    said, not spooled (no retry can help), while a transient one (a timeout) is spooled. (Pure logic: the
    embedded broker has no ACLs and takes any topic, size or timestamp, so it cannot refuse a record.)"""
    import threading

    from confluent_kafka import KafkaError

    from logkafka._delivery import Deliveries
    from logkafka._link import Link
    from logkafka._spill import Spill

    spool = spool_at(tmp_path)
    deliveries = Deliveries([], 1, threading.Event(), None)
    spill = Spill(spool, disk=False, topic="t", link=Link("127.0.0.1:9", True), deliveries=deliveries, barriers=[])
    for code, value in ((KafkaError.TOPIC_AUTHORIZATION_FAILED, b"denied"), (KafkaError._MSG_TIMED_OUT, b"late"),
                        (KafkaError.TOPIC_EXCEPTION, b"invalid")):
        deliveries.failures.append((KafkaError(code), _FailedMessage(value), None))
    spill.handle_failures()
    spill.commit()
    assert deliveries.failed == 2 and deliveries.reported_failed == 3
    assert [value for _, _, value, _ in replay_all(spool)] == [b"late"]
    said = [line for line in capsys.readouterr().err.splitlines() if "not delivered" in line]
    assert said and all(line.startswith("logkafka: ") for line in said), said


@pytest.mark.parametrize("other", [None, "caller-chosen", "fedcba98-7654-8321-8fed-000000000002"],
                         ids=["one-process", "a-caller's-own-id", "another-process"])
def test_failed_records_go_back_in_the_order_logged(tmp_path: Path, other: str | None) -> None:
    """librdkafka reports failures out of order: records whose event ids are one process's (one prefix, then
    the sequence in hex) go back to the spool in the order those ids were made (10 after 9: the sequence is
    fixed-width); when one id is not that process's, nothing tells the order, and the reports' is kept."""
    import threading

    from confluent_kafka import KafkaError

    from logkafka._delivery import Deliveries
    from logkafka._link import Link
    from logkafka._spill import Spill

    reported = [10, 3, 9, 0, 2]
    ids = {n: f"0123abcd-4567-8901-8345-{n:012x}" for n in reported}
    if other is not None:
        ids[2] = other
    spool = spool_at(tmp_path)
    deliveries = Deliveries([], 1, threading.Event(), None)
    spill = Spill(spool, disk=False, topic="t", link=Link("127.0.0.1:9", True), deliveries=deliveries, barriers=[])
    for n in reported:
        headers = [("content-type", b"application/json"), ("event_id", ids[n].encode())]
        deliveries.failures.append((KafkaError(KafkaError._MSG_TIMED_OUT), _FailedMessage(b"%d" % n), headers))
    spill.handle_failures()
    spill.commit()
    got = [int(value) for _, _, value, _ in replay_all(spool)]
    assert got == (sorted(reported) if other is None else reported)
