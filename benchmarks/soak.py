"""Soak: hours of production in minutes. A steady (or the highest) rate, one or several processes, a broker
restart in the middle; every record accounted for by event, memory watched.

    python benchmarks/soak.py [--minutes 10] [--rate 1000] [--processes 1]

``--rate`` is records per second for all processes together; 0 logs as fast as the processes can. The
embedded broker is stopped and started again halfway through, down for 5 s while the processes go on
logging. It keeps its data in memory only, so what it holds is read just before it stops: the
processes pause (SIGUSR1: they stop calling, flush, and say how many records they sent), a new
consumer reads the topic from its start, the broker stops, and they resume (SIGUSR2) while it is
down. At the end the restarted broker's topic is read the same way, and every record sent must have
been held by one of the two, once, by its (process, sequence) id. Each process uses ``KafkaLogHandler``
with default settings (its spool in a temporary directory).

Reported: records sent and read (and duplicates), each process's resident memory (sampled every 5 s;
the slopes of least-squares lines through the samples from the first minute to the restart, and from
30 s after it to the end), the caller's time
per call (p50, p99, max), the delivery latency the handler measures (log call to acknowledgement:
``stats()["latency_s"]``, sampled every 5 s: the median p50 and the largest p99).
Not a CI test: it takes as long as it is told to.
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


def slope_mb_per_min(samples: list[tuple[float, int]], start: float, end: float) -> float | None:
    """Least-squares slope of resident memory over time between ``start`` and ``end`` seconds, in MB a minute."""
    pts = [(t, rss) for t, rss in samples if start <= t < end]
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
def held_ids(servers: str, topic: str, expected: int) -> list[tuple[int, int]]:
    """The (process, sequence) id of every record ``topic`` holds, read from the start by a new consumer
    (until ``expected`` arrived and then 3 s more, or no record came for 30 s)."""
    consumer = Consumer({"bootstrap.servers": servers, "group.id": f"soak-{time.time_ns()}", "log_level": 0,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    out: list[tuple[int, int]] = []
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        last = time.monotonic()
        while time.monotonic() - last < (3 if len(out) >= expected else 30):
            for m in consumer.consume(10_000, 0.5):
                if m.error() is None:
                    d = orjson.loads(m.value())  # type: ignore[arg-type]
                    out.append((d["proc"], d["seq"]))
                    last = time.monotonic()
    finally:
        consumer.close()
    return out


def run(minutes: float, rate: float, processes: int) -> dict[str, Any]:
    from logkafka.testing import LocalBroker, create_topic

    broker = LocalBroker().start()
    servers, topic = broker.bootstrap_servers, "soak.orders"
    create_topic(servers, topic, PARTITIONS)
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
        before = held_ids(servers, topic, so_far)  # all it holds is read before it goes
        broker.stop()  # the restart: down for 5 s, back empty (the embedded broker keeps nothing)
        for p in procs:
            p.send_signal(signal.SIGUSR2)
        time.sleep(5)
        broker.start()
        create_topic(servers, topic, PARTITIONS)
        for p in procs:
            p.wait(timeout=seconds + 600)
        results = [json.load(open(o)) for o in outs]
        sent = sum(r["sent"] for r in results)
        after = held_ids(servers, topic, sent - so_far)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        broker.stop()
    wall = time.monotonic() - began
    ids = before + after
    held = set(ids)
    expected = {(i, seq) for i, r in enumerate(results) for seq in range(r["sent"])}
    lat = [w for r in results for w in r["latency"] if w.get("p50") is not None]
    return {
        "minutes": minutes, "rate": rate or "max", "processes": processes, "sent": sent,
        "held": len(held & expected), "duplicates": len(ids) - len(held), "missing": len(expected - held),
        "held_before_restart": len(before), "records_per_s": sent / seconds, "wall_s": wall,
        "flushed": all(r["flushed"] for r in results), "stats": [r["stats"] for r in results],
        # the slope from the first minute to the restart, and from 30 s after it to the end (the restart makes
        # a new producer and replays the spool: a step, not a trend)
        "rss_mb": [{"start": r["rss"][0][1] / 1e6, "end": r["rss"][-1][1] / 1e6,
                    "max": max(x for _, x in r["rss"]) / 1e6,
                    "slope_before_mb_per_min": slope_mb_per_min(r["rss"], 60, seconds / 2),
                    "slope_after_mb_per_min": slope_mb_per_min(r["rss"], seconds / 2 + 30, seconds)}
                   for r in results],
        "caller_s": [r["calls"] for r in results],
        "delivery_latency_s": {"p50_median": statistics.median(w["p50"] for w in lat) if lat else None,
                               "p99_max": max(w["p99"] for w in lat) if lat else None},
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
