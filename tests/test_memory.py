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
    import json, logging, os, sys, time
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
    base = kib("VmRSS")
    for i in range(count):
        log.info("Agent execution completed", extra={"seq": i, "code": "AGENT_DONE",
                 "context": {"agent": "planner", "step": i, "note": "x" * 600}})
    time.sleep(2)
    print(json.dumps({"growth": (kib("VmHWM") - base) * 1024, "stats": handler.stats()}, default=str), flush=True)
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


@pytest.mark.parametrize("budget", [16 << 20, 48 << 20])
def test_an_outage_stays_within_the_budget_and_loses_nothing(tmp_path: Path, budget: int) -> None:
    """Kafka unreachable through a burst of 200,000 records: the peak growth stays within the budget,
    nothing is dropped (the burst goes to the spool), and all of it arrives once Kafka is back."""
    kafka = ProxiedBroker().start()
    try:
        topic = f"mem.{uuid.uuid4().hex[:8]}"
        kafka.create_topic(topic)
        kafka.proxy.cut()
        app = start(kafka.bootstrap_servers, topic, str(tmp_path / "spool"), str(budget), 200_000)
        try:
            measured = line(app)
            stats = measured["stats"]
            assert stats["memory_budget"] == budget
            assert measured["growth"] <= budget, (measured["growth"], budget)
            assert not stats["dropped"], stats["dropped"]
            assert stats["spooled"] > 150_000, stats  # the burst went to disk, not memory
            kafka.proxy.restore()
            assert app.stdin is not None
            app.stdin.write("deliver\n")
            app.stdin.flush()
            done = line(app)
            assert done["flushed"] is True, done["stats"]
        finally:
            app.kill()
            app.communicate()
        seqs = {m.data["seq"] for m in read_topic(kafka.bootstrap_servers, topic, expected=200_001,
                                                   timeout=120, idle=3)}
        assert seqs == set(range(-1, 200_000))
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
