"""Fit a rendered record into Kafka's message size limit.

librdkafka refuses at ``produce()`` a message whose value, key, headers and
per-record framing exceed the producer's ``message.max.bytes`` (default
1,000,000); the broker checks the record batch against its own
``message.max.bytes`` / the topic's ``max.message.bytes``. :func:`fit` cuts a
value to a byte budget; :func:`value_limit` turns ``message.max.bytes`` and a
key size into that budget.

A JSON object keeps its shape: the big text fields are cut in the middle
(head and tail kept), big other values after them, small fields stay intact,
and ``"truncated": true, "original_size": <bytes>`` are added at the end.
Anything else is cut as UTF-8 text.
"""

from __future__ import annotations

from typing import Any

from logkafka import _json

__all__ = ["MIN_LIMIT", "OVERHEAD", "fit", "value_limit"]

#: Bytes :func:`value_limit` keeps free under ``message.max.bytes`` besides the key.
#: librdkafka counts at most 36 bytes of framing per v2 record (varints at their
#: widest: length, attributes, timestamp and offset deltas, key and value lengths,
#: header count) and the broker checks a batch whose v2 header is 61 bytes; the
#: rest is headroom for headers (logkafka sends four: their names, a namespace of at
#: most 200 characters, values cut at 200 bytes, under 800 bytes in all) and rounding.
OVERHEAD = 1024
#: The smallest ``limit`` the JSON cutting is designed for. Below it :func:`fit`
#: still returns at most ``limit`` bytes, but may fall back to cut text.
MIN_LIMIT = 1024

# Cut first, biggest first: (parent key or None for the top level, key).
_PRIORITY = ((None, "message"), ("error", "stack_trace"), ("error", "message"), (None, "stack_info"))
# Top-level fields kept when fields have to be dropped: the formatter's own and the two added here.
_KEEP = frozenset({
    "timestamp", "level", "logger", "message", "code", "service", "environment", "version", "host",
    "instance_id", "process", "thread", "module", "function", "line", "event_id", "trace_id", "span_id",
    "error", "stack_info", "truncated", "original_size",
})
# Small identifying fields the last-resort JSON object keeps beside the message.
_IDS = ("timestamp", "level", "logger", "code", "service", "event_id", "trace_id", "span_id")
_OTHER_FLOOR = 256  # serialized bytes an other value is not cut below in the second pass
_LAST_FLOOR = 64  # ... and below which no value is ever cut
_ROUNDS = 24  # bound on the cut-verify rounds for one string
_dumps = _json.dumps


def value_limit(message_max_bytes: int, key_size: int = 0) -> int:
    """The value budget for a producer's ``message.max.bytes`` and a key of ``key_size`` bytes."""
    return max(0, message_max_bytes - OVERHEAD - key_size)


def fit(value: bytes, limit: int) -> bytes:
    """``value`` if at most ``limit`` bytes, else a cut version of at most ``limit`` bytes.

    A JSON object stays a JSON object (UTF-8, serialized as _json writes it) with
    ``truncated`` and ``original_size`` added; one that only whitespace or
    escapes made too big comes back compact, complete and unmarked. Other
    input is cut as text around a marker, valid UTF-8. Designed for
    ``limit >= MIN_LIMIT``; never raises; time about linear in ``len(value)``.
    """
    try:
        if len(value) <= limit:
            return value
        if limit <= 0:
            return b""
        start = value[:4096].lstrip()
        if start[:1] == b"{":
            try:
                obj = _json.loads(value)
            except _json.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                try:
                    out = _fit_object(obj, len(value), limit)
                except Exception:
                    out = None
                if out is None:
                    out = _skeleton(value, limit)
                if out is not None and len(out) <= limit:
                    return out
        return _fit_text(value, limit)
    except Exception:
        try:
            return _fit_text(value, limit)
        except Exception:
            return b""


class _Slot:
    """A value that may be cut: where it is and its serialized size."""

    __slots__ = ("holder", "key", "size")

    def __init__(self, holder: dict[str, Any], key: str) -> None:
        self.holder = holder
        self.key = key
        self.size = len(_dumps(holder[key]))


def _fit_object(obj: dict[str, Any], original_size: int, limit: int) -> bytes | None:
    """The cut JSON object, or None when cutting and dropping fields cannot make it fit."""
    compact = _dumps(obj)
    if len(compact) <= limit:  # only whitespace or escapes made it too big: nothing is lost
        return compact
    if "truncated" in obj or "original_size" in obj:  # moved to the end, with this cut's values
        obj.pop("truncated", None)
        obj.pop("original_size", None)
        compact = _dumps(obj)
    obj["truncated"] = True
    obj["original_size"] = original_size
    total = len(compact) + len(_dumps({"truncated": True, "original_size": original_size})) - 1

    priority: list[_Slot] = []
    taken: set[tuple[str | None, str]] = set()
    for parent, key in _PRIORITY:
        holder = obj if parent is None else obj.get(parent)
        if isinstance(holder, dict) and isinstance(holder.get(key), str):
            priority.append(_Slot(holder, key))
            taken.add((parent, key))
    others: list[_Slot] = []
    for key, item in obj.items():
        if key == "error" and isinstance(item, dict):
            others.extend(_Slot(item, k) for k, v in item.items()
                          if ("error", k) not in taken and isinstance(v, (str, list, dict)))
        elif (None, key) not in taken and isinstance(item, (str, list, dict)):
            others.append(_Slot(obj, key))

    for slots, floor in ((priority, max(limit // 16, _OTHER_FLOOR)), (others, _OTHER_FLOOR),
                         (priority + others, _LAST_FLOOR)):
        if total <= limit:
            break
        total -= _shrink(slots, total - limit, floor)

    if total > limit:  # many small fields: drop the largest ones that are not the formatter's own
        sizes = sorted(((len(_dumps(k)) + len(_dumps(v)) + 2, k) for k, v in obj.items() if k not in _KEEP),
                       reverse=True)
        for size, key in sizes:
            if total <= limit:
                break
            del obj[key]
            total -= size

    out = _dumps(obj)
    return out if len(out) <= limit else None


def _shrink(slots: list[_Slot], excess: int, floor: int) -> int:
    """Cut the biggest slots to a common cap (not below ``floor``) to save ``excess`` bytes; the bytes saved."""
    cap = _cap([s.size for s in slots], excess, floor)
    saved = 0
    for slot in slots:
        if slot.size > cap:
            cut = _cut_value(slot.holder[slot.key], cap)
            size = len(_dumps(cut))
            if size < slot.size:
                slot.holder[slot.key] = cut
                saved += slot.size - size
                slot.size = size
    return saved


def _cap(sizes: list[int], excess: int, floor: int) -> int:
    """The largest cap >= ``floor`` such that cutting every size to it saves ``excess``; else ``floor``."""
    big = sorted((s for s in sizes if s > floor), reverse=True)
    total = 0
    for k, size in enumerate(big, 1):
        total += size
        below = max(big[k] if k < len(big) else 0, floor)
        cap = (total - excess) // k  # saving total - k * cap >= excess
        if cap >= below:
            return min(cap, size)
    return floor


def _cut_value(value: Any, target: int) -> str:
    """``value`` as a string of at most ``target`` serialized bytes: cut text, or cut JSON text."""
    text = value if isinstance(value, str) else _dumps(value).decode("utf-8")
    return _cut_str(text, target)


def _cut_str(text: str, target: int) -> str:
    """Head and tail of ``text`` around a cut marker, at most ``target`` bytes once serialized."""
    raw = text.encode("utf-8")
    ratio = len(_dumps(text)) / max(len(raw), 1)  # serialized bytes per UTF-8 byte (escapes make it > 1)
    avail = target - 2 - len(_marker(len(raw)))
    keep = int(avail / ratio)
    for _ in range(_ROUNDS):
        if keep <= 0:
            break
        head = raw[:keep - keep // 2].decode("utf-8", "ignore")  # a character split at the cut is left out
        tail = raw[len(raw) - keep // 2:].decode("utf-8", "ignore") if keep // 2 else ""
        cut = len(raw) - len(head.encode("utf-8")) - len(tail.encode("utf-8"))
        out = head + _marker(cut) + tail
        size = len(_dumps(out))
        if size <= target:
            return out
        keep -= size - target + 1  # each UTF-8 byte left out saves at least one serialized byte
    out = _marker(len(raw))
    return out if len(_dumps(out)) <= target else ""


def _marker(cut: int) -> str:
    return f"…[cut {cut} bytes]…"


def _skeleton(value: bytes, limit: int) -> bytes | None:
    """A last-resort JSON object: small ids, the cut message (or the cut original text), the two marks."""
    try:
        obj = _json.loads(value)
    except _json.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    message = obj.get("message")
    text = message if isinstance(message, str) else value.decode("utf-8", "ignore")
    out: dict[str, Any] = {k: obj[k] for k in _IDS if k in obj and len(_dumps(obj[k])) <= 128}
    for keep_ids in (True, False):
        if not keep_ids:
            out = {}
        out["message"] = ""
        out["truncated"] = True
        out["original_size"] = len(value)
        room = limit - len(_dumps(out)) + 2  # what the message string may take, quotes included
        if room >= 2:
            out["message"] = _cut_str(text, room)
            result = _dumps(out)
            if len(result) <= limit:
                return result
    return None


def _fit_text(value: bytes, limit: int) -> bytes:
    """Head and tail of ``value`` around a marker, valid UTF-8, at most ``limit`` bytes."""
    if limit <= 0:
        return b""
    marker = f"…[truncated, original {len(value)} bytes]…".encode()
    if len(marker) > limit:
        return value[:limit].decode("utf-8", "ignore").encode("utf-8")
    keep = limit - len(marker)
    head = value[:keep - keep // 2].decode("utf-8", "ignore").encode("utf-8")
    tail = value[len(value) - keep // 2:].decode("utf-8", "ignore").encode("utf-8") if keep // 2 else b""
    return head + marker + tail
