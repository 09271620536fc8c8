"""JSON as bytes: orjson when it can be imported, else the standard library, writing the same bytes.

orjson is the fast path (a record is one C call). Where it cannot be installed (free-threaded CPython, for
which it publishes no wheel) or is blocked, records still ship, the same: compact, UTF-8, floats as orjson
writes them (``1e-7``, ``0.00001``, ``1e+16``; NaN and infinities as ``null``), ``datetime``, ``date`` and
``time`` in ISO 8601 and UUIDs as text, the same errors (``TypeError``) for what orjson refuses: an integer
beyond 64 bits, a key that is not text (unless ``OPT_NON_STR_KEYS``), text that is not valid Unicode,
nesting beyond 254.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import uuid
from collections.abc import Callable
from typing import Any

__all__ = ["HAVE_ORJSON", "OPT_NON_STR_KEYS", "JSONDecodeError", "dumps", "loads"]

try:
    import orjson
except ImportError:  # pragma: no cover - exercised by tests/test_json.py in a process without orjson
    orjson = None  # type: ignore[assignment]

HAVE_ORJSON = orjson is not None
_MAX_DEPTH = 254  # orjson's recursion limit
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1
_text = json.encoder.encode_basestring  # the C encoder where it exists: '"' + escaped + '"', no ASCII escaping


def _float(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        return "null"
    text = float.__repr__(value)
    if "e-0" in text:  # Python writes 1e-07 and 1e-05, orjson 1e-7 and 0.00001 (both write 1e+16)
        mantissa, exponent = text.split("e-")
        if exponent != "05":
            return f"{mantissa}e-{int(exponent)}"
        sign = "-" if mantissa[0] == "-" else ""
        return f"{sign}0.0000{mantissa.lstrip('-').replace('.', '')}"
    return text


def _key(key: Any, non_str_keys: bool) -> str:
    if type(key) is str or isinstance(key, str):
        return str(key)
    if not non_str_keys:
        raise TypeError("Dict key must be str")
    if key is None or isinstance(key, bool):
        return "null" if key is None else "true" if key else "false"
    if isinstance(key, int):
        return int.__repr__(int(key))
    if isinstance(key, float):
        return _float(key)
    if isinstance(key, (datetime.datetime, datetime.date, datetime.time)):
        return key.isoformat()
    if isinstance(key, uuid.UUID):
        return str(key)
    if isinstance(key, enum.Enum):
        return _key(key.value, non_str_keys)
    raise TypeError("Dict key must a type serializable with OPT_NON_STR_KEYS")


def _write(obj: Any, out: list[str], default: Callable[[Any], Any] | None, non_str_keys: bool, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise TypeError("Recursion limit reached")
    t = type(obj)
    if t is str:
        out.append(_text(obj))
    elif obj is None:
        out.append("null")
    elif obj is True or obj is False:
        out.append("true" if obj else "false")
    elif t is int:
        if not _INT_MIN <= obj <= _INT_MAX:
            raise TypeError("Integer exceeds 64-bit range")
        out.append(int.__repr__(obj))
    elif t is float:
        out.append(_float(obj))
    elif t is dict or (isinstance(obj, dict) and not isinstance(obj, enum.Enum)):
        if not obj:
            out.append("{}")
            return
        sep = "{"
        for k, v in obj.items():
            out.append(sep)
            out.append(_text(_key(k, non_str_keys)))
            out.append(":")
            _write(v, out, default, non_str_keys, depth + 1)
            sep = ","
        out.append("}")
    elif t is list or t is tuple or isinstance(obj, (list, tuple)):
        if not obj:
            out.append("[]")
            return
        sep = "["
        for v in obj:
            out.append(sep)
            _write(v, out, default, non_str_keys, depth + 1)
            sep = ","
        out.append("]")
    else:
        _write_other(obj, out, default, non_str_keys, depth)


def _write_other(obj: Any, out: list[str], default: Callable[[Any], Any] | None, non_str_keys: bool,
                 depth: int) -> None:
    """What orjson serializes natively beyond JSON's own types, else ``default``'s result."""
    if isinstance(obj, enum.Enum):
        _write(obj.value, out, default, non_str_keys, depth)
    elif isinstance(obj, str):
        out.append(_text(str(obj)))
    elif isinstance(obj, int):
        _write(int(obj), out, default, non_str_keys, depth)
    elif isinstance(obj, float):
        out.append(_float(float(obj)))
    elif isinstance(obj, (datetime.datetime, datetime.date, datetime.time)):
        out.append(_text(obj.isoformat()))
    elif isinstance(obj, uuid.UUID):
        out.append(_text(str(obj)))
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        _write({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}, out, default, non_str_keys, depth)
    elif default is not None:
        _write(default(obj), out, None if depth >= _MAX_DEPTH else default, non_str_keys, depth + 1)
    else:
        raise TypeError(f"Type is not JSON serializable: {type(obj).__name__}")


def python_dumps(obj: Any, /, default: Callable[[Any], Any] | None = None, option: int | None = None) -> bytes:
    """``obj`` as compact UTF-8 JSON, as ``orjson.dumps`` writes it, by the standard library (the path
    without orjson; the tests compare it with orjson's)."""
    out: list[str] = []
    _write(obj, out, default, bool(option and option & _NON_STR_KEYS), 0)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError:
        raise TypeError("str is not valid UTF-8: surrogates not allowed") from None


def python_loads(data: bytes | bytearray | memoryview | str, /) -> Any:
    """JSON text or UTF-8 bytes parsed by the standard library."""
    return json.loads(bytes(data) if isinstance(data, memoryview) else data)


_NON_STR_KEYS = 1 << 2  # orjson's OPT_NON_STR_KEYS
if orjson is not None:
    dumps: Callable[..., bytes] = orjson.dumps
    loads: Callable[[Any], Any] = orjson.loads
    JSONDecodeError: type[ValueError] = orjson.JSONDecodeError
    OPT_NON_STR_KEYS: int = orjson.OPT_NON_STR_KEYS
else:  # pragma: no cover - tests/test_json.py runs a process without orjson
    dumps, loads, JSONDecodeError, OPT_NON_STR_KEYS = python_dumps, python_loads, json.JSONDecodeError, _NON_STR_KEYS
