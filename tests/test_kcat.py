"""End to end with a third-party client: kcat (librdkafka's command-line tool) reads what logkafka wrote.

Without kcat on PATH the test is skipped with one line saying so; with ``CI=true`` (CI installs kcat:
``.ci/run``) a missing kcat fails the run instead.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

import logkafka
from logkafka.testing import LocalBroker

ROOT = Path(__file__).resolve().parent.parent


def find_kcat(environ: Mapping[str, str] = os.environ,
              which: Callable[[str], str | None] = shutil.which) -> str:
    """The path of kcat (or of its former name, kafkacat); if neither is on PATH, skip the calling test,
    or fail it when ``CI`` is true (CI must run it)."""
    for name in ("kcat", "kafkacat"):
        path = which(name)
        if path:
            return path
    if environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail("kcat is not on PATH and CI is set: CI must run the kcat test (.ci/run installs kcat)",
                    pytrace=False)
    pytest.skip("kcat is not installed (apt-get install kcat to run this test; CI runs it)")


@pytest.fixture(scope="session")
def kcat() -> str:
    """kcat's path. Session-scoped so that it is looked up before the session broker is started."""
    return find_kcat()


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
        self, kcat: str, handler: logkafka.KafkaLogHandler, kafka_broker: object, kafka_topic: str
    ) -> None:
        """kcat consumes exactly the records logged, keyed by service, each a JSON object."""
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


class TestWithoutKcat:
    """What a missing kcat does: the lookup, and the test above run by pytest with an empty PATH."""

    def test_found_on_path(self) -> None:
        paths = {"kafkacat": "/opt/bin/kafkacat"}
        assert find_kcat({"CI": "true"}, paths.get) == "/opt/bin/kafkacat"
        assert find_kcat({}, {"kcat": "/usr/bin/kcat", **paths}.get) == "/usr/bin/kcat"

    @pytest.mark.parametrize("ci", [None, "", "false", "0"])
    def test_missing_skips(self, ci: str | None) -> None:
        environ = {} if ci is None else {"CI": ci}
        with pytest.raises(pytest.skip.Exception, match=r"^kcat is not installed \(apt-get install kcat"):
            find_kcat(environ, lambda name: None)

    @pytest.mark.parametrize("ci", ["true", "TRUE", "1", "yes"])
    def test_missing_fails_under_ci(self, ci: str) -> None:
        with pytest.raises(pytest.fail.Exception, match=r"^kcat is not on PATH and CI is set"):
            find_kcat({"CI": ci}, lambda name: None)

    @pytest.mark.parametrize("ci", [None, "true"])
    def test_pytest_run_without_kcat(self, tmp_path: Path, ci: str | None) -> None:
        """With no kcat on PATH, the kcat test is one skip with its reason, or under CI=true one error
        (exit code 1), in both cases before any broker is started (the broker binary is made unusable)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("PYTEST_") and k not in ("CI", "KAFKA_BOOTSTRAP_SERVERS")}
        env.update(PATH=str(tmp_path), LOGKAFKA_BROKER_BIN=str(tmp_path / "no-broker-here"))
        if ci is not None:
            env["CI"] = ci
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-n", "0", "-p", "no:cacheprovider", "-rs",
             "tests/test_kcat.py::TestKcat"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )
        output = proc.stdout + proc.stderr
        if ci is None:
            assert proc.returncode == 0, output
            assert "1 skipped" in output, output
            assert "kcat is not installed (apt-get install kcat to run this test; CI runs it)" in output, output
        else:
            assert proc.returncode == 1, output
            assert "1 error" in output and "kcat is not on PATH and CI is set" in output, output
        assert "no-broker-here" not in output, output  # no broker was started
