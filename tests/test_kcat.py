"""End to end with a third-party client: kcat (librdkafka's command-line tool) reads what logkafka wrote."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Iterator

import pytest

import logkafka
from logkafka.testing import LocalBroker


@pytest.fixture
def handler(kafka_broker: object, kafka_topic: str) -> Iterator[logkafka.KafkaLogHandler]:
    h = logkafka.KafkaLogHandler(kafka_broker.bootstrap_servers, kafka_topic,  # type: ignore[attr-defined]
                                 service_name="kcat-check", flush_timeout=10)
    logger = logging.getLogger("tests.kcat")
    logger.addHandler(h)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield h
    logger.removeHandler(h)
    h.close()


class TestKcat:
    def test_kcat_reads_every_record_with_key_and_json(
        self, handler: logkafka.KafkaLogHandler, kafka_broker: object, kafka_topic: str
    ) -> None:
        """kcat consumes exactly the records logged, keyed by service, each a JSON object."""
        kcat = shutil.which("kcat") or shutil.which("kafkacat")
        assert kcat, "kcat is required for this test: apt-get install kcat (.ci/run installs it)"
        log = logging.getLogger("tests.kcat")
        for i in range(300):
            log.info("kcat record %d", i, extra={"code": "KCAT", "seq": i})
        assert handler.flush()
        # Debian's kcat (librdkafka 2.0) cannot parse the local broker's ApiVersions answer:
        # tell it the protocol to speak instead. A real cluster needs no such flags.
        compat = ["-X", "api.version.request=false", "-X", "broker.version.fallback=0.9.0"] \
            if isinstance(kafka_broker, LocalBroker) else []
        out = subprocess.run(
            [kcat, *compat, "-C", "-b", kafka_broker.bootstrap_servers, "-t", kafka_topic,  # type: ignore[attr-defined]
             "-o", "0", "-c", "300", "-e", "-q", "-f", "%k\t%s\n"],
            capture_output=True, timeout=60, check=True,
        ).stdout.decode().splitlines()
        assert len(out) == 300
        keys = {line.split("\t", 1)[0] for line in out}
        records = [json.loads(line.split("\t", 1)[1]) for line in out]
        assert keys == {"kcat-check"}
        assert sorted(r["seq"] for r in records) == list(range(300))
        assert {r["message"] for r in records} == {f"kcat record {i}" for i in range(300)}
        assert all(r["code"] == "KCAT" and r["service"] == "kcat-check" for r in records)
        seqs = [r["seq"] for r in records]
        assert seqs == sorted(seqs), "one key, one partition: kcat sees logging order"
