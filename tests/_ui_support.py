"""What tests/test_ui_browser.py needs: Debian's chromium driven by Playwright, ``logkafka ui`` as a process,
and a small incident logged to the three streams (with the odd records a viewer must survive).

The incident is a list of :class:`Seeded` records in the order they are logged (each a few milliseconds after
the one before, so that their time order is this order); the tests compute what each filter should show
from it, and compare with what the page shows.
"""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

import logkafka
from logkafka.testing import create_topic

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
STREAM_NAMES = ("application", "audit", "security")
LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


def in_ci(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def find_chromium(environ: Mapping[str, str] = os.environ,
                  which: Callable[[str], str | None] = shutil.which) -> str:
    """Debian's chromium (Playwright cannot download its own here); skip without it, or fail when ``CI`` is set
    (CI installs it: ``.ci/run``)."""
    for name in ("chromium", "chromium-browser"):
        path = which(name)
        if path:
            return path
    if in_ci(environ):
        pytest.fail("chromium is not on PATH and CI is set: CI must run the browser tests (.ci/run installs "
                    "chromium)", pytrace=False)
    pytest.skip("chromium is not installed (apt-get install chromium to run the browser tests; CI runs them)")


def topics_of(namespace: str) -> dict[str, str]:
    """Stream -> topic, as ``--namespace`` names them."""
    return {s: f"{namespace}.logging.{s}.v1" for s in STREAM_NAMES}


def create_stream_topics(servers: str, namespace: str) -> None:
    for topic in topics_of(namespace).values():
        create_topic(servers, topic, 3)


# -- logkafka ui, as a process ---------------------------------------------------------------------

class UiProcess:
    """``logkafka ui`` started on a free port; :attr:`url` is the address it printed."""

    def __init__(self, servers: str, *args: str, timeout: float = 60.0) -> None:
        self.stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "logkafka", "ui", "-b", servers, "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=self.stderr, stdin=subprocess.DEVNULL, text=True)
        try:
            self.url = self._announced(timeout)
        except BaseException:
            self.stop()
            raise
        self.base = self.url.split("?", 1)[0]

    def _announced(self, timeout: float) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready:
                line = self.process.stdout.readline()
                if line.startswith("logkafka ui: open "):
                    return line.split("open ", 1)[1].strip()
                if not line and self.process.poll() is not None:
                    break
            elif self.process.poll() is not None:
                break
        raise AssertionError(f"logkafka ui did not say where it serves (exit {self.process.poll()}): {self.errors()}")

    def errors(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")[-3000:]

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of a GET on the viewer (an error status too)."""
        request = urllib.request.Request(self.base.rstrip("/") + path, headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()

    def wait_for_records(self, count: int, headers: Mapping[str, str] | None = None, timeout: float = 60.0) -> None:
        """Wait until the viewer holds ``count`` records (its reader has caught up with what was logged)."""
        deadline = time.monotonic() + timeout
        held = -1
        while time.monotonic() < deadline:
            status, _, body = self.get("/api/status", headers)
            if status == 200:
                held = sum(json.loads(body)["store"]["entries"].values())
                if held >= count:
                    return
            time.sleep(0.1)
        raise AssertionError(f"the viewer holds {held} records, not {count}: {self.errors()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.stderr.close()


@contextmanager
def ui_process(servers: str, *args: str) -> Iterator[UiProcess]:
    ui = UiProcess(servers, *args)
    try:
        yield ui
    finally:
        ui.stop()


# -- logging records -------------------------------------------------------------------------------

@contextmanager
def attached(handler: logging.Handler, *names: str) -> Iterator[None]:
    """``handler`` on the loggers ``names`` for a while (logkafka.audit() and security() log on their own)."""
    loggers = [logging.getLogger(n) for n in names]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
        lg.propagate = False
    try:
        yield
    finally:
        for lg, (level, propagate) in zip(loggers, saved, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate


class Services:
    """A KafkaLogHandler per service, all on the topics of one namespace; closed together."""

    def __init__(self, servers: str, namespace: str, spool_dir: Path) -> None:
        self.servers = servers
        self.namespace = namespace
        self._spool_dir = spool_dir
        self.handlers: dict[str, logkafka.KafkaLogHandler] = {}

    def handler(self, service: str) -> logkafka.KafkaLogHandler:
        if service not in self.handlers:
            self.handlers[service] = logkafka.KafkaLogHandler(
                self.servers, namespace=self.namespace, service_name=service, flush_timeout=10,
                spool_dir=str(self._spool_dir / service))
        return self.handlers[service]

    def log(self, service: str, logger: str, level: str, message: str, exc: BaseException | None = None,
            **extra: Any) -> None:
        """One application record, logged as the service's code would."""
        record = logging.LogRecord(logger, LEVELS[level], __file__, 1, message, None,
                                   (type(exc), exc, exc.__traceback__) if exc is not None else None)
        record.__dict__.update(extra)
        self.handler(service).handle(record)

    def audit(self, service: str, *args: Any, **kwargs: Any) -> None:
        with attached(self.handler(service), "logkafka.audit"):
            logkafka.audit(*args, **kwargs)

    def security(self, service: str, *args: Any, **kwargs: Any) -> None:
        with attached(self.handler(service), "logkafka.security"):
            logkafka.security(*args, **kwargs)

    def flush(self) -> None:
        for handler in self.handlers.values():
            assert handler.flush(), f"{handler!r} did not deliver its records"

    def close(self) -> None:
        for handler in self.handlers.values():
            handler.close()
            handler.wait_closed()
        self.handlers.clear()


# -- the incident ----------------------------------------------------------------------------------

@dataclass
class Seeded:
    """One record of the incident as the page should show it; ``words`` are the texts free search finds it by."""

    message: str
    stream: str = "application"
    level: str | None = None
    service: str | None = None
    logger: str | None = None
    code: str | None = None
    correlation_id: str | None = None
    tenant_id: str | None = None
    traced: bool = False
    flag: str | None = None
    words: tuple[str, ...] = ()
    audit: dict[str, Any] = field(default_factory=dict)
    security: dict[str, Any] = field(default_factory=dict)

    def matches(self, name: str, value: str) -> bool:
        """Whether the viewer's filter ``name=value`` selects this record (the API's rules, for this data)."""
        if name == "level":
            return self.level is not None and LEVELS[self.level] >= LEVELS[value]
        if name == "stream":
            return self.stream in value.split(",")
        if name == "logger":
            return self.logger is not None and (self.logger == value or self.logger.startswith(value + "."))
        if name == "q":
            return any(value.lower() in text.lower() for text in (self.message, *self.words))
        if name in ("service", "code", "tenant_id"):
            return getattr(self, name) in value.split(",")
        return bool(getattr(self, name) == value)


ARCHIVE_STEPS = 12  # old records, two hours back, for reading a time range


@dataclass
class Incident:
    """What :func:`log_incident` logged, oldest first, and when the old (archived) records were stamped."""

    records: list[Seeded]
    archive_from_ms: int
    trace_id: str = ""

    def messages(self, name: str | None = None, value: str = "") -> list[str]:
        return [r.message for r in self.records if name is None or r.matches(name, value)]


XSS_MESSAGE = '<script>window.__xss = "message"</script>'
XSS_CODE = '<img src=x onerror="window.__xss = \'code\'">'
XSS_TENANT = '<svg onload="window.__xss = \'tenant\'">'
XSS_KEY = '<img src=x onerror="window.__xss = \'key\'">'
XSS_HEADER = '<script>window.__xss = "header"</script>'
NOT_JSON = "GET /healthz 200 <b>plain text</b>, not JSON"


def _produce(servers: str, topic: str, value: bytes, key: bytes | None = None,
             headers: list[tuple[str, bytes]] | None = None, timestamp: int = 0) -> None:
    producer = Producer({"bootstrap.servers": servers, "log_level": 3})
    producer.produce(topic, value, key=key, headers=headers, timestamp=timestamp)
    assert producer.flush(15) == 0, f"a raw record to {topic} was not delivered"


def _formatted(fields: str, fmt: str, service: str, message: str, **extra: Any) -> bytes:
    record = logging.LogRecord("legacy.export", logging.ERROR, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return logkafka.JsonFormatter(fields=fields, format=fmt, service_name=service).format(record).encode()


def log_incident(servers: str, namespace: str, spool_dir: Path) -> Incident:
    """Log the incident (and the odd records) to the namespace's three topics; return what was logged."""
    from opentelemetry.sdk.trace import TracerProvider

    topics = topics_of(namespace)
    app_topic = topics["application"]
    done: list[Seeded] = []
    services = Services(servers, namespace, spool_dir)

    def step(seeded: Seeded) -> None:
        done.append(seeded)
        time.sleep(0.004)  # each record's time after the one before: their time order is this order

    # old records, two hours back: only a time range reads them (they are also the oldest of the live tail)
    archive_from = int(time.time() * 1000) - 2 * 3600 * 1000
    for i in range(ARCHIVE_STEPS):
        stamp = archive_from + i * 60_000
        value = json.dumps({"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp / 1000))
                            + f".{stamp % 1000:03d}Z", "level": "INFO", "logger": "archive.job",
                            "message": f"nightly archive step {i}", "service": "archive", "code": "ARCHIVE_STEP",
                            "tenant_id": "umbrella"}).encode()
        _produce(servers, app_topic, value, key=b"archive", timestamp=stamp)
        done.append(Seeded(f"nightly archive step {i}", level="INFO", service="archive", logger="archive.job",
                           code="ARCHIVE_STEP", tenant_id="umbrella"))

    try:
        # what a viewer must survive: a value that is not JSON, JSON that is no log record, markup everywhere
        _produce(servers, app_topic, NOT_JSON.encode())
        step(Seeded(NOT_JSON, flag="not JSON"))
        _produce(servers, app_topic, b'{"order": 7, "total": 9.5}')
        step(Seeded('{"order":7,"total":9.5}', flag="not a log record", words=("order",)))
        services.log("checkout", "checkout.web", "WARNING", XSS_MESSAGE, code=XSS_CODE, tenant_id=XSS_TENANT,
                     correlation_id="req-xss")
        step(Seeded(XSS_MESSAGE, level="WARNING", service="checkout", logger="checkout.web", code=XSS_CODE,
                    tenant_id=XSS_TENANT, correlation_id="req-xss"))
        services.flush()
        value = _formatted("default", "flat", "checkout", "markup in the key and a header",
                           correlation_id="req-xss")
        _produce(servers, app_topic, value, key=XSS_KEY.encode(), headers=[("x-note", XSS_HEADER.encode())])
        step(Seeded("markup in the key and a header", level="ERROR", service="checkout", logger="legacy.export",
                    correlation_id="req-xss"))
        # the other field presets and the envelope format
        for fields, fmt in (("ecs", "flat"), ("datadog", "flat"), ("otel", "flat"), ("default", "envelope")):
            service = f"preset-{fields}-{fmt}"
            message = f"preset check {fields} {fmt}"
            _produce(servers, app_topic, _formatted(fields, fmt, service, message, code="PRESET",
                                                    correlation_id="req-preset", tenant_id="initech"))
            step(Seeded(message, level="ERROR", service=service, logger="legacy.export", code="PRESET",
                        correlation_id="req-preset", tenant_id="initech"))

        def app(service: str, logger: str, level: str, message: str, exc: BaseException | None = None,
                traced: bool = False, **extra: Any) -> None:
            services.log(service, logger, level, message, exc, **extra)
            step(Seeded(message, level=level, service=service, logger=logger, code=extra.get("code"),
                        correlation_id=extra.get("correlation_id"), tenant_id=extra.get("tenant_id"), traced=traced))

        def audit(service: str, action: str, actor: str, resource: str, outcome: str, tenant: str, cid: str,
                  diff: dict[str, Any] | None = None) -> None:
            services.audit(service, action, actor, resource, outcome, tenant_id=tenant, correlation_id=cid, diff=diff)
            step(Seeded(f"audit: {actor} {action} {resource}: {outcome}", stream="audit",
                        level="INFO" if outcome == "success" else "WARNING", service=service,
                        logger="logkafka.audit", correlation_id=cid, tenant_id=tenant,
                        audit={"actor": actor, "action": action, "resource": resource, "outcome": outcome,
                               "diff": diff}))

        def security(service: str, event: str, user: str, resource: str, decision: str, tenant: str,
                     cid: str) -> None:
            services.security(service, event, user, resource, decision, tenant_id=tenant, correlation_id=cid)
            step(Seeded(f"security: {event} {user} {resource}: {decision}", stream="security",
                        level="INFO" if decision == "allow" else "WARNING", service=service,
                        logger="logkafka.security", correlation_id=cid, tenant_id=tenant,
                        security={"event_type": event, "user_id": user, "resource": resource,
                                  "decision": decision}))

        app("gateway", "gateway.http", "INFO", "GET /catalog 200 in 41 ms", correlation_id="req-1001",
            tenant_id="acme")
        app("inventory", "inventory.stock", "INFO", "stock reserved for 3 items", code="STOCK_RESERVED",
            correlation_id="req-1001", tenant_id="acme")
        app("checkout", "checkout.orders", "INFO", "order ord-5521 placed", code="ORDER_PLACED",
            correlation_id="req-1001", tenant_id="acme")
        app("payments", "payments.provider", "DEBUG", "card tokenised", correlation_id="req-1001", tenant_id="acme")
        security("gateway", "authentication", "u-17", "web", "allow", "globex", "req-1002")
        app("gateway", "gateway.http", "INFO", "POST /orders 201 in 3212 ms", correlation_id="req-1002",
            tenant_id="globex")
        app("checkout", "checkout.orders", "INFO", "order ord-5522 placed", code="ORDER_PLACED",
            correlation_id="req-1002", tenant_id="globex")
        app("payments", "payments.provider", "WARNING", "provider latency 2.4 s above the 2 s budget",
            code="PAY_SLOW", correlation_id="req-1002", tenant_id="globex")
        tracer = TracerProvider().get_tracer("tests.ui")
        with tracer.start_as_current_span("POST /orders") as span:
            trace_id = f"{span.get_span_context().trace_id:032x}"
            try:
                raise TimeoutError("the provider did not answer")
            except TimeoutError as exc:
                app("payments", "payments.provider", "ERROR", "payment timed out after 3000 ms", exc, traced=True,
                    code="PAY_TIMEOUT", correlation_id="req-1002", tenant_id="globex")
            app("checkout", "checkout.orders", "ERROR", "order ord-5522 failed: payment timed out", traced=True,
                code="ORDER_FAILED", correlation_id="req-1002", tenant_id="globex")
        audit("checkout", "order.cancel", "system", "order:ord-5522", "failure", "globex", "req-1002",
              {"old": {"status": "pending"}, "new": {"status": "cancelled"}})
        security("gateway", "authorization", "u-42", "admin/refunds", "deny", "acme", "req-1003")
        audit("gateway", "user.role.update", "admin@acme", "user:u-42", "success", "acme", "req-1003",
              {"old": {"role": "viewer"}, "new": {"role": "support"}})
        app("gateway", "gateway.http", "WARNING", "rate limit at 92% for tenant initech", code="RATE_LIMIT",
            tenant_id="initech")
        app("inventory", "inventory.stock", "INFO", "nightly reindex done in 12.3 s")
        app("checkout", "checkout.db", "CRITICAL", "database pool exhausted (50/50 connections)", code="DB_POOL",
            correlation_id="req-1004", tenant_id="acme")
        security("gateway", "authentication", "u-99", "web", "deny", "globex", "req-1005")
        app("payments", "payments.provider", "INFO", "refund ref-88 issued", code="REFUND_OK",
            correlation_id="req-1006", tenant_id="acme")
        audit("payments", "refund.issue", "u-7", "payment:pay-881", "success", "acme", "req-1006",
              {"old": {"refunded": 0}, "new": {"refunded": 49.9}})
        app("gateway", "gateway.http", "INFO", "GET /orders/ord-5522 200 in 18 ms", correlation_id="req-1007",
            tenant_id="globex")
        services.flush()
    finally:
        services.close()
    return Incident(done, archive_from, trace_id)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"
