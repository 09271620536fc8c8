"""``SamplingFilter``: keep a fraction of low-level records (being written)."""

from __future__ import annotations

import logging


class SamplingFilter(logging.Filter):
    """Keep a fraction ``rate`` of records at or below ``max_level``."""

    def __init__(self, rate: float | None = None, max_level: int | str = logging.INFO) -> None:
        raise NotImplementedError("SamplingFilter is being written")
