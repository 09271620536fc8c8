"""The report's figures, added up record by record (memory stays bounded: counters, the top lists
approximated past ``TOP_CAPACITY`` distinct values, event ids kept for duplicates over a window)."""

from __future__ import annotations

import datetime
import json
from collections import deque
from collections.abc import Mapping
from importlib import resources
from typing import Any

from logkafka._compliance.chains import Verifier, location
from logkafka._compliance.period import Period, Raw
from logkafka._compliance.secrets import findings
from logkafka._redact import Redactor

try:
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson is optional
    _loads = json.loads  # type: ignore[assignment]

TOP = 20  # entries of each top list
TOP_CAPACITY = 20_000  # distinct values counted exactly per top list (beyond: heavy hitters, approximate)
DUPLICATE_WINDOW = 1_000_000  # event ids remembered to find repeated ones
_LISTED = 1_000


class TopCounter:
    """Counts of values, exact up to ``capacity`` distinct ones; beyond, the Misra-Gries heavy hitters."""

    def __init__(self, capacity: int = TOP_CAPACITY) -> None:
        self._counts: dict[str, int] = {}
        self._capacity = capacity
        self.exact = True
        self.distinct_at_least = 0

    def add(self, value: str) -> None:
        counts = self._counts
        if value in counts:
            counts[value] += 1
            return
        counts[value] = 1
        self.distinct_at_least = max(self.distinct_at_least, len(counts))
        if len(counts) > 2 * self._capacity:  # shrink: what can no longer be in the top is let go
            self.exact = False
            cut = sorted(counts.values(), reverse=True)[self._capacity]
            self._counts = {k: c - cut for k, c in counts.items() if c > cut}

    def top(self, n: int = TOP) -> list[tuple[str, int]]:
        return sorted(self._counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


_DAYS: dict[int, str] = {}


def _day(ms: int) -> str:
    """The UTC day of an epoch-ms time, ``YYYY-MM-DD`` (each day's text made once)."""
    number = ms // 86_400_000
    text = _DAYS.get(number)
    if text is None:
        text = _DAYS[number] = datetime.datetime.fromtimestamp(number * 86_400, datetime.timezone.utc).strftime(
            "%Y-%m-%d")
    return text


def _validators() -> dict[tuple[str, str], Any]:
    import fastjsonschema

    out = {}
    for stream in ("audit", "security"):
        for fmt in ("flat", "envelope"):
            text = resources.files("logkafka").joinpath("schemas").joinpath(f"{stream}.{fmt}.v1.json").read_text()
            out[(stream, fmt)] = fastjsonschema.compile(json.loads(text))
    return out


class Report:
    """Feed it every record of the audit and security topics of a period; :meth:`result` is the report."""

    def __init__(self, period: Period, topics: Mapping[str, str], redactor: Redactor,
                 verifier: Verifier | None) -> None:
        self._period = period
        self._topic_streams = dict(topics)
        self._redactor = redactor
        self._verifier = verifier
        self._validate = _validators()
        self.read = 0
        self.audit = 0
        self.failures = 0
        self.not_json = 0
        self._operations: dict[str, list[int]] = {}  # action -> [count, failures]
        self._tenants = TopCounter()
        self._actors = TopCounter()
        self._resources = TopCounter()
        self._days: dict[str, dict[str, int]] = {}  # day -> outcome -> count
        self._security = {"allow": 0, "deny": 0}
        self._event_types: dict[str, dict[str, int]] = {}
        self._denies: dict[str, int] = {}
        self._secrets: list[dict[str, Any]] = []
        self._secret_count = 0
        self._invalid: list[dict[str, Any]] = []
        self._invalid_count = 0
        self._other_preset = 0
        self._seen: set[int] = set()
        self._order: deque[int] = deque()
        self._duplicates: list[dict[str, Any]] = []
        self._duplicate_count = 0

    def feed(self, raw: Raw) -> None:
        """Count one record."""
        self.read += 1
        if self._verifier is not None:  # (None: another process verifies the chains)
            self._verifier.feed(raw)
        try:
            data = _loads(raw.value or b"")
        except ValueError:
            data = None
        if not isinstance(data, dict):
            self.not_json += 1
            self._schema_problem(raw, "not a JSON object")
            return
        envelope = isinstance(data.get("payload"), dict) and "schema_ref" in data
        record = data["payload"] if envelope else data
        own = record.get("stream")
        stream = str(own) if own in ("audit", "security") else self._topic_streams.get(raw.topic, "audit")
        self._check(raw, data, record, stream, "envelope" if envelope else "flat")
        if stream == "audit":
            self._count_audit(raw, record)
        else:
            self._count_security(raw, record)

    def _check(self, raw: Raw, data: dict[str, Any], record: dict[str, Any], stream: str, fmt: str) -> None:
        for field, rule in findings(self._redactor, data):
            self._secret_count += 1
            if len(self._secrets) < _LISTED:
                self._secrets.append({**location(raw), "field": field, "rule": rule})
        if "timestamp" not in record or "event_id" not in record:  # another field preset: no shipped schema fits
            self._other_preset += 1
        else:
            try:
                self._validate[(stream, fmt)](data)
            except Exception as exc:  # fastjsonschema's JsonSchemaException, said in its words
                self._schema_problem(raw, getattr(exc, "message", str(exc)))
        eid = record.get("event_id")
        if isinstance(eid, str):
            self._duplicate(raw, eid)

    def _schema_problem(self, raw: Raw, error: str) -> None:
        self._invalid_count += 1
        if len(self._invalid) < _LISTED:
            self._invalid.append({**location(raw), "error": error})

    def _duplicate(self, raw: Raw, eid: str) -> None:
        digest = hash(eid)  # 64 bits: two ids of one report sharing one is a chance of about 1e-7 in a million
        if digest in self._seen:
            self._duplicate_count += 1
            if len(self._duplicates) < _LISTED:
                self._duplicates.append(location(raw))
            return
        self._seen.add(digest)
        self._order.append(digest)
        if len(self._order) > DUPLICATE_WINDOW:
            self._seen.discard(self._order.popleft())

    def _count_audit(self, raw: Raw, record: Mapping[str, Any]) -> None:
        self.audit += 1
        action, outcome = str(record.get("action") or "?"), str(record.get("outcome") or "?")
        ops = self._operations.setdefault(action, [0, 0])
        ops[0] += 1
        if outcome == "failure":
            ops[1] += 1
            self.failures += 1
        self._tenants.add(str(record.get("tenant_id") or "-"))
        self._actors.add(str(record.get("actor") or "?"))
        self._resources.add(str(record.get("resource") or "?"))
        day = self._days.setdefault(_day(raw.ts_ms), {})
        day[outcome] = day.get(outcome, 0) + 1

    def _count_security(self, raw: Raw, record: Mapping[str, Any]) -> None:
        decision = "deny" if record.get("decision") == "deny" else "allow"
        self._security[decision] += 1
        kind = self._event_types.setdefault(str(record.get("event_type") or "?"), {"allow": 0, "deny": 0})
        kind[decision] += 1
        if decision == "deny":
            day = _day(raw.ts_ms)
            self._denies[day] = self._denies.get(day, 0) + 1

    def result(self, generated_ms: int, chain: dict[str, Any] | None = None) -> dict[str, Any]:
        """The report, as documented (its JSON Schema: ``logkafka/schemas/report.v1.json``); ``chain``: the
        chains' verification, when another process made it."""
        if chain is None:
            assert self._verifier is not None
            chain = self._verifier.result()
        first = self._period.start_ms - self._period.start_ms % 86_400_000
        days = [_day(ms) for ms in range(first, self._period.end_ms, 86_400_000)]
        return {
            "schema": "logkafka.report.v1",
            "generated_at": datetime.datetime.fromtimestamp(generated_ms / 1000, datetime.timezone.utc)
            .isoformat(timespec="seconds").replace("+00:00", "Z"),
            "date_range": self._period.json(),
            "topics": sorted(self._topic_streams),
            "records_read": self.read,
            "total_events": self.audit,
            "operations": [{"action": a, "count": c, "failures": f}
                           for a, (c, f) in sorted(self._operations.items(), key=lambda kv: (-kv[1][0], kv[0]))],
            "error_rate": round(self.failures / self.audit, 6) if self.audit else 0.0,
            "failures": self.failures,
            "tenants": self._tenants.distinct_at_least,
            "by_tenant": [{"tenant_id": t, "count": n} for t, n in self._tenants.top(100)],
            "top_actors": [{"actor": a, "count": n} for a, n in self._actors.top()],
            "top_resources": [{"resource": r, "count": n} for r, n in self._resources.top()],
            "top_exact": self._actors.exact and self._resources.exact and self._tenants.exact,
            "per_day": [{"day": d, "success": self._days.get(d, {}).get("success", 0),
                         "failure": self._days.get(d, {}).get("failure", 0)} for d in days],
            "security": {"allow": self._security["allow"], "deny": self._security["deny"],
                         "by_event_type": [{"event_type": k, **v} for k, v in sorted(self._event_types.items())],
                         "denies_per_day": [{"day": d, "deny": self._denies.get(d, 0)} for d in days]},
            "redaction_check": {"unredacted_secrets": self._secret_count, "where": self._secrets},
            "schema_check": {"invalid": self._invalid_count, "other_preset": self._other_preset,
                             "where": self._invalid},
            "duplicates": {"repeated_event_ids": self._duplicate_count, "window": DUPLICATE_WINDOW,
                           "where": self._duplicates},
            "chain": chain,
            "passed": self._secret_count == 0 and self._invalid_count == 0 and chain["intact"],
        }
