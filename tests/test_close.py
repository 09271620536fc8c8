"""close() and flush() under load and during outages: no waiting on other threads, no stalled queue."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from _support import logger_with

import logkafka
from logkafka.testing import LocalBroker, free_port, read_topic


class TestCloseUnderLoad:
    def test_close_does_not_wait_for_records_other_threads_keep_logging(
        self, kafka_broker: Any, kafka_topic: str
    ) -> None:
        """close() returns once earlier records settle, not after flush_timeout; later records still arrive."""
        handler = logkafka.KafkaLogHandler(kafka_broker.bootstrap_servers, kafka_topic, flush_timeout=30)
        logger = logger_with(handler, "tests.close")
        stop = threading.Event()
        logged: list[int] = []

        def log_forever(t: int) -> None:
            i = 0
            while not stop.is_set():
                logger.info("busy", extra={"t": t, "i": i})
                logged.append(1)
                i += 1
                time.sleep(0.0005)

        threads = [threading.Thread(target=log_forever, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        handler.close()
        took = time.monotonic() - t0
        time.sleep(0.3)  # records keep arriving at the closed handler
        stop.set()
        for thread in threads:
            thread.join(10)
        assert took < 10, f"close() took {took:.1f}s: it waited on records logged after it (flush_timeout=30)"
        total = len(logged)
        messages = read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=total, timeout=60)
        assert len({(m.data["t"], m.data["i"]) for m in messages}) == total
        deadline = time.monotonic() + 10
        while handler.stats()["delivered"] != total and time.monotonic() < deadline:
            time.sleep(0.05)
        assert handler.stats()["delivered"] == total


class TestFlushTimeoutDuringOutage:
    def test_a_timed_out_flush_does_not_stall_later_records(self, own_broker: LocalBroker) -> None:
        """With the broker frozen, flush() gives up; records logged after it still leave the queue, then arrive."""
        topic = f"test.stall.{uuid.uuid4().hex[:8]}"
        own_broker.create_topic(topic, 1)
        handler = logkafka.KafkaLogHandler(own_broker.bootstrap_servers, topic, queue_size=1000, flush_timeout=20)
        logger = logger_with(handler, "tests.stall")
        try:
            logger.info("warm up", extra={"i": -1})
            assert handler.flush()
            own_broker.pause()
            for i in range(10):
                logger.info("during outage", extra={"i": i})
            assert handler.flush(0.5) is False
            for i in range(10, 5010):  # five times the queue: only draining keeps them all
                logger.info("during outage", extra={"i": i})
                if i % 500 == 0:
                    time.sleep(0.05)
            time.sleep(0.5)
            stats = handler.stats()
            assert stats["dropped_total"] == 0, stats
            own_broker.resume()
            assert handler.flush(30)
            messages = read_topic(own_broker.bootstrap_servers, topic, expected=5011, timeout=60)
            assert sorted(m.data["i"] for m in messages) == list(range(-1, 5010))
        finally:
            own_broker.resume()
            handler.close()


SHUTDOWN_WHILE_BUSY = """
import json, logging, sys, threading, time
import logkafka
servers, spool = sys.argv[1:3]
release = threading.Event()

class Slow(logging.Formatter):
    def format(self, record):
        if record.getMessage() == "slow":
            release.wait(30)  # the handler's thread is busy with this record while the exit begins
        return super().format(record)

handler = logkafka.KafkaLogHandler(servers, "close.busy", spool_dir=spool, flush_timeout=60)
handler.setFormatter(Slow())
log = logging.getLogger("app")
log.addHandler(handler)
log.setLevel(logging.INFO)
for i in range(200):
    log.info("away %d", i)
while handler.stats()["broker_reachable"] is not False:  # the client knows no broker answers
    time.sleep(0.01)
log.info("slow")
time.sleep(0.5)
threading.Timer(2.0, release.set).start()  # after shutdown() has stopped the thread
logkafka.shutdown(4)
print(json.dumps({"spooled": handler.stats()["spooled"]}))
"""


class TestCloseWhileKafkaIsAway:
    def test_a_thread_stopped_at_exit_takes_no_more_time_than_the_exit_has(self, tmp_path: Path) -> None:
        """Kafka away, the exit begins while the handler's thread is busy with a record: once the exit stops the
        thread, what the thread then takes from the queue (the rest of its batch, the flush's barriers) gives it
        no new flush_timeout (60 s here) to wait for acknowledgements; it writes what is unsettled to the spool
        within the exit's budget. (It used to keep waiting: the records were then neither sent nor spooled.)"""
        done = subprocess.run([sys.executable, "-c", SHUTDOWN_WHILE_BUSY, f"127.0.0.1:{free_port()}",
                               str(tmp_path)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.splitlines()[-1])["spooled"] == 201, done.stderr
        assert "time ran out" not in done.stderr, done.stderr
