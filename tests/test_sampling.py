"""SamplingFilter: a fraction of the chatty records, every important one."""

from __future__ import annotations

import logging
import logging.config
import uuid
from typing import Any

import pytest

import logkafka
from logkafka.testing import read_topic


def record(level: int = logging.INFO, **extra: Any) -> logging.LogRecord:
    r = logging.LogRecord("app", level, __file__, 1, "m", None, None)
    r.__dict__.update(extra)
    return r


class TestDecisions:
    def test_rate_zero_keeps_only_what_is_above_max_level(self) -> None:
        """At rate 0, INFO and DEBUG go; WARNING, ERROR and CRITICAL stay."""
        f = logkafka.SamplingFilter(0)
        kept = [lvl for lvl in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)
                if f.filter(record(lvl))]
        assert kept == [logging.WARNING, logging.ERROR, logging.CRITICAL]
        assert f.dropped == 2

    def test_max_level_debug_keeps_info(self) -> None:
        """With max_level=DEBUG only DEBUG records are sampled."""
        f = logkafka.SamplingFilter(0, max_level="DEBUG")
        assert not f.filter(record(logging.DEBUG)) and f.filter(record(logging.INFO))

    def test_audit_and_security_are_never_sampled(self) -> None:
        """Audit and security records pass at rate 0, whatever their level."""
        f = logkafka.SamplingFilter(0)
        assert f.filter(record(logging.INFO, _lk_stream="audit"))
        assert f.filter(record(logging.INFO, _lk_stream="security"))
        assert f.dropped == 0

    def test_rate_one_keeps_all(self) -> None:
        """At rate 1 nothing is dropped."""
        f = logkafka.SamplingFilter(1)
        assert all(f.filter(record(logging.DEBUG)) for _ in range(1000))

    def test_random_rate_is_about_right(self) -> None:
        """by=None keeps each record with probability rate (10,000 records at 0.25: 2,250 to 2,750 kept)."""
        f = logkafka.SamplingFilter(0.25, by=None)
        kept = sum(f.filter(record()) for _ in range(10_000))
        assert 2_250 <= kept <= 2_750
        assert f.dropped == 10_000 - kept

    def test_every_filter_a_record_meets_agrees(self) -> None:
        """Records without a correlation id: the stdout filter and the Kafka filter make the same choice."""
        stdout_filter, kafka_filter = logkafka.SamplingFilter(0.5), logkafka.SamplingFilter(0.5)
        records = [record() for _ in range(2_000)]
        assert [stdout_filter.filter(r) for r in records] == [kafka_filter.filter(r) for r in records]
        assert 800 <= stdout_filter.dropped <= 1_200
        # a lower rate keeps a subset of what a higher one keeps
        low = logkafka.SamplingFilter(0.1)
        assert all(stdout_filter.filter(r) for r in records if low.filter(r))

    def test_a_requests_records_go_together(self) -> None:
        """Records with the same correlation id are all kept or all dropped; about rate of the ids are kept."""
        f = logkafka.SamplingFilter(0.3)
        ids = [str(uuid.uuid4()) for _ in range(4_000)]
        decisions = {}
        for cid in ids:
            with logkafka.bound(correlation_id=cid):
                seen = {f.filter(record()) for _ in range(5)}
            assert len(seen) == 1, cid
            decisions[cid] = seen.pop()
        assert 1_050 <= sum(decisions.values()) <= 1_350
        # the same decision from the id passed in extra, in another filter (another process would agree too)
        g = logkafka.SamplingFilter(0.3)
        assert all(g.filter(record(correlation_id=cid)) == keep for cid, keep in decisions.items())

    def test_by_another_key(self) -> None:
        """by= names the context key the decision follows."""
        f = logkafka.SamplingFilter(0.5, by="tenant_id")
        decisions = set()
        for tenant in (f"t{i}" for i in range(50)):
            kept = set()
            for _ in range(5):  # each record of a tenant in a request of its own: only by= keeps them together
                with logkafka.bound(tenant_id=tenant, correlation_id=str(uuid.uuid4())):
                    kept.add(f.filter(record()))
            assert len(kept) == 1, tenant
            decisions |= kept
        assert decisions == {True, False}  # some tenants kept, some not

    def test_rate_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without rate=, LOG_SAMPLE_RATE gives it; without either, everything is kept."""
        monkeypatch.setenv("LOG_SAMPLE_RATE", "0.05")
        assert logkafka.SamplingFilter().rate == 0.05
        assert logkafka.SamplingFilter(0.5).rate == 0.5
        monkeypatch.delenv("LOG_SAMPLE_RATE")
        assert logkafka.SamplingFilter().rate == 1.0

    @pytest.mark.parametrize(("kwargs", "env", "name"), [
        ({"rate": 1.5}, None, "rate"),
        ({"rate": -0.1}, None, "rate"),
        ({"rate": "lots"}, None, "rate"),
        ({"rate": float("nan")}, None, "rate"),
        ({"rate": True}, None, "rate"),
        ({}, "2", "LOG_SAMPLE_RATE"),
        ({}, "half", "LOG_SAMPLE_RATE"),
        ({"max_level": "WARNING"}, None, "max_level"),
        ({"max_level": "CHATTY"}, None, "max_level"),
        ({"by": ""}, None, "by"),
    ])
    def test_bad_settings_name_themselves(self, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any],
                                          env: str | None, name: str) -> None:
        """A bad rate, LOG_SAMPLE_RATE, max_level or by is a ValueError naming it."""
        if env is not None:
            monkeypatch.setenv("LOG_SAMPLE_RATE", env)
        with pytest.raises(ValueError, match=f"^{name}:"):
            logkafka.SamplingFilter(**kwargs)


class TestOnAHandler:
    def test_dictconfig_on_the_kafka_handler(self, kafka_broker: Any) -> None:
        """Through dictConfig: about rate of the INFO records reach Kafka; every warning and audit record does."""
        ns = f"s{uuid.uuid4().hex[:8]}"
        for stream in ("application", "audit", "security"):
            kafka_broker.create_topic(f"{ns}.logging.{stream}.v1", 1)
        logging.config.dictConfig({
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"sample": {"()": "logkafka.SamplingFilter", "rate": 0.2}},
            "formatters": {"json": {"()": "logkafka.JsonFormatter"}},
            "handlers": {"kafka": {"class": "logkafka.KafkaLogHandler", "formatter": "json", "filters": ["sample"],
                                   "bootstrap_servers": kafka_broker.bootstrap_servers, "namespace": ns}},
            "root": {"level": "INFO", "handlers": ["kafka"]},
        })
        log = logging.getLogger("app.sampled")
        for i in range(1_000):
            with logkafka.bound(correlation_id=f"req-{i}"):
                log.info("step", extra={"i": i})
        for i in range(20):
            log.warning("slow", extra={"i": i})
            logkafka.audit("update", "alice", f"invoice:{i}", "success")
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, logkafka.KafkaLogHandler) and handler.flush(30)
        sample = handler.filters[0]
        assert isinstance(sample, logkafka.SamplingFilter)
        app = read_topic(kafka_broker.bootstrap_servers, f"{ns}.logging.application.v1", timeout=60)
        audit = read_topic(kafka_broker.bootstrap_servers, f"{ns}.logging.audit.v1", expected=20)
        infos = [m.data for m in app if m.data["level"] == "INFO"]
        warnings = [m.data for m in app if m.data["level"] == "WARNING"]
        assert 130 <= len(infos) <= 270
        assert len(infos) + sample.dropped == 1_000
        assert sorted(d["i"] for d in warnings) == list(range(20))
        assert len(audit) == 20
