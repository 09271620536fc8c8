"""``SamplingFilter``: keep a fraction of the chatty records, every important one."""

from __future__ import annotations

import logging
import math
import random
import threading
import zlib
from typing import Any

from logkafka._context import current
from logkafka._record import SAMPLE, STREAM
from logkafka._values import given, level_of, number_of

ENV_RATE = "LOG_SAMPLE_RATE"
_SCALE = float(1 << 32)


class SamplingFilter(logging.Filter):
    """Keep a fraction ``rate`` of the records at or below ``max_level``; every other record passes.

    Records above ``max_level`` (WARNING and above always), and audit and security
    records, are never sampled out. ``rate`` is a number from 0 to 1; when it is not
    given it comes from the environment variable ``LOG_SAMPLE_RATE``, else 1 (keep all).

    By default the decision is made per request, not per record: a record whose
    ``correlation_id`` (bound with :func:`logkafka.bind`, or passed in ``extra``) is
    known is kept when a hash of that id falls below ``rate``. So a request's records
    are kept or dropped together, in every process and service that uses the same
    rate. A record without one, or every record with ``by=None``, is kept at
    random; the draw is kept on the record, so every SamplingFilter it meets (on
    the stdout handler and on the Kafka handler) agrees. ``by`` may name another
    context key. On a dictConfig handler::

        "filters": {"sample": {"()": "logkafka.SamplingFilter", "rate": 0.1}},
        "handlers": {"kafka": {..., "filters": ["sample"]}},

    :attr:`dropped` counts the records sampled out.
    """

    def __init__(self, rate: float | str | None = None, max_level: int | str = logging.INFO, *,
                 by: str | None = "correlation_id") -> None:
        super().__init__()
        self.rate = _rate(rate)
        try:
            level = level_of(max_level)
        except ValueError:
            raise ValueError(f"max_level: unknown logging level {max_level!r}") from None
        if level >= logging.WARNING:
            raise ValueError(f"max_level: WARNING and above are never sampled; expected a level below WARNING, "
                             f"got {logging.getLevelName(level)}")
        if by is not None and (not isinstance(by, str) or not by):
            raise ValueError(f"by: expected a context key such as 'correlation_id', or None, got {by!r}")
        self.max_level = level
        self.by = by
        self._threshold = self.rate * _SCALE
        #: How many records this filter dropped.
        self.dropped = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is kept."""
        if record.levelno > self.max_level or self.rate >= 1.0 or STREAM in record.__dict__:
            return True
        if self._keep(record):
            return True
        with self._lock:
            self.dropped += 1
        return False

    def _keep(self, record: logging.LogRecord) -> bool:
        by = self.by
        if by is not None:
            key: Any = record.__dict__.get(by)
            if key is None:
                key = current().get(by)
            if key is not None:
                return zlib.crc32(str(key).encode("utf-8", "replace")) < self._threshold
        # one draw per record, kept on it: every filter it meets (stdout's, Kafka's) agrees
        draw = record.__dict__.get(SAMPLE)
        if draw is None:
            draw = record.__dict__[SAMPLE] = random.random()
        return bool(draw < self.rate)

    def __repr__(self) -> str:
        return f"SamplingFilter(rate={self.rate}, max_level={logging.getLevelName(self.max_level)}, by={self.by!r})"


def _rate(value: float | str | None) -> float:
    """The sampling rate from the argument or ``LOG_SAMPLE_RATE``, validated."""
    value, name = given("rate", ENV_RATE, value)
    if value is None or (name == ENV_RATE and not str(value).strip()):  # a blank variable is not set
        return 1.0
    rate: float = number_of(name, value, float, "a number from 0 to 1")
    if not math.isfinite(rate) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"{name}: expected a number from 0 to 1, got {value!r}")
    return rate
