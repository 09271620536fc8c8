"""Secrets and personal data removed from a record's keys, values and messages.

The rules are :mod:`logkafka._redact.rules` (its docstring says them); the
engine that applies them, :class:`Redactor`, and the settings are
:mod:`logkafka._redact.engine`.
"""

from logkafka._redact.engine import Redactor, redaction_settings
from logkafka._redact.rules import CYCLE, MAX_DEPTH, REDACTED, SECRET_KEYS, SECRET_SUFFIXES

__all__ = ["CYCLE", "MAX_DEPTH", "REDACTED", "SECRET_KEYS", "SECRET_SUFFIXES", "Redactor", "redaction_settings"]
