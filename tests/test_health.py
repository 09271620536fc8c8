"""health(): ok, degraded or failing, with reasons in words; and the health routes."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from _support import logger_with

import logkafka
from logkafka.testing import LocalBroker, free_port


def wait_for(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(0.1)


def call_wsgi() -> tuple[str, dict[str, Any]]:
    seen: list[str] = []
    body = b"".join(logkafka.health_wsgi({"REQUEST_METHOD": "GET", "PATH_INFO": "/health"},
                                         lambda status, headers: seen.append(status)))
    return seen[0], json.loads(body)


def call_asgi() -> tuple[int, dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(logkafka.health_asgi({"type": "http", "path": "/health"}, receive, send))
    return sent[0]["status"], json.loads(sent[1]["body"])


class TestHealth:
    def test_unreachable_with_a_spool_is_degraded_then_ok_when_the_broker_starts(self, tmp_path: Path) -> None:
        """No broker: degraded (records go to the spool), said in words; once a broker answers and the
        spool is sent: ok, and last_error is forgotten."""
        port = free_port()
        handler = logkafka.KafkaLogHandler(f"127.0.0.1:{port}", "health.t", spool_dir=str(tmp_path), flush_timeout=2)
        try:
            lg = logger_with(handler)
            lg.info("while away")
            state = wait_for(lambda: handler.health()["status"] == "degraded" and handler.health())
            assert state and any("Kafka has not answered" in r for r in state["reasons"]), handler.health()
            assert logkafka.health()["status"] in ("degraded", "failing")
            with LocalBroker(port) as broker:
                broker.create_topic("health.t", 1)
                assert handler.flush(60)
                assert wait_for(lambda: handler.health()["status"] == "ok"), handler.health()
                assert handler.stats()["last_error"] is None
                assert handler.stats()["broker_reachable"] is True
        finally:
            handler.close()

    def test_unreachable_without_a_spool_is_failing_and_the_route_says_503(self) -> None:
        """No broker and no spool: records only wait in memory: failing, and the health routes answer 503."""
        handler = logkafka.KafkaLogHandler(f"127.0.0.1:{free_port()}", "health.t", spool_dir=False, flush_timeout=1)
        try:
            logger_with(handler).info("while away")
            assert wait_for(lambda: handler.health()["status"] == "failing"), handler.health()
            status, body = call_wsgi()
            assert status.startswith("503") and body["status"] == "failing"
            code, body = call_asgi()
            assert code == 503 and body["status"] == "failing" and body["reasons"]
        finally:
            handler.close()

    def test_a_healthy_handler_is_ok_and_knows_the_broker_before_the_first_ack(self, kafka_broker: Any,
                                                                                 kafka_topic: str) -> None:
        """A broker that answers: ok, and broker_reachable is True from the first metadata answer."""
        handler = logkafka.KafkaLogHandler(kafka_broker.bootstrap_servers, kafka_topic, spool_dir=False)
        try:
            logger_with(handler).info("hello")
            assert wait_for(lambda: handler.stats()["broker_reachable"] is True)
            assert handler.flush(30)
            assert handler.health() == {"status": "ok", "reasons": [], "topic": kafka_topic}
        finally:
            handler.close()

    def test_a_loss_makes_it_failing_for_a_minute(self) -> None:
        """A record dropped by the overflow policy: failing, with the reason and the count."""
        from logkafka._health import Health

        stats = {"ledger": {"lost": {"drop_newest": 3}, "spooled": 0}, "spool_dir": "/s", "spool_off": None,
                 "spool_refusing": None, "trouble_s": None, "spooling": False, "topic": "t"}
        state = Health().assess(stats)
        assert state["status"] == "failing" and state["reasons"] == ["records lost in the last minute (3 drop_newest)"]
        calm = {**stats, "ledger": {"lost": {}, "spooled": 0}}
        assert Health().assess(calm)["status"] == "ok"
        assert Health().assess({**calm, "spool_off": "read-only"})["status"] == "degraded"
