"""Health for probes and operators: ``ok``, ``degraded`` or ``failing``, with the reasons in words."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

#: Seconds during which a loss keeps a handler "failing".
LOSS_WINDOW = 60.0
_ORDER = {"ok": 0, "degraded": 1, "failing": 2}


class Health:
    """One handler's health, judged from its ``stats()``; remembers when records were last lost."""

    def __init__(self) -> None:
        self._lost = 0
        self._lost_at = -1e9

    def assess(self, stats: dict[str, Any]) -> dict[str, Any]:
        """The status and its reasons, from ``stats``.

        failing: records were lost in the last minute, or no broker answers and there
        is no usable spool (records only wait in memory). degraded: no broker answers
        (records go to the spool), records wait in the spool, or the spool is off or
        refuses writes. ok: none of these.
        """
        failing: list[str] = []
        degraded: list[str] = []
        lost = stats["ledger"]["lost"]
        total = sum(lost.values())
        now = time.monotonic()
        if total > self._lost:
            self._lost, self._lost_at = total, now
        if now - self._lost_at < LOSS_WINDOW:
            why = ", ".join(f"{n} {reason}" for reason, n in sorted(lost.items()))
            failing.append(f"records lost in the last minute ({why})")
        no_spool = stats["spool_dir"] is None or stats["spool_refusing"] is not None
        trouble = stats["trouble_s"]
        if trouble is not None:
            text = f"Kafka has not answered for {trouble:.0f}s"
            if no_spool:
                failing.append(f"{text}; no usable spool: records wait in memory only")
            else:
                degraded.append(f"{text}: records go to the spool")
        if stats["spooling"]:
            degraded.append(f"{stats['ledger']['spooled']} records wait in the spool")
        if stats["spool_off"] is not None:
            degraded.append(f"no disk spool: {stats['spool_off']}")
        if stats["spool_refusing"] is not None:
            degraded.append(f"the spool refuses writes ({stats['spool_refusing']}): records go from memory")
        status = "failing" if failing else "degraded" if degraded else "ok"
        return {"status": status, "reasons": failing + degraded, "topic": stats["topic"]}


def combine(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The worst status of several handlers, with every reason."""
    handlers = list(parts)
    status = max((h["status"] for h in handlers), key=_ORDER.__getitem__, default="ok")
    return {"status": status, "reasons": [r for h in handlers for r in h["reasons"]], "handlers": handlers}


def wsgi_app(health: Callable[[], dict[str, Any]]) -> Callable[..., list[bytes]]:
    """A WSGI app answering every request with ``health()`` as JSON: 200, or 503 when failing."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body, status = _answer(health)
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return app


def asgi_app(health: Callable[[], dict[str, Any]]) -> Callable[..., Any]:
    """An ASGI app answering every HTTP request with ``health()`` as JSON: 200, or 503 when failing."""

    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope.get("type") != "http":
            return
        body, status = _answer(health)
        await send({"type": "http.response.start", "status": int(status.split()[0]),
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


def _answer(health: Callable[[], dict[str, Any]]) -> tuple[bytes, str]:
    state = health()
    return json.dumps(state).encode(), "503 Service Unavailable" if state["status"] == "failing" else "200 OK"
