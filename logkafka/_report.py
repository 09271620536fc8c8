"""logkafka's own problems: a rate-limited line on stderr, never a log record.

logkafka never logs through ``logging`` from its worker: a logging call there
could wait on the lock ``dictConfig`` holds while it closes this very handler.
"""

from __future__ import annotations

import sys
import time

_INTERVAL = 5.0
_last: dict[str, float] = {}
_suppressed: dict[str, int] = {}


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
        if stream is not None:
            stream.write(f"logkafka: {text}{suffix}\n")
            stream.flush()
    except Exception:
        pass
