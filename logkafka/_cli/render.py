"""Records shown on a terminal: one readable line each, or their JSON made safe; colours by level."""

from __future__ import annotations

import argparse
import os
import re
from typing import TextIO

from logkafka._cli.records import LogLine

_RESET = "\x1b[0m"
_DIM = "\x1b[2m"
_LEVEL_COLOURS = ((50, "\x1b[1;31m"), (40, "\x1b[31m"), (30, "\x1b[33m"), (20, "\x1b[32m"), (0, "\x1b[36m"))
#: Shown escaped in readable lines: C0 and C1 control characters (tab aside), and the Unicode
#: bidirectional and line-breaking format characters that would let a logged text reorder or
#: split what the terminal shows (a message spoofing another line).
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
#: In --json output: characters a valid JSON text can hold only inside strings, re-escaped as ``\\uXXXX``
#: (C1 controls, the bidi and line-breaking characters above); the JSON stays valid and parses equal.
_JSON_ESCAPE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
#: C0 controls a valid JSON text can hold only between tokens (raw, they are refused inside strings).
_JSON_SPACE = re.compile("[\x00-\x1f]")


def clean(text: str) -> str:
    """One line, no terminal control sequences: control characters shown escaped."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def json_line(text: str) -> str:
    """A JSON value on one line, safe for a terminal: every C0 and C1 control character (and bidi
    character) escaped or, between tokens, made a space. ``text`` must be valid JSON (strict: no raw
    control character inside a string); the result parses to the same value."""
    text = _JSON_ESCAPE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return _JSON_SPACE.sub(" ", text).strip()


def use_colour(choice: str, stream: TextIO) -> bool:
    """``always``, ``never``, or ``auto``: a terminal, and ``NO_COLOR`` unset or empty."""
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def render(line: LogLine, colour: bool = False) -> str:
    """One readable line: time, level, service, logger, message, code, correlation id (and error type)."""
    def paint(code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if colour else text

    if line.data is None:
        where = f"{line.topic}[{line.partition}]@{line.offset}"
        return paint(_DIM, f"{where} (not JSON) ") + clean(line.raw)
    level = line.level or "-"
    shade = next((c for floor, c in _LEVEL_COLOURS if (line.levelno or 0) >= floor), "")
    parts = [
        paint(_DIM, clean(line.time or "-")),
        paint(shade, f"{clean(level):<8}"),
        clean(line.service or "-"),
        paint(_DIM, clean(line.logger or "-")),
        clean(line.message if line.message is not None else "-"),
    ]
    if line.code:
        parts.append(f"code={clean(line.code)}")
    if line.correlation_id:
        parts.append(f"correlation_id={clean(line.correlation_id)}")
    if line.error:
        parts.append(paint(shade, f"error={clean(line.error)}"))
    return " ".join(parts)


def add_colour(p: argparse.ArgumentParser) -> None:
    """The ``--color`` option of the commands that print records."""
    p.add_argument("--color", "--colour", choices=("auto", "always", "never"), default="auto",
                   help="colour lines by level: auto (on a terminal, unless NO_COLOR is set), always, never")
