"""The "nothing lost" promise under ordinary, harsh faults, against the real broker process.

Each scenario counts records by a sequence number (``seq``), and each handler's
ledger must balance afterwards (see ``assert_ledger``): accepted + inherited =
delivered + in flight + queued + spooled + handed over + lost, by reason.
Apps run as subprocesses where the fault is the process's own (a kill, a full
disk, multiprocessing, a signal).
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from _support import assert_in_order_per_key, assert_ledger, logger_with
from _support import new_topic as shared_new_topic

import logkafka
from logkafka.testing import LocalBroker, free_port, read_topic

REPO = str(Path(__file__).resolve().parent.parent)


def child_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("LOGKAFKA_SPOOL_DIR", None)  # each app names its own spool
    return env


def run_app(code: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=timeout, env=child_env(), check=False)


def start_app(code: str, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], text=True, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.PIPE, **kwargs)


def stop_app(app: subprocess.Popen[str]) -> None:
    """Kill the app if it still runs, and close its pipes."""
    app.kill()
    app.wait()
    for pipe in (app.stdin, app.stdout, app.stderr):
        if pipe is not None:
            pipe.close()


def last_json(stdout: str) -> dict[str, Any]:
    return json.loads(stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def seq_counts(servers: str, topic: str, expected: int, timeout: float = 90) -> tuple[set[int], int]:
    """(distinct seq values, messages) in ``topic``."""
    msgs = read_topic(servers, topic, expected=expected, timeout=timeout, idle=1.5)
    return {m.data["seq"] for m in msgs}, len(msgs)


def new_topic(broker: LocalBroker) -> str:
    return shared_new_topic(broker, "rel")


@pytest.fixture
def broker(own_broker: LocalBroker) -> LocalBroker:
    """This file's tests stop and restart their broker: one of their own."""
    return own_broker


# -- disk trouble -------------------------------------------------------------------------------
FULL_DISK_APP = """
    import json, logging, resource, signal, sys
    import logkafka
    servers, topic, spool, durability, count = sys.argv[1:6]
    # every file this process writes is limited to 20 kB: the spool's disk is full after a few hundred
    # records (SIGXFSZ ignored, so the write fails with EFBIG as on a full disk, instead of killing us)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
    handler = logkafka.KafkaLogHandler(servers, topic, spool_dir=spool, durability=durability, flush_timeout=30,
                                       producer_config={"message.timeout.ms": 3000})
    log = logging.getLogger("app")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    if sys.stdin.readline().strip() != "go":
        sys.exit(2)
    for i in range(int(count)):
        log.info("record %d", i, extra={"seq": i})
    print("logged", flush=True)
    if sys.stdin.readline().strip() != "flush":
        sys.exit(2)
    ok = handler.flush(90)
    print(json.dumps({"flushed": ok, "stats": handler.stats()}, default=str), flush=True)
    log.removeHandler(handler)
    handler.close()
"""


class TestDiskTrouble:
    def test_disk_durability_with_a_full_disk_and_a_healthy_broker(self, broker: LocalBroker, tmp_path: Path) -> None:
        """durability="disk", the spool's disk refuses writes, Kafka is fine: every record is delivered (from
        memory), the loss of durability is said, and no record is said to be dropped."""
        topic = new_topic(broker)
        app = start_app(FULL_DISK_APP, broker.bootstrap_servers, topic, str(tmp_path / "spool"), "disk", "5000")
        out, err = app.communicate("go\nflush\n", timeout=180)
        assert app.returncode == 0, err
        result = last_json(out)
        assert result["flushed"] is True, result
        ledger = assert_ledger(result["stats"])
        assert ledger["lost"] == {} and ledger["accepted"] == 5000, ledger
        assert result["stats"]["spool_errors"] > 0  # the disk did refuse writes
        assert "spool write failed" in err and "from memory" in err, err
        assert "dropped" not in err and "lost" not in err, err
        seen, _ = seq_counts(broker.bootstrap_servers, topic, 5000)
        assert seen == set(range(5000)), len(seen)

    def test_outage_with_a_full_spool_disk_delivers_once_kafka_is_back(self, tmp_path: Path) -> None:
        """durability="memory", no broker and a full spool disk: records wait in memory (what the disk
        takes, on disk, exactly counted), and all arrive once the broker starts; the ledger balances."""
        port = free_port()
        topic = f"rel.{uuid.uuid4().hex[:10]}"
        app = start_app(FULL_DISK_APP, f"127.0.0.1:{port}", topic, str(tmp_path / "spool"), "memory", "3000")
        assert app.stdin is not None and app.stdout is not None
        try:
            app.stdin.write("go\n")
            app.stdin.flush()
            assert app.stdout.readline().strip() == "logged"
            time.sleep(5)  # beyond message.timeout.ms: the records failed over to the (full) spool
            with LocalBroker(port) as b:
                b.create_topic(topic, 3)
                out, err = app.communicate("flush\n", timeout=180)
                assert app.returncode == 0, err
                result = last_json(out)
                assert result["flushed"] is True, (result, err)
                ledger = assert_ledger(result["stats"])
                assert ledger["lost"] == {}, ledger
                seen, _ = seq_counts(b.bootstrap_servers, topic, 3000)
                assert seen == set(range(3000)), len(seen)
        finally:
            stop_app(app)


class TestDiskDurability:
    def test_many_callers_write_ahead_while_the_thread_replays(self, broker: LocalBroker, tmp_path: Path) -> None:
        """durability="disk": four threads write their records to the spool while the handler's thread
        rotates and replays segments (a new segment is never claimed before its writer holds it): all
        arrive, flush() settles, and the ledger balances. Run in a subprocess: a deadlock fails by timeout."""
        topic = new_topic(broker)
        done = run_app("""
            import json, logging, sys, threading
            import logkafka
            servers, topic, spool = sys.argv[1:4]
            handler = logkafka.KafkaLogHandler(servers, topic, spool_dir=spool, durability="disk", flush_timeout=30)
            log = logging.getLogger("app")
            log.propagate = False
            log.setLevel(logging.INFO)
            log.addHandler(handler)

            def work(k):
                for i in range(k * 15_000, (k + 1) * 15_000):
                    log.info("record %d", i, extra={"seq": i})

            threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            ok = handler.flush(90)
            print(json.dumps({"flushed": ok, "stats": handler.stats()}, default=str), flush=True)
            handler.close()
        """, broker.bootstrap_servers, topic, str(tmp_path / "spool"), timeout=150)
        assert done.returncode == 0, done.stderr
        result = last_json(done.stdout)
        assert result["flushed"] is True, result
        ledger = assert_ledger(result["stats"])
        assert ledger["lost"] == {} and ledger["delivered"] == 60_000, ledger
        seen, total = seq_counts(broker.bootstrap_servers, topic, 60_000)
        assert seen == set(range(60_000)) and total == 60_000, (len(seen), total)


    def test_an_idle_handler_flushes_at_once_with_no_broker(self, tmp_path: Path) -> None:
        """durability="disk", nothing logged, nothing in the spool, no broker: a flush has nothing to wait for
        (every flush puts a barrier in the spooling queue; it must not wait for a look at a broker that will
        not answer)."""
        handler = logkafka.KafkaLogHandler(f"127.0.0.1:{free_port()}", "rel.idle", spool_dir=str(tmp_path),
                                           durability="disk", flush_timeout=30)
        try:
            assert handler.flush(5) is True
        finally:
            handler.close()


class TestHardenedPod:
    def test_unwritable_default_spool_still_delivers_every_stream(self, broker: LocalBroker) -> None:
        """A read-only root filesystem (the default spool directory cannot be made) and Kafka up: every
        application, audit and security record is delivered from memory; the missing spool is said once."""
        topic = new_topic(broker)
        broker.create_topic(f"{topic}.audit", 1)
        broker.create_topic(f"{topic}.security", 1)
        done = subprocess.run([sys.executable, "-c", textwrap.dedent("""
            import json, logging, sys
            import logkafka
            servers, topic = sys.argv[1:3]
            handler = logkafka.KafkaLogHandler(servers, topic, audit_topic=topic + ".audit",
                                               security_topic=topic + ".security")
            logging.getLogger().addHandler(handler)
            logging.getLogger().setLevel(logging.INFO)
            for i in range(10):
                logging.getLogger("app").info("record", extra={"seq": i})
                logkafka.audit("order.placed", "u", f"order/{i}", "success")
                logkafka.security("login", "u", f"app/{i}", "deny")
            ok = handler.flush(60)
            print(json.dumps({"flushed": ok, "stats": handler.stats()}, default=str))
        """), broker.bootstrap_servers, topic], capture_output=True, text=True, timeout=120,
            env={**{k: v for k, v in child_env().items() if k != "LOGKAFKA_SPOOL_DIR"},
                 "XDG_CACHE_HOME": "/proc/1/no-such-dir"}, check=False)
        assert done.returncode == 0, done.stderr
        result = last_json(done.stdout)
        assert result["flushed"] is True, result
        assert result["stats"]["spool_off"], result["stats"]
        ledger = assert_ledger(result["stats"])
        assert ledger["lost"] == {} and ledger["delivered"] == 30, ledger
        assert done.stderr.count("no disk spool") == 1, done.stderr
        for name in (topic, f"{topic}.audit", f"{topic}.security"):
            got = read_topic(broker.bootstrap_servers, name, expected=10, timeout=60)
            assert len(got) == 10, (name, len(got))


# -- kills and signals ----------------------------------------------------------------------------
TIGHT_LOOP_APP = """
    import logging, mmap, struct, sys
    import logkafka
    servers, topic, spool, counter = sys.argv[1:5]
    with open(counter, "r+b") as f:
        calls = mmap.mmap(f.fileno(), 8)
    handler = logkafka.KafkaLogHandler(servers, topic, spool_dir=spool, durability="disk", spool_fsync="always",
                                       flush_timeout=30)
    log = logging.getLogger("app")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    print("ready", flush=True)
    i = 0
    while True:
        log.info("record %d", i, extra={"seq": i})
        i += 1
        calls[0:8] = struct.pack("<q", i)  # logging calls that returned
"""


def counter_file(tmp_path: Path) -> Path:
    path = tmp_path / "calls"
    path.write_bytes(b"\0" * 8)
    return path


def calls_returned(path: Path) -> int:
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 8, access=mmap.ACCESS_READ) as m:
        return int(struct.unpack("<q", m[0:8])[0])


class TestKilled:
    def test_sigkill_in_a_tight_loop_with_disk_durability_loses_no_returned_call(
            self, broker: LocalBroker, tmp_path: Path) -> None:
        """durability="disk", spool_fsync="always", logging as fast as it can, SIGKILL: every logging call
        that returned is delivered after the next start; duplicates are bounded by a replay step."""
        topic = new_topic(broker)
        spool = str(tmp_path / "spool")
        calls = counter_file(tmp_path)
        app = start_app(TIGHT_LOOP_APP, broker.bootstrap_servers, topic, spool, str(calls))
        try:
            assert app.stdout is not None
            assert app.stdout.readline().strip() == "ready"
            time.sleep(1.5)  # (an fsync per record: the disk is busy for every test meanwhile)
            app.send_signal(signal.SIGKILL)
            app.wait()
        finally:
            stop_app(app)
        returned = calls_returned(calls)
        assert returned > 100, returned
        handler = logkafka.KafkaLogHandler(broker.bootstrap_servers, topic, spool_dir=spool, durability="disk",
                                           flush_timeout=30)
        try:
            assert handler.flush(120) is True
            ledger = assert_ledger(handler.stats())
            assert ledger["lost"] == {}, ledger
        finally:
            handler.close()
        seen, total = seq_counts(broker.bootstrap_servers, topic, returned)
        assert set(range(returned)) <= seen, len(set(range(returned)) - seen)
        assert seen <= set(range(returned + 1))  # at most the call in progress beside them
        assert total - len(seen) <= 10_000, total - len(seen)

    def test_audit_records_survive_a_sigkill_with_memory_durability(self, tmp_path: Path) -> None:
        """Audit and security records always use durability="disk": an app with the default ("memory"),
        no broker reachable, SIGKILLed right after its audit() and security() calls returned, leaves every
        one of them in the spool, and the next start delivers them (its application records are gone, as
        the README's table says of "memory")."""
        port = free_port()
        servers, topic, spool = f"127.0.0.1:{port}", f"rel.kill.{uuid.uuid4().hex[:8]}", str(tmp_path / "spool")
        app = start_app("""
            import logging, sys, time
            import logkafka
            servers, topic, spool = sys.argv[1:4]
            handler = logkafka.KafkaLogHandler(servers, topic, spool_dir=spool, audit_topic=topic + ".audit",
                                               security_topic=topic + ".security")
            logging.getLogger().addHandler(handler)
            logging.getLogger().setLevel(logging.INFO)
            for i in range(300):
                logging.getLogger("app").info("record", extra={"seq": i})
                logkafka.audit("order.placed", "u", f"order/{i}", "success", context={"seq": i})
                logkafka.security("login", "u", f"app/{i}", "deny", context={"seq": i})
            print("logged", flush=True)
            time.sleep(60)
        """, servers, topic, spool)
        try:
            assert app.stdout is not None
            assert app.stdout.readline().strip() == "logged"
            app.send_signal(signal.SIGKILL)
            app.wait()
        finally:
            stop_app(app)
        with LocalBroker(port) as broker:
            for name in (topic, f"{topic}.audit", f"{topic}.security"):
                broker.create_topic(name, 1)
            handler = logkafka.KafkaLogHandler(servers, topic, spool_dir=spool, audit_topic=topic + ".audit",
                                               security_topic=topic + ".security", flush_timeout=30)
            try:
                assert handler.flush(60) is True
                ledger = assert_ledger(handler.stats())
            finally:
                handler.close()
            assert ledger["inherited"] == ledger["delivered"] == 600 and ledger["lost"] == {}, ledger
            for name in (f"{topic}.audit", f"{topic}.security"):
                got = read_topic(broker.bootstrap_servers, name, expected=300, timeout=60)
                kept = sorted(m.data["context"]["seq"] for m in got)
                assert kept == list(range(300)), (name, len(kept))

    def test_killed_during_a_replay_sends_at_most_a_step_again(self, broker: LocalBroker, tmp_path: Path) -> None:
        """A replay of 120,000 spooled records cut by Python's default SIGTERM (no logging.shutdown): the next
        start resumes from the replay's committed progress, not from the start of the 64 MB segments."""
        from logkafka._spool import Spool, destination_dir

        topic = new_topic(broker)
        spool_dir = str(tmp_path / "spool")
        earlier = Spool(destination_dir(spool_dir, topic, broker.bootstrap_servers), max_bytes=1 << 32,
                        fsync="never")
        n = 120_000
        for i in range(n):
            earlier.append(topic, None, orjson.dumps({"message": "spooled", "seq": i}), 1_700_000_000_000 + i)
        earlier.close()
        app = start_app("""
            import logging, sys, time
            import logkafka
            servers, topic, spool = sys.argv[1:4]
            handler = logkafka.KafkaLogHandler(servers, topic, spool_dir=spool, flush_timeout=30)
            while True:
                print(handler.stats()["replayed"], flush=True)
                time.sleep(0.05)
        """, broker.bootstrap_servers, topic, spool_dir)
        try:
            assert app.stdout is not None
            for line in app.stdout:
                if int(line) >= 40_000:
                    break
            app.send_signal(signal.SIGTERM)  # Python's default: the process ends at once
            assert app.wait(30) == -signal.SIGTERM
        finally:
            stop_app(app)
        handler = logkafka.KafkaLogHandler(broker.bootstrap_servers, topic, spool_dir=spool_dir, flush_timeout=30)
        try:
            assert handler.flush(120) is True
            ledger = assert_ledger(handler.stats())
            assert ledger["inherited"] < n  # the part the first process settled is not read again
        finally:
            handler.close()
        seen, total = seq_counts(broker.bootstrap_servers, topic, n, timeout=120)
        assert seen == set(range(n)), n - len(seen)
        assert total - n <= 20_000, total - n  # a replay step (10,000) and what was in flight

    def test_opt_in_sigterm_turns_a_kubernetes_stop_into_an_orderly_shutdown(
            self, broker: LocalBroker, tmp_path: Path) -> None:
        """handle_sigterm=True and an app with no SIGTERM handler: SIGTERM becomes SystemExit(143), so
        logging.shutdown() runs and every returned call is delivered (durability "memory", no spool)."""
        topic = new_topic(broker)
        calls = counter_file(tmp_path)
        app = start_app("""
            import logging, mmap, struct, sys, time
            import logkafka
            servers, topic, counter = sys.argv[1:4]
            with open(counter, "r+b") as f:
                calls = mmap.mmap(f.fileno(), 8)
            # no spool: the memory budget holds the burst (beyond it, records would be dropped and said)
            handler = logkafka.KafkaLogHandler(servers, topic, spool_dir=False, handle_sigterm=True, flush_timeout=30,
                                               memory_budget="512MiB")
            log = logging.getLogger("app")
            log.setLevel(logging.INFO)
            log.addHandler(handler)
            print("ready", flush=True)
            i = 0
            while True:
                log.info("record %d", i, extra={"seq": i})
                i += 1
                calls[0:8] = struct.pack("<q", i)
                if not i % 100:
                    time.sleep(0.001)
        """, broker.bootstrap_servers, topic, str(calls))
        try:
            assert app.stdout is not None
            assert app.stdout.readline().strip() == "ready"
            time.sleep(2)
            app.send_signal(signal.SIGTERM)
            assert app.wait(60) == 143
        finally:
            stop_app(app)
        returned = calls_returned(calls)
        seen, _ = seq_counts(broker.bootstrap_servers, topic, returned)
        assert set(range(returned)) <= seen, len(set(range(returned)) - seen)

    def test_handle_sigterm_leaves_the_apps_own_handler(self) -> None:
        """An app that handles SIGTERM itself keeps its handler; without one, ours is installed."""
        previous = signal.getsignal(signal.SIGTERM)

        def apps_own(signum: int, frame: Any) -> None:
            pass

        try:
            signal.signal(signal.SIGTERM, apps_own)
            h = logkafka.KafkaLogHandler(f"127.0.0.1:{free_port()}", "t", handle_sigterm=True, spool_dir=False)
            assert signal.getsignal(signal.SIGTERM) is apps_own
            h.close()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            h = logkafka.KafkaLogHandler(f"127.0.0.1:{free_port()}", "t", handle_sigterm=True, spool_dir=False)
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, apps_own)
            h.close()
        finally:
            signal.signal(signal.SIGTERM, previous)
        with pytest.raises(ValueError, match="handle_sigterm"):
            logkafka.KafkaLogHandler("127.0.0.1:1", "t", handle_sigterm="sometimes")


# -- processes ---------------------------------------------------------------------------------------
MP_APP = """
    import logging, multiprocessing, sys
    import logkafka

    servers, topic, method, mode = sys.argv[1:5]
    log = logging.getLogger("app")
    if not log.handlers:  # the parent, and each spawned child (which imports this file again)
        log.addHandler(logkafka.KafkaLogHandler(servers, topic, spool_dir=False, flush_timeout=30))
        log.setLevel(logging.INFO)
        log.propagate = False


    def child(start):
        for i in range(start, start + 500):
            log.info("from a child %d", i, extra={"seq": i})  # no flush: the child just returns


    def task(i):
        log.info("from a pool worker %d", i, extra={"seq": i})
        return i


    if __name__ == "__main__":
        ctx = multiprocessing.get_context(method)
        if mode == "process":
            p = ctx.Process(target=child, args=(0,))
            p.start()
            p.join()
            sys.exit(p.exitcode)
        pool = ctx.Pool(2)
        assert pool.map(task, range(600)) == list(range(600))
        pool.close()
        pool.join()
"""


class TestProcesses:
    @pytest.mark.parametrize(("method", "mode", "count"), [
        ("fork", "process", 500), ("spawn", "process", 500), ("forkserver", "process", 500),
        ("fork", "pool", 600), ("spawn", "pool", 600),
    ])
    def test_children_deliver_without_a_flush(self, broker: LocalBroker, tmp_path: Path, method: str, mode: str,
                                              count: int) -> None:
        """multiprocessing ends children with os._exit (no atexit, no logging.shutdown): a finalizer the
        handler registers in the child delivers what it logged."""
        topic = new_topic(broker)
        app = tmp_path / "app.py"
        app.write_text(textwrap.dedent(MP_APP))
        done = subprocess.run([sys.executable, str(app), broker.bootstrap_servers, topic, method, mode],
                              capture_output=True, text=True, timeout=180, env=child_env(), check=False)
        assert done.returncode == 0, done.stderr
        seen, total = seq_counts(broker.bootstrap_servers, topic, count)
        assert seen == set(range(count)) and total == count, (len(seen), total)

    def test_four_processes_sharing_a_spool_through_an_outage(self, tmp_path: Path) -> None:
        """Four processes on one spool_dir log through an outage (their records fail over to the spool and
        some replay each other's segments): all records arrive and each one's ledger balances."""
        port = free_port()
        topic = f"rel.{uuid.uuid4().hex[:10]}"
        code = """
            import json, logging, sys
            import logkafka
            servers, topic, spool, who = sys.argv[1:5]
            handler = logkafka.KafkaLogHandler(servers, topic, spool_dir=spool, flush_timeout=30, producer_config={
                "message.timeout.ms": 2000, "queue.buffering.max.messages": 200})
            log = logging.getLogger("app")
            log.propagate = False
            log.setLevel(logging.INFO)
            log.addHandler(handler)
            for i in range(1500):
                log.info("record", extra={"seq": int(who) * 1500 + i})
            print("logged", flush=True)
            sys.stdin.readline()
            ok = handler.flush(90)
            print(json.dumps({"flushed": ok, "stats": handler.stats()}, default=str), flush=True)
            handler.close()
        """
        apps = [start_app(code, f"127.0.0.1:{port}", topic, str(tmp_path / "spool"), str(k)) for k in range(4)]
        try:
            for app in apps:
                assert app.stdout is not None
                assert app.stdout.readline().strip() == "logged"
            time.sleep(3)  # the records time out (message.timeout.ms) and go to the spool
            with LocalBroker(port) as b:
                b.create_topic(topic, 3)
                results = [app.communicate("go\n", timeout=180) for app in apps]
                for app, (out, err) in zip(apps, results, strict=True):
                    assert app.returncode == 0, err
                    result = last_json(out)
                    assert result["flushed"] is True, (result, err)
                    assert_ledger(result["stats"])
                    assert result["stats"]["ledger"]["lost"] == {}
                seen, _ = seq_counts(b.bootstrap_servers, topic, 6000)
                assert seen == set(range(6000)), 6000 - len(seen)
        finally:
            for app in apps:
                stop_app(app)


# -- said, not silent ----------------------------------------------------------------------------------
class TestSaid:
    def test_an_exit_whose_time_runs_out_says_how_many_records_it_left(self, broker: LocalBroker,
                                                                       tmp_path: Path) -> None:
        """The handler's thread is stuck (a formatter that hangs) when the process exits with a 2 s budget:
        the exit ends in time and says how many records were neither sent nor spooled."""
        topic = new_topic(broker)
        started = time.monotonic()
        run = run_app("""
            import logging, sys, time
            import logkafka

            class Hanging(logging.Formatter):
                def format(self, record):
                    time.sleep(60)
                    return super().format(record)

            servers, topic, spool = sys.argv[1:4]
            handler = logkafka.KafkaLogHandler(servers, topic, spool_dir=spool)
            handler.setFormatter(Hanging())
            log = logging.getLogger("app")
            log.propagate = False
            log.setLevel(logging.INFO)
            log.addHandler(handler)
            for i in range(50):
                log.info("record %d", i)
            time.sleep(0.5)
            logkafka.shutdown(2)
        """, broker.bootstrap_servers, topic, str(tmp_path / "spool"), timeout=60)
        assert run.returncode == 0, run.stderr
        assert time.monotonic() - started < 30
        # 49 queued, and the one the thread took is in the batch it was handling
        assert ("the exit's time ran out with 49 records neither acknowledged nor written to the spool, and those "
                "of the batch its thread was handling") in run.stderr, run.stderr

    def test_frozen_broker_is_said_and_so_is_its_return(self, broker: LocalBroker, tmp_path: Path) -> None:
        """A broker frozen (SIGSTOP) for 45 s gives the client no error: the handler says once that Kafka
        acknowledges nothing and what it does with the records, and once that it answers again."""
        topic = new_topic(broker)
        app = start_app("""
            import json, logging, sys, threading, time
            import logkafka
            servers, topic, spool = sys.argv[1:4]
            handler = logkafka.KafkaLogHandler(servers, topic, spool_dir=spool, flush_timeout=30,
                                               producer_config={"message.timeout.ms": 20000})
            log = logging.getLogger("app")
            log.propagate = False
            log.setLevel(logging.INFO)
            log.addHandler(handler)
            stop = threading.Event()
            threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
            print("ready", flush=True)
            i = 0
            while not stop.is_set():
                log.info("record %d", i, extra={"seq": i})
                i += 1
                time.sleep(0.01)
            ok = handler.flush(120)
            print(json.dumps({"flushed": ok, "sent": i, "stats": handler.stats()}, default=str), flush=True)
            handler.close()
        """, broker.bootstrap_servers, topic, str(tmp_path / "spool"))
        try:
            assert app.stdout is not None
            assert app.stdout.readline().strip() == "ready"
            time.sleep(2)
            broker.pause()
            try:
                time.sleep(45)
            finally:
                broker.resume()
            time.sleep(5)
            out, err = app.communicate("stop\n", timeout=180)
        finally:
            stop_app(app)
        assert app.returncode == 0, err
        result = last_json(out)
        assert result["flushed"] is True, (result, err)
        assert err.count("has acknowledged nothing for") == 1, err
        assert err.count("acknowledges records again") == 1, err
        ledger = assert_ledger(result["stats"])
        assert ledger["lost"] == {} and ledger["accepted"] == result["sent"], ledger
        seen, _ = seq_counts(broker.bootstrap_servers, topic, result["sent"])
        assert seen == set(range(result["sent"]))

    @pytest.mark.parametrize("spool", [True, False])
    def test_records_logged_after_logging_shut_down(self, broker: LocalBroker, tmp_path: Path, spool: bool) -> None:
        """A record logged by an exit hook that runs after logging.shutdown(): with a spool it is written
        there and the next start delivers it; without one it is said to be lost, in plain words."""
        topic = new_topic(broker)
        spool_dir = str(tmp_path / "spool") if spool else "false"
        done = run_app("""
            import atexit, sys
            atexit.register(lambda: __import__("logging").getLogger("app").warning("at the very end",
                                                                               extra={"seq": 1}))
            import logging  # after the hook above: atexit runs it after logging.shutdown()
            import logkafka
            servers, topic, spool = sys.argv[1:4]
            handler = logkafka.KafkaLogHandler(servers, topic, spool_dir=False if spool == "false" else spool)
            log = logging.getLogger("app")
            log.propagate = False
            log.addHandler(handler)
            log.warning("while running", extra={"seq": 0})
        """, broker.bootstrap_servers, topic, spool_dir)
        assert done.returncode == 0, done.stderr
        if spool:
            assert "written to the spool" in done.stderr, done.stderr
            handler = logkafka.KafkaLogHandler(broker.bootstrap_servers, topic, spool_dir=spool_dir)
            try:
                assert handler.flush(60) is True
                assert_ledger(handler.stats())
            finally:
                handler.close()
            seen, total = seq_counts(broker.bootstrap_servers, topic, 2)
            assert seen == {0, 1} and total == 2
        else:
            assert "logged after logging shut down are lost" in done.stderr, done.stderr
            seen, _ = seq_counts(broker.bootstrap_servers, topic, 1)
            assert seen == {0}


class TestAfterAnOutage:
    def test_a_steady_stream_leaves_the_spool_once_the_replay_caught_up(self, tmp_path: Path) -> None:
        """After an outage, records logged without a pause (a service's steady stream) no longer follow the
        replay to disk for as long as they come: once the last segment is small, new records wait in memory
        while it goes, then go to Kafka directly; every record arrives, each once, in order per partition."""
        from logkafka.testing import ProxiedBroker

        kafka = ProxiedBroker().start()
        handler = logkafka.KafkaLogHandler(kafka.bootstrap_servers, topic := shared_new_topic(kafka, "rel"),
                                           spool_dir=str(tmp_path / "spool"), key="extra.tenant")
        log = logging.getLogger(f"rel.stream.{uuid.uuid4().hex[:6]}")
        log.propagate, log.level = False, logging.INFO
        log.addHandler(handler)
        try:
            kafka.proxy.cut()
            seq = 0
            deadline = time.monotonic() + 60
            while not handler.stats()["spooling"] and time.monotonic() < deadline:  # librdkafka's buffer fills
                for _ in range(500):
                    log.info("during the outage", extra={"seq": seq, "tenant": f"t{seq % 3}"})
                    seq += 1
                time.sleep(0.05)
            assert handler.stats()["spooling"], handler.stats()
            kafka.proxy.restore()
            left_at = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (left_at is None or seq < left_at + 500):
                log.info("a steady stream", extra={"seq": seq, "tenant": f"t{seq % 3}"})
                seq += 1
                time.sleep(0.004)
                if left_at is None and not handler.stats()["spooling"]:
                    left_at = seq
            assert left_at is not None, f"still spooling after 60 s of a steady stream: {handler.stats()}"
            spooled_then = handler.stats()["spooled"]
            assert handler.flush(60) is True
            stats = handler.stats()
            assert stats["spooled"] == spooled_then, "records spooled after the spool was left"
            assert stats["delivered"] == seq and stats["dropped_total"] == 0, stats
            by_tenant: dict[str, list[int]] = {}
            for m in read_topic(kafka.bootstrap_servers, topic, expected=seq, timeout=60):
                by_tenant.setdefault(m.data["tenant"], []).append(m.data["seq"])
            assert sorted(s for seqs in by_tenant.values() for s in seqs) == list(range(seq))
            for tenant, seqs in by_tenant.items():  # a key's records in one partition, in the order logged
                assert seqs == sorted(seqs), tenant
        finally:
            log.removeHandler(handler)
            handler.close()
            kafka.stop()


class TestSpoolFull:
    def test_a_full_spool_counts_what_it_dropped_and_delivers_the_rest(self, tmp_path: Path) -> None:
        """An outage longer than spool_max_bytes holds: the oldest segments go, and every record is either
        delivered or counted as spool_full in stats() (dropped and ledger); none is both, none is neither."""
        port = free_port()
        topic = f"rel.full.{uuid.uuid4().hex[:8]}"
        handler = logkafka.KafkaLogHandler(f"127.0.0.1:{port}", topic, spool_dir=str(tmp_path), flush_timeout=60,
                                           spool_max_bytes=256 * 1024, producer_config={"message.timeout.ms": 1000})
        log = logger_with(handler, "rel.full")
        n = 6000
        try:
            for i in range(n):
                log.info("record %d of a long outage", i, extra={"seq": i, "pad": "x" * 200})
                if not i % 1000:
                    time.sleep(0.3)  # (the spool rotates its segments as it fills)
            deadline = time.monotonic() + 60
            while handler.stats()["spooled"] < n and time.monotonic() < deadline:
                time.sleep(0.1)
            with LocalBroker(port) as broker:
                broker.create_topic(topic, 1)
                assert handler.flush(120)
                st = handler.stats()
                got = read_topic(broker.bootstrap_servers, topic, expected=st["delivered"], timeout=90)
        finally:
            log.removeHandler(handler)
            handler.close()
        dropped = st["dropped"].get("spool_full", 0)
        assert dropped > 0 and st["spool_dropped"] == dropped, st
        assert st["delivered"] + dropped == n and st["failed"] == 0, st
        ledger = assert_ledger(st)
        assert ledger["lost"] == {"spool_full": dropped}, ledger
        seqs = [m.data["seq"] for m in got]
        assert len(seqs) == len(set(seqs)) == st["delivered"] and set(seqs) <= set(range(n)), len(seqs)



class TestTheCallersSide:
    def test_a_tight_loop_of_400000_calls_loses_nothing(self, broker: LocalBroker, tmp_path: Path) -> None:
        """The README's claim: a tight loop of 400,000 ``logger.info`` calls, default settings, loses nothing
        (librdkafka's buffer fills, the queue backs up, the backlog goes through the spool); every record
        arrives, once, in order (one key)."""
        topic = new_topic(broker)
        handler = logkafka.KafkaLogHandler(broker.bootstrap_servers, topic, spool_dir=str(tmp_path), flush_timeout=60)
        log = logger_with(handler, "rel.loop")
        n = 400_000
        try:
            info = log.info
            for i in range(n):
                info("tight loop", extra={"seq": i})
            assert handler.flush(300) is True
            st = handler.stats()
        finally:
            log.removeHandler(handler)
            handler.close()
        assert st["dropped_total"] == 0 and st["failed"] == 0, st
        ledger = assert_ledger(st)
        assert ledger["accepted"] == ledger["delivered"] == n and ledger["lost"] == {}, ledger
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": uuid.uuid4().hex,
                             "enable.auto.commit": False, "log_level": 3})
        order: dict[Any, list[int]] = {}
        try:
            parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
            total, deadline = 0, time.monotonic() + 120
            while total < n and time.monotonic() < deadline:
                for m in consumer.consume(10_000, 0.5):
                    if m.error() is None:
                        total += 1
                        order.setdefault(m.key(), []).append(orjson.loads(m.value() or b"{}")["seq"])
        finally:
            consumer.close()
        assert total == n
        (seqs,) = order.values()  # one key: the service's
        assert seqs == list(range(n))

    def test_emit_does_no_disk_io_on_the_calling_thread(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The README's promise: ``emit()`` does no disk I/O. With no broker, records go to the spool; every
        write, open and fsync of it happens on the handler's thread, none on the thread that logs."""
        import builtins
        import threading

        calls: list[tuple[str, int]] = []  # (what, thread id)
        for name in ("write", "open", "fsync", "rename", "makedirs"):
            real = getattr(os, name)

            def watched(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
                calls.append((_name, threading.get_ident()))
                return _real(*args, **kwargs)

            monkeypatch.setattr(os, name, watched)
        real_open = builtins.open

        def watched_open(*args: Any, **kwargs: Any) -> Any:
            calls.append(("builtins.open", threading.get_ident()))
            return real_open(*args, **kwargs)

        handler = logkafka.KafkaLogHandler(f"127.0.0.1:{free_port()}", "rel.noio", spool_dir=str(tmp_path),
                                           flush_timeout=1, producer_config={"queue.buffering.max.messages": 10})
        log = logger_with(handler, "rel.noio")
        me = threading.get_ident()
        try:
            monkeypatch.setattr(builtins, "open", watched_open)
            calls.clear()  # (the constructor checks that the spool directory takes writes)
            for i in range(5000):
                log.info("to the spool", extra={"seq": i})
            mine = [what for what, ident in calls if ident == me]  # (stats() below reads the spool's sizes)
            deadline = time.monotonic() + 30
            while handler.stats()["spooled"] < 4990 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert handler.stats()["spooled"] >= 4990, handler.stats()
            seen = list(calls)  # (close() may do I/O: it waits on Kafka and writes the spool by design)
        finally:
            monkeypatch.setattr(builtins, "open", real_open)
            log.removeHandler(handler)
            handler.close()
        theirs = [what for what, ident in seen if ident != me]
        assert "write" in theirs  # the watch sees the spool's writes...
        assert mine == [], mine[:10]  # ...and none of them, nor any open or fsync, came from the caller

    def test_a_slow_broker_slows_no_call(self, broker: LocalBroker, tmp_path: Path) -> None:
        """A slow broker (frozen half the time: 1 s stopped, 0.3 s running, again and again) while the app
        logs at a steady pace: no call waits for it (none takes half a stop), and every record arrives,
        in order."""
        import threading

        topic = new_topic(broker)
        handler = logkafka.KafkaLogHandler(broker.bootstrap_servers, topic, spool_dir=str(tmp_path), flush_timeout=60)
        log = logger_with(handler, "rel.slow")
        assert handler.flush(10) is True
        done = threading.Event()

        def slow_broker() -> None:
            while not done.is_set():
                broker.pause()
                done.wait(1.0)
                broker.resume()
                done.wait(0.3)

        throttle = threading.Thread(target=slow_broker, daemon=True)
        n, slowest = 6000, 0.0
        throttle.start()
        try:
            for i in range(n):
                t = time.monotonic()
                log.info("steady", extra={"seq": i})
                slowest = max(slowest, time.monotonic() - t)
                if i % 100 == 99:
                    time.sleep(0.1)  # ~1,000 records a second, for about 6 s
        finally:
            done.set()
            throttle.join(10)
            broker.resume()
        try:
            assert handler.flush(120) is True
            st = handler.stats()
            msgs = read_topic(broker.bootstrap_servers, topic, expected=n, timeout=60)
        finally:
            log.removeHandler(handler)
            handler.close()
        assert slowest < 0.5, slowest
        assert st["dropped_total"] == 0 and st["failed"] == 0, st
        assert sorted(m.data["seq"] for m in msgs) == list(range(n))
        assert assert_in_order_per_key(msgs) == 0
