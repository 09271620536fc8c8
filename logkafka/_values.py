"""Setting values: the argument, else an environment variable, else the default; parsed and checked.

Every error is a ``ValueError`` naming where the bad value came from: the
argument's name, or the environment variable's.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

#: The words read as true and as false (after ``strip().lower()``).
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})

_SIZE_RE = re.compile(r"^\s*(\d{1,15}(?:\.\d{1,6})?)\s*(?:([kmgt])i?b?|(b?))\s*$", re.IGNORECASE)
_MAX_SIZE = 1 << 40  # librdkafka's buffer settings are 32-bit numbers
_SIZE_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def env_bool(name: str, value: bool | str | None, default: bool) -> bool:
    """A boolean from an argument, else the environment variable ``name`` (unset or blank: ``default``)."""
    source = name
    if value is None:
        value = os.environ.get(name)
        if value is None or not value.strip():
            return default
    else:
        source = name.lower().removeprefix("logkafka_")
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ValueError(f"{source}: expected true or false, got {value!r}")


def given(name: str, env: str, value: Any) -> tuple[Any, str]:
    """(the argument, ``name``), else (the environment variable's value, ``env``); (None, ``name``) when
    neither is set (an empty variable is not set)."""
    if value is None:
        raw = os.environ.get(env)
        if raw is not None and raw != "":
            return raw, env
    return value, name


def number_of(source: str, value: Any, kind: type, what: str) -> Any:
    """``value`` as a number of ``kind`` (``int`` or ``float``; a bool is none), else a ``ValueError``
    saying ``what`` was expected."""
    if isinstance(value, bool):
        raise ValueError(f"{source}: expected {what}, got {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: expected {what}, got {value!r}") from None


def positive(name: str, env: str, value: Any, default: float, kind: type) -> Any:
    """A positive number of ``kind`` (``int`` or ``float``) from the argument, else ``env``, else ``default``."""
    value, source = given(name, env, value)
    if value is None:
        return kind(default)
    number = number_of(source, value, kind, "an integer" if kind is int else "a number")
    if kind is int and isinstance(value, float) and value != number:
        raise ValueError(f"{source}: expected an integer, got {value!r}")
    if not number > 0:
        raise ValueError(f"{source}: must be positive, got {value!r}")
    return number


def multiprocess_dir() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR`` (or the older lower-case name), when set: prometheus_client's multiprocess
    mode, whose export the handler starts (and only then imports)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


def byte_size(name: str, env: str, value: Any, default: int, minimum: int = 1) -> int:
    """A size in bytes from the argument, else the environment variable ``env``, else ``default``:
    a number of bytes, or with a unit (``16MiB``, ``16M``, ``512KB``; K/M/G are powers of 1024)."""
    value, source = given(name, env, value)
    if value is None:
        return default
    if isinstance(value, bool):
        raise ValueError(f"{source}: expected a size in bytes, got {value!r}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE_RE.match(str(value))
        if not match:
            raise ValueError(f"{source}: expected a size in bytes such as 16777216, '16MiB' or '512KiB', got {value!r}")
        size = int(float(match.group(1)) * 1024 ** _SIZE_UNITS[(match.group(2) or "").lower()])
    if size > _MAX_SIZE:
        raise ValueError(f"{source}: at most 1 TiB, got {value!r}")
    if size < minimum:
        raise ValueError(f"{source}: must be at least {minimum} bytes ({minimum >> 20} MiB), got {value!r}"
                         if minimum >= 1 << 20 else f"{source}: must be at least {minimum}, got {value!r}")
    return size


def choice(name: str, env: str, value: Any, default: str, allowed: tuple[str, ...]) -> str:
    """One of ``allowed`` from the argument, else ``env``, else ``default``."""
    value, source = given(name, env, value)
    if value is None:
        value = default
    if value not in allowed:
        raise ValueError(f"{source}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
    return str(value)


def level_of(value: int | str, name: str = "level") -> int:
    """A logging level from a number or a name (``name``: the setting's name in messages)."""
    if isinstance(value, int):
        return value
    text = str(value).strip().upper()
    if text.isdigit():
        return int(text)
    level = logging.getLevelName(text)
    if not isinstance(level, int):
        raise ValueError(f"{name}: unknown logging level {value!r} (DEBUG, INFO, WARNING, ERROR, CRITICAL or a number)")
    return level


def env_level(value: int | str) -> int:
    """The handler's level: the argument, else ``LOGKAFKA_LEVEL`` when the argument is left at NOTSET."""
    env = os.environ.get("LOGKAFKA_LEVEL", "").strip()
    level = level_of(value)
    if level == logging.NOTSET and env:
        return level_of(env, "LOGKAFKA_LEVEL")
    return level
