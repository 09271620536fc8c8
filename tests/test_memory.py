"""memory_budget: what a process holds for Kafka stays within one number of bytes, even through an outage.

Each app is a subprocess of its own, so its peak resident memory (``VmHWM``) is its own: it logs
200,000 records of about 800 bytes each with nothing answering, and its peak growth is compared
with the budget. With a spool, the burst goes to disk at the disk's pace and every record arrives
once Kafka is back; without one, what the budget cannot hold is counted and said.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from logkafka.testing import ProxiedBroker, free_port, read_topic

REPO = str(Path(__file__).resolve().parent.parent)

APP = """
    import gc, json, logging, os, sys, time
    import logkafka

    def kib(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key))

    servers, topic, spool, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    handler = logkafka.KafkaLogHandler(servers, topic, spool_dir=spool if spool != "off" else False,
                                       flush_timeout=2)
    log = logging.getLogger("checkout.orders")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    log.info("warm up", extra={"seq": -1})
    time.sleep(1)
    base, tracked = kib("VmRSS"), len(gc.get_objects())
    pauses, began = [0.0], [0.0]  # the longest garbage collection, and the longest call, while records wait
    gc.callbacks.append(lambda phase, info: began.__setitem__(0, time.perf_counter()) if phase == "start"
                        else pauses.append(time.perf_counter() - began[0]))
    clock, longest = time.perf_counter, 0.0
    for i in range(count):
        t0 = clock()
        log.info("Agent execution completed", extra={"seq": i, "code": "AGENT_DONE",
                 "context": {"agent": "planner", "step": i, "note": "x" * 600}})
        longest = max(longest, clock() - t0)
    tracked = len(gc.get_objects()) - tracked
    time.sleep(2)
    print(json.dumps({"growth": (kib("VmHWM") - base) * 1024, "tracked": tracked, "gc_ms": max(pauses) * 1000,
                      "call_ms": longest * 1000, "stats": handler.stats()}, default=str), flush=True)
    if sys.stdin.readline().strip() == "deliver":
        print(json.dumps({"flushed": handler.flush(120), "stats": handler.stats()}, default=str), flush=True)
    os._exit(0)
"""


def start(servers: str, topic: str, spool: str, budget: str, count: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "LOGKAFKA_MEMORY_BUDGET": budget, "LOGKAFKA_BLOCK_TIMEOUT": "10"}  # a loaded CI disk can be slow
    env.pop("LOGKAFKA_QUEUE_SIZE", None)
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(APP), servers, topic, spool, str(count)],
                            text=True, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def line(app: subprocess.Popen[str]) -> dict[str, Any]:
    assert app.stdout is not None
    text = app.stdout.readline()
    assert text, app.stderr.read() if app.stderr else ""
    return json.loads(text)  # type: ignore[no-any-return]


@pytest.mark.parametrize(("budget", "count"), [(16 << 20, 300_000), (48 << 20, 200_000)])
def test_an_outage_stays_within_the_budget_and_loses_nothing(tmp_path: Path, budget: int, count: int) -> None:
    """Kafka unreachable through a burst of 300,000 records (default budget) or 200,000: the peak growth stays
    within the budget, the objects the garbage collector walks do not grow with the burst (what waits beyond
    the queue is bytes, on disk or in librdkafka), nothing is dropped (the burst goes to the spool), and all
    of it arrives once Kafka is back."""
    kafka = ProxiedBroker().start()
    try:
        topic = f"mem.{uuid.uuid4().hex[:8]}"
        kafka.create_topic(topic)
        kafka.proxy.cut()
        app = start(kafka.bootstrap_servers, topic, str(tmp_path / "spool"), str(budget), count)
        try:
            measured = line(app)
            stats = measured["stats"]
            assert stats["memory_budget"] == budget
            assert measured["growth"] <= budget, (measured["growth"], budget)
            # a queued record is about four tracked objects; 300,000 of them would be 1.2 million
            assert measured["tracked"] <= 8 * (budget // 1024), measured["tracked"]
            assert not stats["dropped"], stats["dropped"]
            assert stats["spooled"] > count * 3 // 4, stats  # the burst went to disk, not memory
            kafka.proxy.restore()
            assert app.stdin is not None
            app.stdin.write("deliver\n")
            app.stdin.flush()
            done = line(app)
            assert done["flushed"] is True, done["stats"]
        finally:
            app.kill()
            app.communicate()
        seqs = {m.data["seq"] for m in read_topic(kafka.bootstrap_servers, topic, expected=count + 1,
                                                   timeout=120, idle=3)}
        assert seqs == set(range(-1, count))
    finally:
        kafka.stop()


def test_without_a_spool_what_the_budget_cannot_hold_is_counted_and_said(tmp_path: Path) -> None:
    """No spool (a read-only pod) and nobody answering: the peak growth stays within the budget, and the
    records beyond it are counted as queue_full and said on stderr."""
    app = start(f"127.0.0.1:{free_port()}", "mem.nowhere", "off", "16MiB", 200_000)
    try:
        measured = line(app)
    finally:
        app.kill()
        _, err = app.communicate()
    stats = measured["stats"]
    assert measured["growth"] <= 16 << 20, measured["growth"]
    lost = stats["dropped"].get("queue_full", 0)
    assert 150_000 < lost < 200_000, stats["dropped"]
    ledger = stats["ledger"]
    assert ledger["accepted"] == 200_001 and ledger["balanced"], json.dumps(ledger)
    assert ledger["lost"] == {"queue_full": lost}, ledger
    assert "records dropped: the in-memory queue was full" in err, err
