"""Helpers shared by the tests (the tests directory is on sys.path under pytest)."""

from __future__ import annotations

import logging


class ListHandler(logging.Handler):
    """Keeps every record it handles."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
