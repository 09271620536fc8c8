"""A broker that lost the producer's state: records logged during and after its restart all arrive."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

from _support import assert_ledger

import logkafka
from logkafka.testing import LocalBroker, free_port, read_topic


def test_broker_restarted_with_empty_storage(tmp_path: Path) -> None:
    """The new broker answers every produce with UNKNOWN_PRODUCER_ID and librdkafka retries without end:
    the handler reads librdkafka's UNKPID line and builds a new producer (a new idempotent session); what
    the old one held goes through the spool. Without restarting the app, flush() returns True with every
    record logged during and after the outage in Kafka, once."""
    port = free_port()
    topic = f"state-{uuid.uuid4().hex[:8]}"
    broker: Any = LocalBroker(port).start()
    try:
        broker.create_topic(topic)
        handler = logkafka.KafkaLogHandler(broker.bootstrap_servers, topic, flush_timeout=5,
                                           spool_dir=str(tmp_path / "spool"), key="extra.n")
        log = logging.getLogger(f"state.{topic}")
        log.propagate = False
        log.setLevel(logging.INFO)
        log.addHandler(handler)
        try:
            n = 0

            def burst(count: int) -> None:
                nonlocal n
                for _ in range(count):
                    log.info("record %d", n, extra={"n": n})
                    n += 1
                    time.sleep(0.001)

            burst(300)
            assert handler.flush(30)
            broker.kill()
            burst(200)  # while no broker runs
            broker = LocalBroker(port).start()  # the same address, empty storage
            broker.create_topic(topic)
            burst(500)
            assert handler.flush(90), handler.stats()
            st = handler.stats()
            ledger = assert_ledger(st)
            assert ledger["lost"] == {} and ledger["accepted"] == 1000, ledger
            assert ledger["delivered"] == 1000  # each acknowledged once (the first 300 by the broker that went)
            assert st["producer_rebuilds"] >= 1
            assert st["replayed"] >= 200  # what the old producer held when the broker went came through the spool
            assert st["failed"] == 0 and st["dropped_total"] == 0, st
            assert st["in_flight"] == 0 and st["queue_depth"] == 0
        finally:
            log.removeHandler(handler)
            handler.close()
        got = read_topic(broker.bootstrap_servers, topic, expected=700, timeout=60)
        assert sorted(m.data["n"] for m in got) == list(range(300, 1000))
    finally:
        broker.stop()
