"""Turn any value into a JSON-safe copy that later mutation cannot change.

Used twice on a record's path: in ``emit()`` on the caller's thread, so what
ships is what was logged at the call (promise 3), and in the formatter, so no
value can make the encoder fail. Containers are copied to a bounded depth and
are safe with cycles; sets and tuples become lists; what JSON cannot encode
(bytes, Decimals, NaN, integers beyond 64 bits, arbitrary objects) becomes text.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import math
import uuid
from typing import Any

MAX_DEPTH = 10
#: The integers orjson encodes (64-bit signed and unsigned); others become their digits.
INT_MIN, INT_MAX = -(1 << 63), (1 << 64) - 1
_PASS = frozenset({str, bool, type(None), datetime.datetime, datetime.date, datetime.time, uuid.UUID})


def to_text(obj: Any) -> str:
    """Render any object as text; never raises."""
    try:
        text = str(obj)
        if type(text) is str:
            return text
    except Exception:
        pass
    try:
        return object.__repr__(obj)
    except Exception:  # pragma: no cover - object.__repr__ does not fail
        return "<unrepresentable>"


def jsonable(value: Any, _depth: int = 0, _seen: frozenset[int] = frozenset()) -> Any:
    """Return a JSON-safe copy of ``value``; never raises."""
    t = type(value)
    if t in _PASS:
        return value
    if t is int:
        return value if INT_MIN <= value <= INT_MAX else str(value)
    if t is float:
        return value if math.isfinite(value) else to_text(value)
    if _depth >= MAX_DEPTH:
        return to_text(value)
    try:
        if t is dict or t is list:  # the common case, a flat container: a plain copy, checked
            copy = value.copy()  # one C call: a mutation by another thread meets either the old or the new
            for k, v in (copy.items() if t is dict else enumerate(copy)):
                tv = type(v)
                if not (tv in _PASS or (tv is int and INT_MIN <= v <= INT_MAX) or (tv is float and v - v == 0.0)) \
                        or (t is dict and type(k) is not str):
                    break  # something to convert: the general walk below
            else:
                return copy
        if isinstance(value, (dict, list, tuple, set, frozenset)):
            if id(value) in _seen:
                return "<cycle>"
            seen = _seen | {id(value)}
            if isinstance(value, dict):
                return {
                    (k if type(k) is str else to_text(k)): jsonable(v, _depth + 1, seen)
                    for k, v in list(value.items())
                }
            return [jsonable(v, _depth + 1, seen) for v in list(value)]
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value).decode("utf-8", "backslashreplace")
        if isinstance(value, enum.Enum):
            return jsonable(value.value, _depth + 1, _seen)
        if isinstance(value, (decimal.Decimal, datetime.timedelta)):
            return str(value)
        if isinstance(value, float):  # float subclasses
            return jsonable(float(value))
        if isinstance(value, (str, int)):  # str and int subclasses
            return str(value) if isinstance(value, str) else jsonable(int(value))
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            if id(value) in _seen:
                return "<cycle>"
            seen = _seen | {id(value)}
            return {
                f.name: jsonable(getattr(value, f.name, None), _depth + 1, seen)
                for f in dataclasses.fields(value)
            }
    except Exception:  # iteration failed (changed size, hostile __iter__ ...)
        pass
    return to_text(value)


def repair_text(value: Any) -> Any:
    """Replace lone surrogates and other unencodable code points in every string."""
    if type(value) is str:
        return value.encode("utf-8", "replace").decode("utf-8")
    if type(value) is dict:
        return {repair_text(k): repair_text(v) for k, v in value.items()}
    if type(value) is list:
        return [repair_text(v) for v in value]
    return value
