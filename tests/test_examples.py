"""The examples run for real against the broker: each as its own process, the records read back from the topic."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from logkafka.testing import free_port, read_topic

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
WAIT = 90.0  # seconds: generous, the machine is shared


# -- helpers -------------------------------------------------------------------------
Records = list[dict[str, Any]]


def wait_records(servers: str, topic: str, done: Callable[[Records], bool], timeout: float = WAIT) -> Records:
    """The topic's records, read again from offset 0 until ``done(records)`` or ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        records = [m.data for m in read_topic(servers, topic, timeout=min(15.0, max(1.0, deadline - time.monotonic())),
                                              idle=0.5)]
        if done(records) or time.monotonic() >= deadline:
            return records
        time.sleep(0.3)


def with_cid(records: Records, cid: str) -> Records:
    return [r for r in records if r.get("correlation_id") == cid]


def codes(records: Records) -> list[str]:
    return [r.get("code", "") for r in records]


def one(records: Records, code: str) -> dict[str, Any]:
    found = [r for r in records if r.get("code") == code]
    assert len(found) == 1, (code, found)
    return found[0]


class Topics:
    """The application and audit topics of one test, passed to the example through the environment."""

    def __init__(self, broker: Any, topic: str) -> None:
        self.servers: str = broker.bootstrap_servers
        self.app = topic
        self.audit = f"{topic}.audit"
        broker.create_topic(self.audit, 3)

    def env(self, **more: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("LOG_SAMPLE_RATE", None)
        env.update(KAFKA_BOOTSTRAP_SERVERS=self.servers, LOGKAFKA_TOPIC=self.app, LOGKAFKA_AUDIT_TOPIC=self.audit,
                   PYTHONUNBUFFERED="1", **more)
        env.setdefault("PYTHONPATH", "")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env["PYTHONPATH"]) if p)
        return env

    def records(self, done: Callable[[Records], bool], audit: bool = False) -> Records:
        return wait_records(self.servers, self.audit if audit else self.app, done)


@pytest.fixture
def topics(kafka_broker: Any, kafka_topic: str) -> Topics:
    """The test's topics."""
    return Topics(kafka_broker, kafka_topic)


class Process:
    """An example running as a subprocess; its output goes to files (no pipe to fill)."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, out_dir: Path, name: str) -> None:
        self.out_path = out_dir / f"{name}.out"
        self.err_path = out_dir / f"{name}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=err)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.out_path.read_text("utf-8", "replace")

    def errors(self) -> str:
        return self.err_path.read_text("utf-8", "replace")

    def describe(self) -> str:
        return f"exit={self.proc.poll()}\nstdout:\n{self.output()[-3000:]}\nstderr:\n{self.errors()[-3000:]}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send ``sig`` and wait for the exit; kill when it does not come."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        return self.proc.returncode


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """Subprocesses of the test; any still running at the end is killed."""
    started: list[Process] = []
    yield started
    for p in started:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait(30)


def request(port: int, method: str, path: str, cid: str | None = None, body: Any = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request over loopback: (status, lower-cased headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        sent = dict(headers or {})
        if cid is not None:
            sent["X-Correlation-ID"] = cid
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=sent)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def wait_http(proc: Process, port: int, path: str, timeout: float = WAIT) -> None:
    """Until the server answers ``path`` with 200; fails with its output when it exits or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            pytest.fail(f"the server exited:\n{proc.describe()}")
        try:
            if request(port, "GET", path, cid="readiness-probe")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"the server did not answer {path} within {timeout}s:\n{proc.describe()}")


def new_cid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def assert_request_context(records: Records, cid: str, method: str, path: str) -> None:
    """Every record of the request carries its method and path, beside the correlation id."""
    assert records, cid
    for r in records:
        assert r["http.method"] == method, r
        assert r["http.path"] == path, r
        assert r["client.ip"] == "127.0.0.1", r


# -- FastAPI ---------------------------------------------------------------------------
class TestFastAPIExample:
    def test_requests_under_uvicorn_reach_kafka_with_their_context(
            self, topics: Topics, processes: list[Process], tmp_path: Path) -> None:
        """Under uvicorn, each request's records (timed, app, audit, request_completed/failed) carry its id."""
        port = free_port()
        server = Process([sys.executable, "-m", "uvicorn", "examples.fastapi_app:app", "--host", "127.0.0.1",
                          "--port", str(port)], topics.env(), ROOT, tmp_path, "uvicorn")
        processes.append(server)
        wait_http(server, port, "/health")

        place, view, missing, boom = (new_cid(x) for x in ("place", "view", "missing", "boom"))
        status, headers, body = request(port, "POST", "/orders", place, {"sku": "sku-9", "quantity": 2},
                                        {"X-User": "alice"})
        assert status == 201, body
        assert headers["x-correlation-id"] == place
        order_id = json.loads(body)["id"]
        assert request(port, "GET", f"/orders/{order_id}", view)[0] == 200
        assert request(port, "GET", "/orders/ord-nope", missing)[0] == 404
        status, headers, _ = request(port, "GET", "/boom", boom)
        assert status == 500 and headers["x-correlation-id"] == boom  # the 500 page too: the whole app is wrapped

        def complete(recs: Records) -> bool:
            return (len(with_cid(recs, place)) >= 4 and len(with_cid(recs, view)) >= 1
                    and len(with_cid(recs, missing)) >= 2 and len(with_cid(recs, boom)) >= 1)

        records = topics.records(complete)
        placed = with_cid(records, place)
        assert sorted(codes(placed)) == sorted(["ORDER_PLACEMENT_STARTED", "STOCK_RESERVING",
                                                "ORDER_PLACEMENT_COMPLETED", "REQUEST_COMPLETED"]), placed
        assert_request_context(placed, place, "POST", "/orders")
        assert all(r["order_id"] == order_id for r in placed if r["code"] != "REQUEST_COMPLETED")
        step = one(placed, "ORDER_PLACEMENT_COMPLETED")["duration_ms"]
        done = one(placed, "REQUEST_COMPLETED")
        assert done["http.status_code"] == 201 and done["logger"] == "http.requests"
        assert done["duration_ms"] >= step > 0  # the request encloses the timed step
        assert done["duration_ms"] == pytest.approx(done["duration"] * 1000)

        assert codes(with_cid(records, view)) == ["REQUEST_COMPLETED"]
        assert sorted(codes(with_cid(records, missing))) == ["ORDER_NOT_FOUND", "REQUEST_COMPLETED"]
        assert one(with_cid(records, missing), "REQUEST_COMPLETED")["http.status_code"] == 404
        failed = one(with_cid(records, boom), "REQUEST_FAILED")
        assert failed["level"] == "ERROR"
        assert failed["error"]["type"] == "RuntimeError"
        assert "payment gateway unreachable" in failed["error"]["stack_trace"]

        audit = topics.records(lambda recs: bool(with_cid(recs, place)), audit=True)
        rec = with_cid(audit, place)
        assert len(rec) == 1 and rec[0]["action"] == "order.create" and rec[0]["actor"] == "alice"
        assert rec[0]["resource"] == f"order/{order_id}" and rec[0]["diff"]["new"]["sku"] == "sku-9"

        # the console handler prints the same JSON as the Kafka message, byte for byte
        lines = set(server.output().splitlines())
        shipped = [m for m in read_topic(topics.servers, topics.app, timeout=30)
                   if m.data.get("correlation_id") == place]
        assert shipped and all(m.value.decode() in lines for m in shipped)
        assert server.stop(signal.SIGINT) == 0, server.describe()


# -- Flask -----------------------------------------------------------------------------
class TestFlaskExample:
    def test_requests_under_werkzeug_reach_kafka_with_their_context(
            self, topics: Topics, processes: list[Process], tmp_path: Path) -> None:
        """Run on its own, the Flask app's records carry each request's id; a failing view's error too."""
        port = free_port()
        server = Process([sys.executable, str(EXAMPLES / "flask_app.py"), "--port", str(port)], topics.env(),
                         ROOT, tmp_path, "flask")
        processes.append(server)
        wait_http(server, port, "/health")

        view, reserve, missing, boom = (new_cid(x) for x in ("view", "reserve", "missing", "boom"))
        status, headers, _ = request(port, "GET", "/items/sku-1", view)
        assert status == 200 and headers["x-correlation-id"] == view
        assert request(port, "POST", "/items/sku-1/reserve", reserve, {"quantity": 3}, {"X-User": "bob"})[0] == 201
        assert request(port, "GET", "/items/sku-404", missing)[0] == 404
        assert request(port, "GET", "/boom", boom)[0] == 500

        def complete(recs: Records) -> bool:
            return (len(with_cid(recs, view)) >= 2 and len(with_cid(recs, reserve)) >= 3
                    and len(with_cid(recs, missing)) >= 2 and len(with_cid(recs, boom)) >= 2)

        records = topics.records(complete)
        viewed = with_cid(records, view)
        assert sorted(codes(viewed)) == ["ITEM_VIEWED", "REQUEST_COMPLETED"]
        assert_request_context(viewed, view, "GET", "/items/sku-1")
        assert one(viewed, "ITEM_VIEWED")["stock"] == 12

        reserved = with_cid(records, reserve)
        assert sorted(codes(reserved)) == ["REQUEST_COMPLETED", "STOCK_RESERVATION_COMPLETED",
                                           "STOCK_RESERVATION_STARTED"]
        assert one(reserved, "REQUEST_COMPLETED")["http.status_code"] == 201
        assert one(reserved, "STOCK_RESERVATION_COMPLETED")["quantity"] == 3

        assert one(with_cid(records, missing), "REQUEST_COMPLETED")["http.status_code"] == 404
        failing = with_cid(records, boom)
        assert one(failing, "REQUEST_COMPLETED")["http.status_code"] == 500
        flask_error = [r for r in failing if r["logger"] == "inventory"]
        assert len(flask_error) == 1 and "inventory database unavailable" in flask_error[0]["error"]["stack_trace"]

        audit = topics.records(lambda recs: bool(with_cid(recs, reserve)), audit=True)
        rec = with_cid(audit, reserve)
        assert len(rec) == 1 and rec[0]["actor"] == "bob"
        assert rec[0]["diff"] == {"old": {"stock": 12}, "new": {"stock": 9}}
        # the development server has no SIGTERM handler: killed by it, not crashed before it
        assert server.stop() in (0, -signal.SIGTERM), server.describe()


# -- gunicorn ----------------------------------------------------------------------------
class TestGunicornExample:
    def test_both_forked_workers_ship_their_records(
            self, topics: Topics, processes: list[Process], tmp_path: Path) -> None:
        """With 2 workers forked after logconfig_dict, each worker's records reach Kafka with its pid."""
        port = free_port()
        server = Process([sys.executable, "-m", "gunicorn", "-c", str(EXAMPLES / "gunicorn.conf.py"),
                          "examples.flask_app:app"],
                         topics.env(GUNICORN_BIND=f"127.0.0.1:{port}", GUNICORN_WORKERS="2"), ROOT, tmp_path,
                         "gunicorn")
        processes.append(server)
        wait_http(server, port, "/health")

        def ready_pids(recs: Records) -> set[int]:
            return {r["process"] for r in recs if r.get("code") == "WORKER_READY"}

        records = topics.records(lambda recs: len(ready_pids(recs)) >= 2)
        workers = ready_pids(records)
        # on failure: the workers' pids as gunicorn and Kafka saw them, and gunicorn's own output
        assert len(workers) == 2 and server.pid not in workers, (
            sorted({(r["process"], r.get("code"), r["message"][:60]) for r in records}, key=str), server.describe())
        for r in records:
            if r.get("code") == "WORKER_READY":
                assert r["worker_pid"] == r["process"]
        booted = {r["process"] for r in records if r["logger"] == "gunicorn.error"
                  and r["message"].startswith("Booting worker")}
        assert booted == workers
        # the master's own records come from the master's handler
        assert any(r["process"] == server.pid and r["message"].startswith("Starting gunicorn") for r in records)

        cids = [new_cid(f"req{n}") for n in range(12)]
        for cid in cids:
            assert request(port, "GET", "/items/sku-1", cid)[0] == 200

        records = topics.records(lambda recs: all(len(with_cid(recs, c)) >= 2 for c in cids))
        for cid in cids:
            mine = with_cid(records, cid)
            assert sorted(codes(mine)) == ["ITEM_VIEWED", "REQUEST_COMPLETED"], mine
            assert len({r["process"] for r in mine}) == 1 and mine[0]["process"] in workers

        assert server.stop() == 0, server.describe()

        def exited(recs: Records) -> set[int]:
            return {r["process"] for r in recs if r["logger"] == "gunicorn.error"
                    and r["message"].startswith("Worker exiting")}

        records = topics.records(lambda recs: exited(recs) >= workers)
        assert exited(records) == workers


    def test_sigterm_during_a_kafka_cut_fits_graceful_timeout_and_loses_nothing(
            self, processes: list[Process], tmp_path: Path) -> None:
        """The Kubernetes rollout case: 4 workers at about 100 requests/s, the network to Kafka cut, then
        SIGTERM to the master during the cut. The stop ends within graceful_timeout (what is pending goes
        to the spool), and after the network is back and the service starts again on the same spool,
        every answered request's record is in Kafka, each under one event id."""
        import threading

        from logkafka.testing import ProxiedBroker

        kafka = ProxiedBroker().start()
        try:
            topic = f"gunicorn.{uuid.uuid4().hex[:8]}"
            kafka.create_topic(topic)
            kafka.create_topic(f"{topic}.audit")
            topics = Topics(kafka, topic)
            env = topics.env(GUNICORN_WORKERS="4", GUNICORN_GRACEFUL_TIMEOUT="10",
                             LOGKAFKA_SPOOL_DIR=str(tmp_path / "spool"), LOGKAFKA_FLUSH_TIMEOUT="10")
            port = free_port()
            env["GUNICORN_BIND"] = f"127.0.0.1:{port}"
            args = [sys.executable, "-m", "gunicorn", "-c", str(EXAMPLES / "gunicorn.conf.py"),
                    "examples.flask_app:app"]
            server = Process(args, env, ROOT, tmp_path, "gunicorn")
            processes.append(server)
            wait_http(server, port, "/health")

            answered: list[str] = []
            stop = threading.Event()

            def client() -> None:
                while not stop.is_set():
                    cid = new_cid("load")
                    try:
                        if request(port, "GET", "/items/sku-1", cid)[0] == 200:
                            answered.append(cid)
                    except OSError:
                        return  # the server is gone
                    time.sleep(0.01)

            load = threading.Thread(target=client, daemon=True)
            load.start()
            time.sleep(3)
            kafka.proxy.cut()
            time.sleep(5)
            started = time.monotonic()
            code = server.stop(signal.SIGTERM, timeout=60)
            took = time.monotonic() - started
            stop.set()
            load.join(30)
            assert code == 0, server.describe()
            assert took < 10, (took, server.describe())  # graceful_timeout: no worker was killed
            assert len(answered) > 200, len(answered)
            assert "GET /items/sku-1 HTTP" not in server.output()  # the access log is really off
            kafka.proxy.restore()

            again = Process(args, env, ROOT, tmp_path, "gunicorn-again")  # replays the spool
            processes.append(again)
            wait_http(again, port, "/health")

            def complete(recs: Records) -> bool:
                done = {r.get("correlation_id") for r in recs if r.get("code") == "REQUEST_COMPLETED"}
                return all(c in done for c in answered)

            records = wait_records(kafka.bootstrap_servers, topic, complete, timeout=120)
            assert again.stop() == 0, again.describe()
            completed: dict[str, set[str]] = {}
            for r in records:
                if r.get("code") == "REQUEST_COMPLETED" and r.get("correlation_id", "").startswith("load-"):
                    completed.setdefault(r["correlation_id"], set()).add(r["event_id"])
            missing = [c for c in answered if c not in completed]
            assert not missing, (len(missing), len(answered), server.describe())
            assert all(len(ids) == 1 for ids in completed.values())
        finally:
            kafka.stop()

    def test_levels_change_in_every_worker_without_a_restart(
            self, topics: Topics, processes: list[Process], tmp_path: Path) -> None:
        """LOGKAFKA_LEVELS_FILE: the master applies it and each forked worker watches it; an edit turns
        inventory.api's DEBUG records on in both workers while they run."""
        import threading

        levels = tmp_path / "levels"
        levels.write_text("inventory.api = INFO\n")
        port = free_port()
        server = Process([sys.executable, "-m", "gunicorn", "-c", str(EXAMPLES / "gunicorn.conf.py"),
                          "examples.flask_app:app"],
                         topics.env(GUNICORN_BIND=f"127.0.0.1:{port}", GUNICORN_WORKERS="2",
                                    LOGKAFKA_LEVELS_FILE=str(levels), LOGKAFKA_LEVELS_INTERVAL="0.2"),
                         ROOT, tmp_path, "gunicorn")
        processes.append(server)
        wait_http(server, port, "/health")
        workers = {r["process"] for r in topics.records(
            lambda recs: len({r["process"] for r in recs if r.get("code") == "WORKER_READY"}) >= 2)
            if r.get("code") == "WORKER_READY"}

        def burst(prefix: str) -> list[str]:
            """Concurrent requests (sync workers take one at a time, so both serve some)."""
            cids = [new_cid(f"{prefix}{n}") for n in range(40)]
            chunks = [cids[n::8] for n in range(8)]
            threads = [threading.Thread(target=lambda c=c: [request(port, "GET", "/items/sku-1", x) for x in c])
                       for c in chunks]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            return cids

        quiet = burst("info")
        records = topics.records(lambda recs: all(with_cid(recs, c) for c in quiet))
        assert not [r for r in records if r.get("code") == "STOCK_READ"]
        levels.write_text("inventory.api = DEBUG\n")
        time.sleep(1.5)
        loud = burst("debug")

        def debug_pids(recs: Records) -> set[int]:
            return {r["process"] for r in recs if r.get("code") == "STOCK_READ" and r["correlation_id"] in loud}

        records = topics.records(lambda recs: debug_pids(recs) >= workers)
        assert debug_pids(records) == workers, (debug_pids(records), workers, server.describe())
        assert all(len([r for r in with_cid(records, c) if r.get("code") == "STOCK_READ"]) == 1 for c in loud)
        assert "levels from" in server.errors() and "inventory.api=DEBUG" in server.errors()
        assert server.stop() == 0, server.describe()


# -- Django ----------------------------------------------------------------------------
class TestDjangoExample:
    def test_runserver_applies_logging_and_ships_view_records(
            self, topics: Topics, processes: list[Process], tmp_path: Path) -> None:
        """manage.py runserver applies the LOGGING setting; views' and Django's records carry each request's id."""
        port = free_port()
        server = Process([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                         topics.env(), EXAMPLES / "django", tmp_path, "django")
        processes.append(server)
        wait_http(server, port, "/health/")

        view, missing, cancel = new_cid("view"), new_cid("missing"), new_cid("cancel")
        status, headers, body = request(port, "GET", "/orders/42/", view)
        assert status == 200 and headers["x-correlation-id"] == view, body
        assert request(port, "GET", "/orders/7/", missing)[0] == 404
        assert request(port, "POST", "/orders/42/cancel/", cancel, headers={"X-User": "carol"})[0] == 200

        def complete(recs: Records) -> bool:
            return (len(with_cid(recs, view)) >= 2 and len(with_cid(recs, missing)) >= 3
                    and len(with_cid(recs, cancel)) >= 2)

        records = topics.records(complete)
        viewed = with_cid(records, view)
        assert sorted(codes(viewed)) == ["ORDER_VIEWED", "REQUEST_COMPLETED"], viewed
        assert_request_context(viewed, view, "GET", "/orders/42/")
        order = one(viewed, "ORDER_VIEWED")
        assert order["logger"] == "mysite.views" and order["order_id"] == 42 and order["service"] == "shop"

        absent = with_cid(records, missing)
        assert one(absent, "ORDER_NOT_FOUND")["order_id"] == 7
        assert one(absent, "REQUEST_COMPLETED")["http.status_code"] == 404
        django_request = [r for r in absent if r["logger"] == "django.request"]
        assert len(django_request) == 1 and django_request[0]["level"] == "WARNING"

        assert sorted(codes(with_cid(records, cancel))) == ["ORDER_CANCELLED", "REQUEST_COMPLETED"]
        audit = topics.records(lambda recs: bool(with_cid(recs, cancel)), audit=True)
        rec = with_cid(audit, cancel)
        assert len(rec) == 1 and rec[0]["actor"] == "carol" and rec[0]["resource"] == "order/42"
        assert rec[0]["diff"] == {"old": {"status": "paid"}, "new": {"status": "cancelled"}}
        # runserver has no SIGTERM handler: killed by it, not crashed before it
        assert server.stop() in (0, -signal.SIGTERM), server.describe()


    def test_under_gunicorn_each_worker_ships_its_requests(
            self, topics: Topics, processes: list[Process], tmp_path: Path) -> None:
        """``gunicorn mysite.wsgi`` (as mysite/wsgi.py says), two workers: each worker applies LOGGING when it
        loads the app, its requests' records reach Kafka with their correlation id and the worker's pid, and
        a SIGTERM ends gunicorn cleanly (exit 0) after its workers delivered."""
        port = free_port()
        server = Process([sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "mysite.wsgi"],
                         topics.env(), EXAMPLES / "django", tmp_path, "gunicorn-django")
        processes.append(server)
        wait_http(server, port, "/health/")
        cids = [new_cid(f"g{i}") for i in range(8)]
        for cid in cids:
            status, headers, body = request(port, "GET", "/orders/42/", cid)
            assert status == 200 and headers["x-correlation-id"] == cid, body
        records = topics.records(lambda recs: all(len(with_cid(recs, c)) >= 2 for c in cids))
        for cid in cids:
            mine = with_cid(records, cid)
            assert sorted(codes(mine)) == ["ORDER_VIEWED", "REQUEST_COMPLETED"], mine
            assert_request_context(mine, cid, "GET", "/orders/42/")
            assert len({r["process"] for r in mine}) == 1 and mine[0]["process"] != server.pid, mine
        assert server.stop() == 0, server.describe()


# -- Celery ----------------------------------------------------------------------------
class TestCeleryExample:
    def test_worker_records_carry_the_senders_context(
            self, topics: Topics, processes: list[Process], tmp_path: Path) -> None:
        """A real worker runs tasks sent under different correlation ids; its records carry the sender's."""
        env = topics.env(CELERY_FILESYSTEM_DIR=str(tmp_path / "celery-messages"), INVOICE_COUNT="4")
        worker = Process([sys.executable, "-m", "celery", "-A", "examples.celery_worker", "worker", "--pool", "solo",
                          "--without-heartbeat", "--without-gossip", "--without-mingle"], env, ROOT, tmp_path,
                         "worker")
        processes.append(worker)
        sender = subprocess.run([sys.executable, "-m", "examples.celery_worker"], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=WAIT)
        assert sender.returncode == 0, sender.stderr
        sent = [line for line in sender.stdout.splitlines() if not line.startswith("{")]
        assert len(sent) == 4 and len(set(sent)) == 4, sender.stdout

        def complete(recs: Records) -> bool:
            return all(len(with_cid(recs, cid)) >= 5 for cid in sent)

        records = topics.records(complete)
        assert worker.proc.poll() is None, worker.describe()
        task_ids = set()
        for cid in sent:
            mine = with_cid(records, cid)
            assert sorted(codes(mine)) == ["INVOICE_CHARGED", "INVOICE_CHARGING", "INVOICE_SENT",
                                           "PAYMENT_CAPTURE_COMPLETED", "PAYMENT_CAPTURE_STARTED"], mine
            sent_rec = one(mine, "INVOICE_SENT")
            in_worker = [r for r in mine if r["code"] != "INVOICE_SENT"]
            assert {r["process"] for r in in_worker} == {worker.pid}
            assert sent_rec["process"] != worker.pid
            assert one(mine, "INVOICE_CHARGING")["invoice_id"] == sent_rec["invoice_id"]
            assert all(r["tenant_id"] == "acme" and r["task_name"] == "billing.charge_invoice" for r in in_worker)
            assert len({r["task_id"] for r in in_worker}) == 1
            task_ids.add(in_worker[0]["task_id"])
        assert len(task_ids) == 4

        audit = topics.records(lambda recs: all(with_cid(recs, cid) for cid in sent), audit=True)
        for cid in sent:
            rec = with_cid(audit, cid)
            assert len(rec) == 1 and rec[0]["action"] == "invoice.charge" and rec[0]["tenant_id"] == "acme"
        assert worker.stop() == 0, worker.describe()


    def test_recycled_prefork_children_deliver_every_task_and_audit_record(
            self, topics: Topics, processes: list[Process], tmp_path: Path) -> None:
        """--pool prefork --max-tasks-per-child 1: each child ends with os._exit after one task; what it logged
        (the task's records and its audit record) is delivered by connect_celery's worker_process_shutdown."""
        env = topics.env(CELERY_FILESYSTEM_DIR=str(tmp_path / "celery-messages"), INVOICE_COUNT="20")
        worker = Process([sys.executable, "-m", "celery", "-A", "examples.celery_worker", "worker", "--pool",
                          "prefork", "--concurrency", "2", "--max-tasks-per-child", "1", "--without-heartbeat",
                          "--without-gossip", "--without-mingle"], env, ROOT, tmp_path, "worker")
        processes.append(worker)
        sender = subprocess.run([sys.executable, "-m", "examples.celery_worker"], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=WAIT)
        assert sender.returncode == 0, sender.stderr
        sent = [line for line in sender.stdout.splitlines() if not line.startswith("{")]
        assert len(sent) == 20, sender.stdout

        def charged(recs: Records) -> set[str]:
            return {r["correlation_id"] for r in recs if r.get("code") == "INVOICE_CHARGED"}

        records = topics.records(lambda recs: charged(recs) >= set(sent))
        assert charged(records) >= set(sent), (len(charged(records)), worker.describe())
        children = {r["process"] for r in records if r.get("code") == "INVOICE_CHARGED"}
        assert worker.pid not in children and len(children) >= 10  # a child per task: recycled
        audit = topics.records(lambda recs: {r.get("correlation_id") for r in recs} >= set(sent), audit=True)
        assert {r.get("correlation_id") for r in audit} >= set(sent)
        assert worker.stop() == 0, worker.describe()

    def test_levels_change_in_prefork_children_without_a_restart(
            self, topics: Topics, processes: list[Process], tmp_path: Path) -> None:
        """LOGKAFKA_LEVELS_FILE in a prefork worker: children forked before the edit and children forked after
        it (--max-tasks-per-child 1) log billing.tasks' DEBUG records once the file says DEBUG."""
        levels = tmp_path / "levels"
        levels.write_text("billing.tasks = INFO\n")
        env = topics.env(CELERY_FILESYSTEM_DIR=str(tmp_path / "celery-messages"), INVOICE_COUNT="6",
                         LOGKAFKA_LEVELS_FILE=str(levels), LOGKAFKA_LEVELS_INTERVAL="0.2")
        worker = Process([sys.executable, "-m", "celery", "-A", "examples.celery_worker", "worker", "--pool",
                          "prefork", "--concurrency", "2", "--max-tasks-per-child", "3", "--without-heartbeat",
                          "--without-gossip", "--without-mingle"], env, ROOT, tmp_path, "worker")
        processes.append(worker)

        def send() -> list[str]:
            sender = subprocess.run([sys.executable, "-m", "examples.celery_worker"], env=env, cwd=ROOT,
                                    capture_output=True, text=True, timeout=WAIT)
            assert sender.returncode == 0, sender.stderr
            return [line for line in sender.stdout.splitlines() if not line.startswith("{")]

        def done(cids: list[str]) -> Callable[[Records], bool]:
            return lambda recs: {r["correlation_id"] for r in recs if r.get("code") == "INVOICE_CHARGED"} >= set(cids)

        quiet = send()
        records = topics.records(done(quiet))
        assert not [r for r in records if r.get("code") == "INVOICE_CHECKED"]
        levels.write_text("billing.tasks = DEBUG\n")
        time.sleep(1.5)
        loud = send() + send()
        records = topics.records(done(loud))
        checked = [r for r in records if r.get("code") == "INVOICE_CHECKED" and r["correlation_id"] in loud]
        assert {r["correlation_id"] for r in checked} == set(loud), (len(checked), worker.describe())
        assert worker.pid not in {r["process"] for r in checked}  # logged in the children
        assert worker.stop() == 0, worker.describe()

    def test_a_task_sent_without_a_correlation_id_gets_its_task_id(
            self, topics: Topics, processes: list[Process], tmp_path: Path) -> None:
        """What celery beat sends has no bound context: the task's records carry its task id as correlation_id."""
        env = topics.env(CELERY_FILESYSTEM_DIR=str(tmp_path / "celery-messages"))
        worker = Process([sys.executable, "-m", "celery", "-A", "examples.celery_worker", "worker", "--pool", "solo",
                          "--without-heartbeat", "--without-gossip", "--without-mingle"], env, ROOT, tmp_path,
                         "worker")
        processes.append(worker)
        sender = subprocess.run([sys.executable, "-c", "from examples.celery_worker import charge_invoice; "
                                 "print(charge_invoice.delay('inv-beat', 1.0).id)"],
                                env=env, cwd=ROOT, capture_output=True, text=True, timeout=WAIT)
        assert sender.returncode == 0, sender.stderr
        task_id = sender.stdout.strip().splitlines()[-1]
        records = topics.records(lambda recs: any(r.get("code") == "INVOICE_CHARGED" for r in recs))
        charged = [r for r in records if r.get("code") == "INVOICE_CHARGED"]
        assert len(charged) == 1 and charged[0]["correlation_id"] == task_id == charged[0]["task_id"], charged
        assert worker.stop() == 0, worker.describe()


# -- asyncio ---------------------------------------------------------------------------
class TestAsyncioExample:
    def test_each_task_and_its_executor_call_keep_their_own_context(self, topics: Topics, tmp_path: Path) -> None:
        """Concurrent jobs log under their own ids, in the task and on the executor thread; timed wraps a step."""
        run = subprocess.run([sys.executable, str(EXAMPLES / "asyncio_service.py"), "--jobs", "4"],
                             env=topics.env(), cwd=ROOT, capture_output=True, text=True, timeout=WAIT)
        assert run.returncode == 0, run.stderr
        cids = run.stdout.split()
        assert len(cids) == 4 and len(set(cids)) == 4

        records = topics.records(lambda recs: len(recs) >= 2 + 5 * 4)
        batch_ids = {r.get("batch_id") for r in records}
        assert len(batch_ids) == 1 and None not in batch_ids
        jobs = set()
        for cid in cids:
            mine = with_cid(records, cid)
            assert sorted(codes(mine)) == ["FETCH_ROWS_COMPLETED", "FETCH_ROWS_STARTED", "JOB_DONE", "JOB_STARTED",
                                           "REPORT_RENDERED"], mine
            assert len({r["job_id"] for r in mine}) == 1
            jobs.add(mine[0]["job_id"])
            rendered = one(mine, "REPORT_RENDERED")
            assert rendered["thread"] != "MainThread"  # the executor's thread, with the job's context
            assert rendered["digest"] == one(mine, "JOB_DONE")["digest"]
            assert one(mine, "FETCH_ROWS_COMPLETED")["source"] == f"table{mine[0]['job_id'].split('-')[1]}"
        assert jobs == {f"job-{n}" for n in range(4)}
        batch = [r for r in records if r.get("code") in ("BATCH_STARTED", "BATCH_DONE")]
        assert len(batch) == 2 and not any("correlation_id" in r for r in batch)


# -- Kubernetes ------------------------------------------------------------------------
def k8s_env() -> dict[str, str]:
    """What deployment.yaml's identity variables and downward API give a pod, read from the file (so a change
    there that the app does not follow fails here): its own values, and a made-up pod for the fieldRefs."""
    import yaml

    pod = {"metadata.name": "payments-worker-7d9f8-x2k4q", "metadata.namespace": "payments", "spec.nodeName": "node-a"}
    docs = list(yaml.safe_load_all((EXAMPLES / "kubernetes" / "deployment.yaml").read_text()))
    (deployment,) = [d for d in docs if d and d.get("kind") == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: str(e["value"]) if "value" in e else pod[e["valueFrom"]["fieldRef"]["fieldPath"]]
           for e in container["env"]}
    return {name: env[name] for name in ("SERVICE_INSTANCE_ID", "POD_NAMESPACE", "NODE_NAME", "OTEL_SERVICE_NAME")}


#: What deployment.yaml's downward API and identity variables give the pod.
K8S_ENV = k8s_env()


class TestKubernetesExample:

    def test_stdout_and_kafka_carry_the_same_json_until_sigterm(
            self, topics: Topics, processes: list[Process], tmp_path: Path) -> None:
        """Every stdout line is a Kafka message, byte for byte; on SIGTERM the job ends and the last record arrives."""
        app = Process([sys.executable, str(EXAMPLES / "kubernetes" / "app.py"), "--interval", "0.02"],
                      topics.env(**K8S_ENV), ROOT, tmp_path, "k8s")
        processes.append(app)
        deadline = time.monotonic() + WAIT
        while app.output().count("SETTLEMENT_LATE") < 2 and time.monotonic() < deadline:
            assert app.proc.poll() is None, app.describe()
            time.sleep(0.1)
        assert app.stop() == 0, app.describe()

        lines = app.output().splitlines()
        assert '"WORKER_STOPPING"' in lines[-1]
        messages = [m.value.decode() for m in read_topic(topics.servers, topics.app, expected=len(lines),
                                                         timeout=WAIT)]
        assert sorted(messages) == sorted(lines)
        records = [json.loads(line) for line in lines]
        for r in records:
            assert r["instance_id"] == "payments-worker-7d9f8-x2k4q" and r["service"] == "payments-worker"
            assert r["k8s_namespace"] == "payments" and r["k8s_node"] == "node-a"
        assert codes(records)[0] == "WORKER_STARTED"
        # the job running when SIGTERM came was finished, not cut off
        assert codes(records)[-2] in ("SETTLEMENT_COMPLETED", "SETTLEMENT_LATE")
        assert records[-1]["jobs_done"] == len([c for c in codes(records) if c == "SETTLEMENT_COMPLETED"])

    def test_log_sample_rate_keeps_or_drops_a_job_whole_in_both_places(
            self, topics: Topics, tmp_path: Path) -> None:
        """With LOG_SAMPLE_RATE=0.5, stdout and Kafka keep the same records and whole jobs; no warning is dropped."""
        run = subprocess.run([sys.executable, str(EXAMPLES / "kubernetes" / "app.py"), "--jobs", "40",
                              "--interval", "0"], env=topics.env(LOG_SAMPLE_RATE="0.5", **K8S_ENV), cwd=ROOT,
                             capture_output=True, text=True, timeout=WAIT)
        assert run.returncode == 0, run.stderr
        lines = run.stdout.splitlines()
        messages = [m.value.decode() for m in read_topic(topics.servers, topics.app, timeout=WAIT, idle=2.0)]
        # the same records in both places, also those without a correlation id (one draw per record)
        assert sorted(messages) == sorted(lines)

        records = [json.loads(line) for line in lines if '"correlation_id"' in line]
        late = {r["job"] for r in records if r.get("code") == "SETTLEMENT_LATE"}
        assert late == {n for n in range(40) if n % 4 == 3}
        kept = {}
        for r in records:
            if r.get("code") != "SETTLEMENT_LATE":
                kept.setdefault(r["job"], []).append(r["code"])
        assert all(sorted(c) == ["SETTLEMENT_COMPLETED", "SETTLEMENT_STARTED"] for c in kept.values()), kept
        assert 0 < len(kept) < 40

    def test_service_name_without_the_deployment(self, topics: Topics) -> None:
        """Run outside Kubernetes (no OTEL_SERVICE_NAME), the example still names its service, in Kafka too."""
        env = topics.env(**{k: v for k, v in K8S_ENV.items() if k != "OTEL_SERVICE_NAME"})
        env.pop("OTEL_SERVICE_NAME", None)
        run = subprocess.run([sys.executable, str(EXAMPLES / "kubernetes" / "app.py"), "--jobs", "1",
                              "--interval", "0"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=WAIT)
        assert run.returncode == 0, run.stderr
        lines = run.stdout.splitlines()
        assert lines and {json.loads(line)["service"] for line in lines} == {"payments-worker"}
        messages = read_topic(topics.servers, topics.app, expected=len(lines), timeout=WAIT)
        assert {m.data["service"] for m in messages} == {"payments-worker"}

    def test_logkafka_check_accepts_the_recipe(self, topics: Topics) -> None:
        """`logkafka check examples/kubernetes/logging.yaml` builds the recipe and reads its probe back."""
        run = subprocess.run([sys.executable, "-m", "logkafka", "check", str(EXAMPLES / "kubernetes" / "logging.yaml")],
                             env=topics.env(**K8S_ENV), cwd=ROOT, capture_output=True, text=True, timeout=WAIT)
        assert run.returncode == 0, run.stdout + run.stderr
        probes = [m.data for m in read_topic(topics.servers, f"{topics.app}.check", expected=1, timeout=WAIT)
                  if m.data.get("code") == "LOGKAFKA_CHECK"]  # the probe's own topic, not the application's
        assert len(probes) == 1 and probes[0]["service"] == "payments-worker"
