"""RFC 3339 UTC timestamps with milliseconds, as every record shows them."""

from __future__ import annotations

import time

#: ``.000Z`` to ``.999Z``: the end of a timestamp, by millisecond.
MILLIS = tuple(f".{i:03d}Z" for i in range(1000))
#: The same as bytes, for the byte template.
MILLIS_BYTES = tuple(m.encode() for m in MILLIS)


class Clock:
    """RFC 3339 UTC timestamps with milliseconds, the date part cached per second."""

    __slots__ = ("cached",)

    def __init__(self) -> None:
        #: (second, its text up to the seconds): one tuple, so threads never see a mix. The byte
        #: template reads it to join the millisecond part itself.
        self.cached = (-1, "")

    def __call__(self, created: float) -> str:
        ms = int(created * 1000)
        second = ms // 1000
        seen, text = self.cached
        if seen != second:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self.cached = (second, text)
        return text + MILLIS[ms - second * 1000]
