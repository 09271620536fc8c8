"""A handler's ``stats()``: its workers' counts added up, the ledger that balances them, and by stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from logkafka._spool import Spool


@dataclass(frozen=True)
class SpoolCounts:
    """A worker's spool, counted."""

    directory: str
    spooled: int  # records written
    evicted: int  # records lost to spool_max_bytes
    torn: int  # damaged lines skipped in replays
    errors: int  # records the disk refused (sent from memory)
    bytes: int
    inherited: int  # records of other processes (or earlier runs) read back
    handed_over: int  # records of ours another process took
    refusing: str | None  # why the disk refuses writes now, else None

    @classmethod
    def of(cls, spool: Spool) -> SpoolCounts:
        """The counts of ``spool`` now."""
        return cls(spool.directory, spool.spooled, spool.dropped, spool.torn, spool.errors, spool.bytes(),
                   spool.inherited, spool.handed_over, None if spool.usable() else spool.last_error)


@dataclass(frozen=True)
class WorkerStats:
    """A worker's counts (one stream's, or audit and security's together)."""

    topic: str
    running: bool
    produced: int
    delivered: int
    failed: int
    in_flight: int
    by_topic: dict[str, dict[str, int]]
    latency: dict[str, float | None]
    held: int  # in memory: refused by the spool's disk, or waiting for room in librdkafka's buffer
    spooling: bool
    spooled_waiting: int
    lost_to_disk: int  # neither Kafka nor the spool's disk took them by the end
    replayed: int
    rebuilds: int
    truncated: int
    errors: int
    error_counts: dict[str, int]
    last_error: str | None
    broker_reachable: bool | None
    trouble_s: float | None
    spool: SpoolCounts | None


def handler_stats(app: WorkerStats, streams: WorkerStats | None, app_queued: int, streams_queued: int,
                  dropped: dict[str, int], accepted: int) -> dict[str, Any]:
    """The counters of ``stats()`` from the application worker's and the stream worker's counts.

    ``app_queued``, ``streams_queued``: records in the application queue and in the stream queue;
    ``dropped``: records dropped before a worker took them; ``accepted``: records ``emit()`` took.
    """
    workers = [app] if streams is None else [app, streams]
    dropped = dict(dropped)
    spool_stats = {"spooled": 0, "spool_dropped": 0, "spool_torn": 0, "spool_errors": 0, "spool_bytes": 0}
    inherited = handed_over = 0
    for w in workers:
        if w.spool is not None:
            for reason, n in (("spool_full", w.spool.evicted), ("spool_torn", w.spool.torn),
                              ("spool_error", w.lost_to_disk)):
                if n:
                    dropped[reason] = dropped.get(reason, 0) + n
            for name, value in (("spooled", w.spool.spooled), ("spool_dropped", w.spool.evicted),
                                ("spool_torn", w.spool.torn), ("spool_errors", w.spool.errors),
                                ("spool_bytes", w.spool.bytes)):
                spool_stats[name] += value
            inherited += w.spool.inherited
            handed_over += w.spool.handed_over
    per_topic = {w.topic: {"queue_depth": depth, "produced": w.produced, "delivered": w.delivered,
                           "failed": w.failed, "in_flight": w.in_flight, "spooling": w.spooling}
                 for w, depth in zip(workers, (app_queued, streams_queued), strict=False)}
    failed = sum(w.failed for w in workers)
    lost = {**dropped, "failed": failed} if failed else dict(dropped)
    delivered = sum(w.delivered for w in workers)
    in_flight = sum(w.in_flight for w in workers)
    queue_depth = sum(s["queue_depth"] for s in per_topic.values())
    waiting = queue_depth + sum(w.held for w in workers)
    spooled = sum(w.spooled_waiting for w in workers)
    balanced = accepted + inherited == delivered + in_flight + waiting + spooled + handed_over + sum(lost.values())
    reachable = [w.broker_reachable for w in workers]
    return {
        "queue_depth": queue_depth,
        "produced": sum(w.produced for w in workers),
        "delivered": delivered,
        "failed": failed,
        "in_flight": in_flight,
        "dropped": dropped,
        "dropped_total": sum(dropped.values()),
        "errors": sum(w.errors for w in workers),
        "last_error": next((w.last_error for w in reversed(workers) if w.last_error), None),
        "broker_reachable": False if False in reachable else app.broker_reachable,
        "spooling": any(w.spooling for w in workers),
        "replayed": sum(w.replayed for w in workers),
        "producer_rebuilds": sum(w.rebuilds for w in workers),
        "truncated": sum(w.truncated for w in workers),
        "latency_s": app.latency,
        **spool_stats,
        "spool_refusing": next((w.spool.refusing for w in workers if w.spool is not None and w.spool.refusing),
                               None),
        "trouble_s": max((w.trouble_s for w in workers if w.trouble_s is not None), default=None),
        "streams": per_topic,
        "ledger": {"accepted": accepted, "inherited": inherited, "delivered": delivered, "in_flight": in_flight,
                   "queued": waiting, "spooled": spooled, "handed_over": handed_over, "lost": lost,
                   "balanced": balanced},
    }


def by_stream(app: WorkerStats, streams: WorkerStats | None, audit_topic: str,
              security_topic: str) -> dict[str, dict[str, Any]]:
    """Delivered and failed records, whether the thread runs and client errors, for each of the three
    streams (audit and security share one thread: its client errors are listed under audit)."""
    out: dict[str, dict[str, Any]] = {"application": {
        "topic": app.topic, "delivered": app.delivered, "failed": app.failed, "started": app.running,
        "spooled": app.spool.spooled if app.spool else 0, "replayed": app.replayed,
        "error_counts": dict(app.error_counts)}}
    counts = streams.by_topic if streams is not None else {}
    for name, topic in (("audit", audit_topic), ("security", security_topic)):
        mine = counts.get(topic, {"delivered": 0, "failed": 0})
        if name == "security" and topic == audit_topic:  # one topic for both: counted under audit
            mine = {"delivered": 0, "failed": 0}
        shared = streams if name == "audit" else None  # the shared thread's own counts: under audit
        out[name] = {"topic": topic, **mine, "started": bool(streams and streams.running),
                     "spooled": shared.spool.spooled if shared and shared.spool else 0,
                     "replayed": shared.replayed if shared else 0,
                     "error_counts": dict(shared.error_counts) if shared else {}}
    return out
