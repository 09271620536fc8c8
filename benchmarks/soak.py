"""Soak: hours of production in minutes. A steady (or the highest) rate, one or several processes, a broker
restart in the middle; every record accounted for by event, memory watched.

    python benchmarks/soak.py [--minutes 10] [--rate 1000] [--processes 1]

``--rate`` is records per second for all processes together; 0 logs as fast as the processes can. The
embedded broker is stopped and started again halfway through, down for 5 s while the processes go on
logging. It keeps its data in memory only, so a consumer reads every record as it arrives, from before
and after the restart, and the run checks that every record sent was read, by its (process, sequence)
id. So that the restart takes nothing the consumer has not read yet, the processes pause just before
it (SIGUSR1: they stop calling, flush, and say how many records they sent), the consumer catches up,
the broker stops, and they resume (SIGUSR2) while it is down. Each process uses ``KafkaLogHandler``
with default settings (its spool in a temporary directory).

Reported: records sent and read (and duplicates), each process's resident memory (sampled every 5 s;
the slope of a least-squares line through the samples after the first minute), the caller's time
per call (p50, p99, max), the delivery latency the handler measures (log call to acknowledgement:
``stats()["latency_s"]``, sampled every 5 s: the median p50 and the largest p99), and the time from
the log call to the record being read by the consumer (p50, p99, max; it includes the consumer's
own fetch wait). Not a CI test: it takes as long as it is told to.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

PARTITIONS = 3


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None}
    values = sorted(values)
    return {"p50": values[len(values) // 2], "p99": values[min(len(values) - 1, len(values) * 99 // 100)],
            "max": values[-1]}


class Histogram:
    """Durations in fixed log-scale buckets (1 µs to 100 s, 1% wide): the percentiles of millions of calls
    in constant memory, so the measurement does not grow the resident memory it watches."""

    PER_DECADE = 230  # buckets per factor of 10: each about 1% wide

    def __init__(self) -> None:
        self.counts = [0] * (8 * self.PER_DECADE + 1)
        self.n = 0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        i = int(math.log10(max(seconds, 1e-6) * 1e6) * self.PER_DECADE) if seconds > 1e-6 else 0
        self.counts[min(i, len(self.counts) - 1)] += 1
        self.n += 1
        if seconds > self.max:
            self.max = seconds

    def percentiles(self) -> dict[str, float | None]:
        if not self.n:
            return {"p50": None, "p99": None, "max": None}
        out: dict[str, float | None] = {}
        for name, q in (("p50", 0.5), ("p99", 0.99)):
            want, seen = q * self.n, 0
            for i, c in enumerate(self.counts):
                seen += c
                if seen >= want:
                    out[name] = 10 ** ((i + 0.5) / self.PER_DECADE) / 1e6  # the bucket's middle
                    break
        out["max"] = self.max
        return out


def slope_mb_per_min(samples: list[tuple[float, int]]) -> float | None:
    """Least-squares slope of resident memory over time, after the first minute, in MB per minute."""
    pts = [(t, rss) for t, rss in samples if t >= 60] or samples
    if len(pts) < 3:
        return None
    mt = statistics.fmean(t for t, _ in pts)
    mr = statistics.fmean(r for _, r in pts)
    den = sum((t - mt) ** 2 for t, _ in pts)
    return sum((t - mt) * (r - mr) for t, r in pts) / den * 60 / 1e6 if den else None


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))


# -- a logging process ------------------------------------------------------------------------
def child(servers: str, topic: str, rate: float, seconds: float, proc: int, out: str) -> None:
    import logkafka

    handler = logkafka.KafkaLogHandler(servers, topic, spool_dir=tempfile.mkdtemp(prefix="soak-spool-"),
                                       service_name="soak")
    log = logging.getLogger("soak.orders")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    info, clock = log.info, time.perf_counter
    pause, resume = threading.Event(), threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: pause.set())
    signal.signal(signal.SIGUSR2, lambda *_: resume.set())
    paused = 0.0  # seconds spent paused: the pace leaves them out
    calls = Histogram()
    rss: list[tuple[float, int]] = []
    latency: list[dict[str, Any]] = []
    start = clock()
    next_sample, seq = start, 0
    while True:
        if pause.is_set():  # the broker is about to restart: flush, say how far we got, wait
            t0 = clock()
            handler.flush(60)
            with open(out + ".part", "w") as f:
                f.write(str(seq))
            os.replace(out + ".part", out + ".paused")  # whole, or not there
            resume.wait(120)
            pause.clear()
            resume.clear()
            paused += clock() - t0
        now = clock() - paused
        if now - start >= seconds:
            break
        if now >= next_sample:
            rss.append((now - start, rss_bytes()))
            latency.append(handler.stats()["latency_s"])
            next_sample += 5.0
        due = int((now - start) * rate) + 1 if rate else seq + 200
        if seq >= due:
            time.sleep(min(0.005, (seq + 1) / rate - (now - start)))
            continue
        while seq < due:
            t0 = clock()
            info("Order placed", extra={"code": "ORDER_PLACED", "proc": proc, "seq": seq, "amount": 42.5,
                                        "context": {"tenant": "acme", "items": 3}})
            calls.add(clock() - t0)
            seq += 1
    flushed = handler.flush(180)
    stats = handler.stats()
    with open(out, "w") as f:
        json.dump({"sent": seq, "flushed": flushed, "calls": calls.percentiles(), "rss": rss, "latency": latency,
                   "stats": {k: stats[k] for k in ("delivered", "failed", "dropped_total", "spooled")}}, f)
    handler.close()


# -- the run ------------------------------------------------------------------------------------
class Reader(threading.Thread):
    """Reads every record as it arrives; told to start over from the beginning after a broker restart."""

    def __init__(self, servers: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.servers, self.topic = servers, topic
        self.seen: set[tuple[int, int]] = set()
        self.duplicates = 0
        self.lags: list[float] = []
        self.restart = threading.Event()
        self.stop = threading.Event()

    def _assign(self, consumer: Consumer, assigned: set[int]) -> None:
        """Read every partition the topic has now from its start (a producer may have had the restarted
        broker create the topic, with its own number of partitions, before we did)."""
        try:
            partitions = set(consumer.list_topics(self.topic, timeout=5).topics[self.topic].partitions)
        except Exception:  # the broker is coming back: the next look finds them
            return
        new = partitions - assigned
        if new:
            consumer.incremental_assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in sorted(new)])
            assigned |= new

    def run(self) -> None:
        consumer = Consumer({"bootstrap.servers": self.servers, "group.id": "soak", "enable.auto.commit": False,
                             "auto.offset.reset": "earliest", "log_level": 0})
        assigned: set[int] = set()
        self._assign(consumer, assigned)
        looked = time.monotonic()
        while not self.stop.is_set():
            if self.restart.is_set():
                self.restart.clear()
                consumer.unassign()
                assigned.clear()
                self._assign(consumer, assigned)
            elif time.monotonic() - looked > 2:
                looked = time.monotonic()
                self._assign(consumer, assigned)
            for m in consumer.consume(5000, 0.2):
                if m.error():
                    continue
                now_ms = time.time() * 1000
                d = orjson.loads(m.value())
                key = (d["proc"], d["seq"])
                if key in self.seen:
                    self.duplicates += 1
                else:
                    self.seen.add(key)
                    self.lags.append((now_ms - m.timestamp()[1]) / 1000)
        consumer.close()


def run(minutes: float, rate: float, processes: int) -> dict[str, Any]:
    from logkafka.testing import LocalBroker, create_topic

    broker = LocalBroker().start()
    servers, topic = broker.bootstrap_servers, "soak.orders"
    create_topic(servers, topic, PARTITIONS)
    reader = Reader(servers, topic)
    reader.start()
    tmp = tempfile.mkdtemp(prefix="soak-")
    seconds = minutes * 60
    outs = [os.path.join(tmp, f"{i}.json") for i in range(processes)]
    procs = [subprocess.Popen([sys.executable, __file__, "--child", servers, topic, str(rate / processes),
                               str(seconds), str(i), outs[i]]) for i in range(processes)]
    began = time.monotonic()
    try:
        time.sleep(seconds / 2)
        for p in procs:
            p.send_signal(signal.SIGUSR1)
        while not all(os.path.exists(o + ".paused") for o in outs):
            time.sleep(0.1)
        so_far = sum(int(open(o + ".paused").read()) for o in outs)
        deadline = time.monotonic() + 120
        while len(reader.seen) < so_far and time.monotonic() < deadline:  # all it holds is read before it goes
            time.sleep(0.1)
        broker.stop()  # the restart: down for 5 s, back empty (the embedded broker keeps nothing)
        for p in procs:
            p.send_signal(signal.SIGUSR2)
        time.sleep(5)
        broker.start()
        create_topic(servers, topic, PARTITIONS)
        reader.restart.set()
        for p in procs:
            p.wait(timeout=seconds + 600)
        results = [json.load(open(o)) for o in outs]
        sent = sum(r["sent"] for r in results)
        deadline = time.monotonic() + 120
        while len(reader.seen) < sent and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        reader.stop.set()
        for p in procs:
            if p.poll() is None:
                p.kill()
        broker.stop()
    wall = time.monotonic() - began
    lat = [w for r in results for w in r["latency"] if w.get("p50") is not None]
    return {
        "minutes": minutes, "rate": rate or "max", "processes": processes, "sent": sent,
        "read": len(reader.seen), "duplicates": reader.duplicates,
        "missing": sent - len(reader.seen), "records_per_s": sent / seconds, "wall_s": wall,
        "flushed": all(r["flushed"] for r in results), "stats": [r["stats"] for r in results],
        "rss_mb": [{"start": r["rss"][0][1] / 1e6, "end": r["rss"][-1][1] / 1e6,
                    "max": max(x for _, x in r["rss"]) / 1e6, "slope_mb_per_min": slope_mb_per_min(r["rss"])}
                   for r in results],
        "caller_s": [r["calls"] for r in results],
        "delivery_latency_s": {"p50_median": statistics.median(w["p50"] for w in lat) if lat else None,
                               "p99_max": max(w["p99"] for w in lat) if lat else None},
        "call_to_read_s": percentiles(reader.lags),
    }


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        servers, topic, rate, seconds, proc, out = sys.argv[2:8]
        child(servers, topic, float(rate), float(seconds), int(proc), out)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="records per second in all; 0: as fast as possible")
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    result = run(args.minutes, args.rate, args.processes)
    print(json.dumps(result, indent=2))
    return 0 if result["missing"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
