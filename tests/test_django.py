"""logkafka.DjangoMiddleware in a real Django project's MIDDLEWARE, through Django's sync and async handlers."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

from logkafka.testing import read_topic

APP = """
    import asyncio, json, logging, sys
    import django
    from django.conf import settings

    servers, topic = sys.argv[1:3]
    settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, SECRET_KEY="test", USE_TZ=True,
                       MIDDLEWARE=["logkafka.DjangoMiddleware", "django.middleware.common.CommonMiddleware"],
                       LOGKAFKA_MIDDLEWARE={"exclude_paths": ["/health"]})
    django.setup()
    from django.http import HttpResponse
    from django.test import AsyncClient, Client
    from django.urls import path
    import logkafka

    log = logging.getLogger("app")

    def ok(request):
        log.info("in the view")
        return HttpResponse("ok")

    def boom(request):
        log.info("about to fail")
        raise ValueError("boom")

    async def aok(request):
        log.info("in the async view")
        return HttpResponse("aok")

    def health(request):
        return HttpResponse("up")

    urlpatterns = [path("ok", ok), path("boom", boom), path("aok", aok), path("health", health)]
    handler = logkafka.KafkaLogHandler(servers, topic, flush_timeout=30)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)

    client = Client(raise_request_exception=False)
    out = {}
    r = client.get("/ok", HTTP_X_CORRELATION_ID="cid-sync")
    out["ok"] = (r.status_code, r["X-Correlation-ID"])
    r = client.get("/boom", HTTP_X_REQUEST_ID="cid-boom")
    out["boom"] = (r.status_code, r["X-Correlation-ID"])
    r = client.get("/health")
    out["health"] = (r.status_code, r["X-Correlation-ID"])

    async def call_async():
        r = await AsyncClient().get("/aok", headers={"X-Correlation-ID": "cid-async"})
        return (r.status_code, r["X-Correlation-ID"])
    out["aok"] = asyncio.run(call_async())
    assert handler.flush(30)
    out["delivered"] = handler.stats()["delivered"]
    handler.close()
    print(json.dumps(out))
"""


def test_django_middleware_sync_and_async(kafka_broker: Any, kafka_topic: str) -> None:
    """A view's records carry the request's context (sync and async views), the correlation id is echoed,
    an unhandled exception gives request_failed with its stack trace (and Django's own record of it carries
    the correlation id), an excluded path gives no request record."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(APP), kafka_broker.bootstrap_servers, kafka_topic],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ok"] == [200, "cid-sync"] and out["boom"] == [500, "cid-boom"] and out["aok"] == [200, "cid-async"]
    assert out["health"][0] == 200 and len(out["health"][1]) == 36  # a new id, echoed
    got = [m.data for m in read_topic(kafka_broker.bootstrap_servers, kafka_topic, expected=out["delivered"],
                                      timeout=60)]
    by = {(d["message"], d.get("correlation_id")): d for d in got}
    assert ("in the view", "cid-sync") in by and ("in the async view", "cid-async") in by, list(by)
    done = by[("request_completed", "cid-sync")]
    assert (done["http.status_code"], done["http.method"], done["http.path"], done["level"]) == (200, "GET", "/ok",
                                                                                                 "INFO")
    assert by[("request_completed", "cid-async")]["http.path"] == "/aok"
    failed = by[("request_failed", "cid-boom")]
    assert failed["http.status_code"] == 500 and failed["error"]["type"] == "ValueError", failed
    assert ("about to fail", "cid-boom") in by
    django_own = [d for d in got if d["logger"] == "django.request"]
    assert django_own and django_own[0]["correlation_id"] == "cid-boom", django_own
    assert not [d for d in got if d.get("http.path") == "/health" and d["message"].startswith("request_")]
