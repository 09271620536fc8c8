"""logkafka's own problems: a rate-limited line on stderr, never a log record.

logkafka never logs through ``logging`` from its worker: a logging call there
could wait on the lock ``dictConfig`` holds while it closes this very handler.

Each line says when, which process and which service: ``logkafka: <what>
(<UTC time>, pid <pid>, <service>)``; with ``LOGKAFKA_REPORT_FORMAT=json``, one
JSON object a line (``time``, ``pid``, ``service``, ``kind``, ``message``), for
a log collector.
"""

from __future__ import annotations

import json
import os
import sys
import time

_INTERVAL = 5.0
_last: dict[str, float] = {}
_suppressed: dict[str, int] = {}
_SERVICE: list[str] = []  # the first handler's service name


def set_service(name: str) -> None:
    """The service the lines name (the first handler's)."""
    if not _SERVICE:
        _SERVICE.append(name)


def report(kind: str, text: str, interval: float = _INTERVAL) -> None:
    """Write ``text`` to stderr at most once per ``interval`` seconds for each ``kind``."""
    now = time.monotonic()
    if now - _last.get(kind, -1e9) < interval:
        _suppressed[kind] = _suppressed.get(kind, 0) + 1
        return
    _last[kind] = now
    more = _suppressed.pop(kind, 0)
    suffix = f" ({more} similar messages suppressed)" if more else ""
    try:
        stream = sys.stderr
        if stream is None:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        service = _SERVICE[0] if _SERVICE else "-"
        if os.environ.get("LOGKAFKA_REPORT_FORMAT", "").lower() == "json":
            line = json.dumps({"time": stamp, "pid": os.getpid(), "service": service, "logger": "logkafka",
                               "kind": kind.split(":")[0], "message": text + suffix})
        else:
            line = f"logkafka: {text}{suffix} ({stamp}, pid {os.getpid()}, {service})"
        stream.write(line + "\n")
        stream.flush()
    except Exception:
        pass
